-- The more facts of a country. official_name and its case-folded key (GET /countries/{name} looks
-- it up), `independent` (a filter), `facts` (the rest, as JSON, returned only when asked for) and
-- search_text (the folded name, official name and alternative spellings that `?q=` searches).
-- The currencies, languages and alternative spellings a country has are rows of their own, so
-- that `?currency=`, `?language=` and a look-up by spelling use an index, not a scan.
-- keys_digest says which child rows a row has, so that a refresh rewrites only those that change.
-- Rows stored before this migration keep their one currency until the next refresh.
ALTER TABLE countries ADD COLUMN official_name TEXT;
ALTER TABLE countries ADD COLUMN official_key TEXT;
ALTER TABLE countries ADD COLUMN independent INTEGER;
ALTER TABLE countries ADD COLUMN facts TEXT;
ALTER TABLE countries ADD COLUMN search_text TEXT;
ALTER TABLE countries ADD COLUMN keys_digest TEXT;
CREATE INDEX countries_official_key ON countries (official_key);
CREATE INDEX countries_independent ON countries (independent, id);
UPDATE countries SET search_text = search_key;
CREATE TABLE country_currencies (
    currency_key TEXT NOT NULL,
    country_id INTEGER NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (currency_key, country_id)
) WITHOUT ROWID;
CREATE INDEX country_currencies_country ON country_currencies (country_id);
INSERT INTO country_currencies (currency_key, country_id, code)
    SELECT currency_key, id, currency_code FROM countries WHERE currency_key IS NOT NULL;
CREATE TABLE country_languages (
    language_key TEXT NOT NULL,
    country_id INTEGER NOT NULL,
    PRIMARY KEY (language_key, country_id)
) WITHOUT ROWID;
CREATE INDEX country_languages_country ON country_languages (country_id);
CREATE TABLE country_spellings (
    spelling_key TEXT NOT NULL,
    country_id INTEGER NOT NULL,
    PRIMARY KEY (spelling_key, country_id)
) WITHOUT ROWID;
CREATE INDEX country_spellings_country ON country_spellings (country_id);
