-- The country cache and the single row holding the refresh state (time, summary PNG, data version).
-- name_key, region_key and currency_key are NFC + case-folded copies computed by the service and
-- compared in binary: MySQL's default collations would also ignore accents.
CREATE TABLE countries (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    name_key VARCHAR(765) NOT NULL,
    capital VARCHAR(2048) NULL,
    region VARCHAR(255) NULL,
    region_key VARCHAR(765) NULL,
    population BIGINT UNSIGNED NOT NULL,
    currency_code VARCHAR(255) NULL,
    currency_key VARCHAR(765) NULL,
    exchange_rate DOUBLE NULL,
    estimated_gdp DOUBLE NULL,
    flag_url VARCHAR(2048) NULL,
    last_refreshed_at CHAR(20) NOT NULL,
    UNIQUE KEY countries_name_key (name_key),
    KEY countries_region_key (region_key),
    KEY countries_currency_key (currency_key),
    KEY countries_population (population),
    KEY countries_gdp (estimated_gdp)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE refresh_state (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    data_version BIGINT UNSIGNED NOT NULL DEFAULT 0,
    last_refreshed_at CHAR(20) NULL,
    summary_png MEDIUMBLOB NULL,
    summary_etag VARCHAR(80) NULL,
    CONSTRAINT refresh_state_single_row CHECK (id = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO refresh_state (id) VALUES (1);
