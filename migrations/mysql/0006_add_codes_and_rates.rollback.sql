DROP TABLE rate_history;
DROP TABLE rate_snapshots;
DROP TABLE currencies;
DROP TABLE rates;
ALTER TABLE refresh_state DROP COLUMN rates_updated_at, DROP COLUMN rates_source, DROP COLUMN countries_source;
ALTER TABLE countries
    DROP INDEX countries_subregion_key,
    DROP INDEX countries_alpha3_code,
    DROP INDEX countries_alpha2_code,
    DROP COLUMN subregion_key,
    DROP COLUMN subregion,
    DROP COLUMN alpha3_code,
    DROP COLUMN alpha2_code;
