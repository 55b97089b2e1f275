ALTER TABLE refresh_state DROP COLUMN rates_held_until;
ALTER TABLE refresh_state DROP COLUMN countries_held_until;
ALTER TABLE refresh_state DROP COLUMN rates_next_update_at;
ALTER TABLE refresh_state DROP COLUMN rates_claimed_by;
ALTER TABLE refresh_state DROP COLUMN rates_claimed_at;
DROP INDEX rate_history_taken_at;
ALTER TABLE rate_snapshots DROP COLUMN refreshed_at;
