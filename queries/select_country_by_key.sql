-- One country by its case-folded name. Params: :name_key.
-- LENGTH too: MySQL's utf8mb4_bin is PAD SPACE, so there 'nigeria ' would match 'nigeria'.
SELECT id, name, capital, region, population, currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at
FROM countries
WHERE name_key = :name_key AND LENGTH(name_key) = LENGTH(:name_key)
