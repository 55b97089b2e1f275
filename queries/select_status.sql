-- Row count and last refresh time. No params.
SELECT (SELECT COUNT(*) FROM countries) AS total_countries, last_refreshed_at
FROM refresh_state WHERE id = 1
