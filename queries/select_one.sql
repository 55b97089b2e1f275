-- Readiness probe. No params.
SELECT 1
