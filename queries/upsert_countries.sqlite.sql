-- Insert a country or update the one with the same case-folded name (its id stays). Params: one per column.
INSERT INTO countries (name, name_key, alpha2_code, alpha3_code, capital, region, region_key, subregion, subregion_key, population, currency_code, currency_key, exchange_rate, estimated_gdp, flag_url, last_refreshed_at)
VALUES (:name, :name_key, :alpha2_code, :alpha3_code, :capital, :region, :region_key, :subregion, :subregion_key, :population, :currency_code, :currency_key, :exchange_rate, :estimated_gdp, :flag_url, :last_refreshed_at)
ON CONFLICT (name_key) DO UPDATE SET
    name = excluded.name, alpha2_code = excluded.alpha2_code, alpha3_code = excluded.alpha3_code,
    capital = excluded.capital, region = excluded.region, region_key = excluded.region_key,
    subregion = excluded.subregion, subregion_key = excluded.subregion_key, population = excluded.population,
    currency_code = excluded.currency_code, currency_key = excluded.currency_key,
    exchange_rate = excluded.exchange_rate, estimated_gdp = excluded.estimated_gdp,
    flag_url = excluded.flag_url, last_refreshed_at = excluded.last_refreshed_at
