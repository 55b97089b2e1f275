-- Insert a country (:id NULL) or update the one with that id, found by its alpha-3 code or name (a rename keeps the id). Params: one per column.
-- VALUES(col) rather than an alias: MariaDB has no INSERT ... AS new.
INSERT INTO countries (id, name, name_key, search_key, official_name, official_key, independent, facts, search_text, keys_digest, alpha2_code, alpha3_code, capital, region, region_key, subregion, subregion_key, population, currency_code, currency_key, exchange_rate, estimated_gdp, flag_url, last_refreshed_at)
VALUES (:id, :name, :name_key, :search_key, :official_name, :official_key, :independent, :facts, :search_text, :keys_digest, :alpha2_code, :alpha3_code, :capital, :region, :region_key, :subregion, :subregion_key, :population, :currency_code, :currency_key, :exchange_rate, :estimated_gdp, :flag_url, :last_refreshed_at)
ON DUPLICATE KEY UPDATE
    name = VALUES(name), name_key = VALUES(name_key), official_name = VALUES(official_name), official_key = VALUES(official_key), independent = VALUES(independent), facts = VALUES(facts), search_text = VALUES(search_text), keys_digest = VALUES(keys_digest),
    search_key = VALUES(search_key), alpha2_code = VALUES(alpha2_code), alpha3_code = VALUES(alpha3_code),
    capital = VALUES(capital), region = VALUES(region), region_key = VALUES(region_key),
    subregion = VALUES(subregion), subregion_key = VALUES(subregion_key), population = VALUES(population),
    currency_code = VALUES(currency_code), currency_key = VALUES(currency_key),
    exchange_rate = VALUES(exchange_rate), estimated_gdp = VALUES(estimated_gdp),
    flag_url = VALUES(flag_url), last_refreshed_at = VALUES(last_refreshed_at)
