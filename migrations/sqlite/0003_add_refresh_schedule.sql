-- Which process claimed the last scheduled refresh, and when (Unix seconds): with several
-- processes on one database, only the one whose claim succeeds refreshes in an interval.
ALTER TABLE refresh_state ADD COLUMN schedule_claimed_at REAL;
ALTER TABLE refresh_state ADD COLUMN schedule_claimed_by TEXT;
