-- The more facts of a country. official_name and its case-folded key (GET /countries/{name} looks
-- it up), `independent` (a filter), `facts` (the rest, as JSON, returned only when asked for) and
-- search_text (the folded name, official name and alternative spellings that `?q=` searches).
-- The currencies, languages and alternative spellings a country has are rows of their own, so
-- that `?currency=`, `?language=` and a look-up by spelling use an index, not a scan.
-- keys_digest says which child rows a row has, so that a refresh rewrites only those that change.
-- Rows stored before this migration keep their one currency until the next refresh.
ALTER TABLE countries
    ADD COLUMN official_name VARCHAR(255) NULL,
    ADD COLUMN official_key VARBINARY(1020) NULL,
    ADD COLUMN independent TINYINT NULL,
    ADD COLUMN facts MEDIUMTEXT NULL,
    ADD COLUMN search_text MEDIUMBLOB NULL,
    ADD COLUMN keys_digest CHAR(32) NULL,
    ADD INDEX countries_official_key (official_key),
    ADD INDEX countries_independent (independent, id);
UPDATE countries SET search_text = search_key;
CREATE TABLE country_currencies (
    currency_key VARBINARY(1020) NOT NULL,
    country_id BIGINT UNSIGNED NOT NULL,
    code VARCHAR(255) NOT NULL,
    PRIMARY KEY (currency_key, country_id),
    KEY country_currencies_country (country_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO country_currencies (currency_key, country_id, code)
    SELECT currency_key, id, currency_code FROM countries WHERE currency_key IS NOT NULL;
CREATE TABLE country_languages (
    language_key VARBINARY(1020) NOT NULL,
    country_id BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (language_key, country_id),
    KEY country_languages_country (country_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE country_spellings (
    spelling_key VARBINARY(1020) NOT NULL,
    country_id BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (spelling_key, country_id),
    KEY country_spellings_country (country_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
