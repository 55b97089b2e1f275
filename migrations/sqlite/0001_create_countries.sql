-- The country cache and the single row holding the refresh state (time, summary PNG, data version).
-- name_key, region_key and currency_key are NFC + case-folded copies computed by the service, so
-- lookups are case-insensitive for all of Unicode and still accent-sensitive.
CREATE TABLE countries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    capital TEXT,
    region TEXT,
    region_key TEXT,
    population INTEGER NOT NULL,
    currency_code TEXT,
    currency_key TEXT,
    exchange_rate REAL,
    estimated_gdp REAL,
    flag_url TEXT,
    last_refreshed_at TEXT NOT NULL
);
CREATE UNIQUE INDEX countries_name_key ON countries (name_key);
CREATE INDEX countries_region_key ON countries (region_key);
CREATE INDEX countries_currency_key ON countries (currency_key);
CREATE INDEX countries_population ON countries (population);
CREATE INDEX countries_gdp ON countries (estimated_gdp);
CREATE TABLE refresh_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data_version INTEGER NOT NULL DEFAULT 0,
    last_refreshed_at TEXT,
    summary_png BLOB,
    summary_etag TEXT
);
INSERT INTO refresh_state (id) VALUES (1);
