-- What a refresh reads and the next routes serve: each country's ISO codes and subregion, the
-- whole USD rates table with the provider's time and the sources used, the currency names the
-- countries source gives, and a history snapshot of the rates for each new provider time.
ALTER TABLE countries
    ADD COLUMN alpha2_code CHAR(2) NULL,
    ADD COLUMN alpha3_code CHAR(3) NULL,
    ADD COLUMN subregion VARCHAR(255) NULL,
    ADD COLUMN subregion_key VARBINARY(3060) NULL,
    ADD INDEX countries_alpha2_code (alpha2_code),
    ADD INDEX countries_alpha3_code (alpha3_code),
    ADD INDEX countries_subregion_key (subregion_key, id);
ALTER TABLE refresh_state
    ADD COLUMN countries_source VARCHAR(32) NULL,
    ADD COLUMN rates_source VARCHAR(32) NULL,
    ADD COLUMN rates_updated_at CHAR(20) NULL;
CREATE TABLE rates (
    code VARCHAR(16) NOT NULL PRIMARY KEY,
    rate DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE currencies (
    code VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NULL,
    symbol VARCHAR(64) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- One row per provider time stored; `day` (YYYY-MM-DD, UTC) picks a day's last snapshot.
CREATE TABLE rate_snapshots (
    taken_at CHAR(20) NOT NULL PRIMARY KEY,
    day CHAR(10) NOT NULL,
    source VARCHAR(32) NOT NULL,
    KEY rate_snapshots_day (day, taken_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Read by (code, time range): the primary key serves it without a scan.
CREATE TABLE rate_history (
    code VARCHAR(16) NOT NULL,
    taken_at CHAR(20) NOT NULL,
    rate DOUBLE NOT NULL,
    PRIMARY KEY (code, taken_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
