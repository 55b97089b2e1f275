ALTER TABLE refresh_state DROP COLUMN schedule_claimed_by;
ALTER TABLE refresh_state DROP COLUMN schedule_claimed_at;
