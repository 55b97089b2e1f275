-- Nothing to change: SQLite compares text byte by byte already (MySQL needed binary key columns).
-- The migration exists so that both dialects keep the same numbers.
SELECT 1;
