-- Every day that has a snapshot (from the index on (day, taken_at, source)). No params.
SELECT DISTINCT day FROM rate_snapshots
