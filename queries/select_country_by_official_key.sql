-- One country by its case-folded official name; the lowest id if several share it. Params: :key.
SELECT id, name, official_name, alpha2_code, alpha3_code, capital, region, subregion, population,
       currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at, facts
FROM countries
WHERE official_key = :key
ORDER BY id
LIMIT 1
