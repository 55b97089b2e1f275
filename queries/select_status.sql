-- Row count, last refresh time, the sources it used and the provider time of its rates. No params.
SELECT (SELECT COUNT(*) FROM countries) AS total_countries, last_refreshed_at,
       countries_source, rates_source, rates_updated_at
FROM refresh_state WHERE id = 1
