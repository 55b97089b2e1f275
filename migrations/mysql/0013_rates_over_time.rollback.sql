ALTER TABLE refresh_state
    DROP COLUMN rates_held_until,
    DROP COLUMN countries_held_until,
    DROP COLUMN rates_next_update_at,
    DROP COLUMN rates_claimed_by,
    DROP COLUMN rates_claimed_at;
DROP INDEX rate_history_taken_at ON rate_history;
ALTER TABLE rate_snapshots DROP COLUMN refreshed_at;
