-- What a refresh reads and the next routes serve: each country's ISO codes and subregion, the
-- whole USD rates table with the provider's time and the sources used, the currency names the
-- countries source gives, and a history snapshot of the rates for each new provider time.
ALTER TABLE countries ADD COLUMN alpha2_code TEXT;
ALTER TABLE countries ADD COLUMN alpha3_code TEXT;
ALTER TABLE countries ADD COLUMN subregion TEXT;
ALTER TABLE countries ADD COLUMN subregion_key TEXT;
CREATE INDEX countries_alpha2_code ON countries (alpha2_code);
CREATE INDEX countries_alpha3_code ON countries (alpha3_code);
CREATE INDEX countries_subregion_key ON countries (subregion_key, id);
ALTER TABLE refresh_state ADD COLUMN countries_source TEXT;
ALTER TABLE refresh_state ADD COLUMN rates_source TEXT;
ALTER TABLE refresh_state ADD COLUMN rates_updated_at TEXT;
CREATE TABLE rates (
    code TEXT PRIMARY KEY,
    rate REAL NOT NULL
);
CREATE TABLE currencies (
    code TEXT PRIMARY KEY,
    name TEXT,
    symbol TEXT
);
-- One row per provider time stored; `day` (YYYY-MM-DD, UTC) picks a day's last snapshot.
CREATE TABLE rate_snapshots (
    taken_at TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX rate_snapshots_day ON rate_snapshots (day, taken_at);
-- Read by (code, time range): the primary key serves it without a scan.
CREATE TABLE rate_history (
    code TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    rate REAL NOT NULL,
    PRIMARY KEY (code, taken_at)
) WITHOUT ROWID;
