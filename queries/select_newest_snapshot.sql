-- The newest snapshot's time, source and storing time, and its USD rates, one row a code (none
-- before the first snapshot). No params.
SELECT s.taken_at, s.source, s.refreshed_at, h.code, h.rate
FROM (SELECT taken_at, source, refreshed_at FROM rate_snapshots ORDER BY taken_at DESC LIMIT 1) s
JOIN rate_history h ON h.taken_at = s.taken_at
