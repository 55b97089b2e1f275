-- Rates across time. Each snapshot says when it was stored (a backfill stores years of days at
-- once; the snapshots stored before this get their own provider time). A dated read finds a
-- snapshot's rates by its time: an index on (taken_at, code, rate) answers it alone. The rates
-- schedule's claim, apart from the full refresh's; when open.er-api next updates; and until when
-- each upstream asked not to be called again (a 429's Retry-After), all in Unix seconds, so that
-- every process sees them.
ALTER TABLE rate_snapshots ADD COLUMN refreshed_at TEXT;
UPDATE rate_snapshots SET refreshed_at = taken_at;
CREATE INDEX rate_history_taken_at ON rate_history (taken_at, code, rate);
ALTER TABLE refresh_state ADD COLUMN rates_claimed_at REAL;
ALTER TABLE refresh_state ADD COLUMN rates_claimed_by TEXT;
ALTER TABLE refresh_state ADD COLUMN rates_next_update_at REAL;
ALTER TABLE refresh_state ADD COLUMN countries_held_until REAL;
ALTER TABLE refresh_state ADD COLUMN rates_held_until REAL;
