-- The provider time of the newest stored rates snapshot (NULL before the first). No params.
SELECT MAX(taken_at) FROM rate_snapshots
