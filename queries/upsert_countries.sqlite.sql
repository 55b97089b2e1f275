-- Insert a country (:id NULL) or update the one with that id, found by its alpha-3 code or name (a rename keeps the id). Params: one per column.
-- Conflicting on the id, not on name_key: an insert that turns into an update on name_key has
-- already taken the next AUTOINCREMENT value, so every refresh used up one id per country.
INSERT INTO countries (id, name, name_key, search_key, official_name, official_key, independent, facts, search_text, keys_digest, alpha2_code, alpha3_code, capital, region, region_key, subregion, subregion_key, population, currency_code, currency_key, exchange_rate, estimated_gdp, flag_url, last_refreshed_at)
VALUES (:id, :name, :name_key, :search_key, :official_name, :official_key, :independent, :facts, :search_text, :keys_digest, :alpha2_code, :alpha3_code, :capital, :region, :region_key, :subregion, :subregion_key, :population, :currency_code, :currency_key, :exchange_rate, :estimated_gdp, :flag_url, :last_refreshed_at)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, name_key = excluded.name_key, official_name = excluded.official_name, official_key = excluded.official_key, independent = excluded.independent, facts = excluded.facts, search_text = excluded.search_text, keys_digest = excluded.keys_digest,
    search_key = excluded.search_key, alpha2_code = excluded.alpha2_code, alpha3_code = excluded.alpha3_code,
    capital = excluded.capital, region = excluded.region, region_key = excluded.region_key,
    subregion = excluded.subregion, subregion_key = excluded.subregion_key, population = excluded.population,
    currency_code = excluded.currency_code, currency_key = excluded.currency_key,
    exchange_rate = excluded.exchange_rate, estimated_gdp = excluded.estimated_gdp,
    flag_url = excluded.flag_url, last_refreshed_at = excluded.last_refreshed_at
