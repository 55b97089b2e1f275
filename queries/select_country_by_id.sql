-- One country by its id. Params: :id.
SELECT id, name, official_name, alpha2_code, alpha3_code, capital, region, subregion, population,
       currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at, facts
FROM countries
WHERE id = :id
