-- The rates as of :day (YYYY-MM-DD): that day's last snapshot, else the nearest earlier day's
-- (from the index on (day, taken_at, source)), with its USD rates (from the index on (taken_at,
-- code, rate)), one row a code; no rows before the first stored day.
SELECT s.taken_at, s.source, s.refreshed_at, h.code, h.rate
FROM (SELECT taken_at, source, refreshed_at FROM rate_snapshots WHERE day <= :day
      ORDER BY day DESC, taken_at DESC LIMIT 1) s
JOIN rate_history h ON h.taken_at = s.taken_at
