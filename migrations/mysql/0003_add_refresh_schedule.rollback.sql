ALTER TABLE refresh_state DROP COLUMN schedule_claimed_by, DROP COLUMN schedule_claimed_at;
