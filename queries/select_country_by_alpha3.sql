-- One country by its ISO alpha-3 code (stored upper case); the lowest id if several share it.
-- Params: :code.
SELECT id, name, official_name, alpha2_code, alpha3_code, capital, region, subregion, population,
       currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at, facts
FROM countries
WHERE alpha3_code = :code
ORDER BY id
LIMIT 1
