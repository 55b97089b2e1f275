-- What a refresh changes in a row whose entry is the one the last refresh wrote it from: its
-- rate, estimated GDP and refresh time. As an INSERT the driver sends the rows as one statement
-- (an UPDATE is a round trip a row); the row exists (found by id under the write lock), so only
-- the UPDATE part runs, and the NOT NULL columns are there only to make the INSERT well-formed.
-- Params: :id, :name, :name_key, :population, :exchange_rate, :estimated_gdp, :last_refreshed_at.
INSERT INTO countries (id, name, name_key, population, exchange_rate, estimated_gdp, last_refreshed_at)
VALUES (:id, :name, :name_key, :population, :exchange_rate, :estimated_gdp, :last_refreshed_at)
ON DUPLICATE KEY UPDATE
    exchange_rate = VALUES(exchange_rate), estimated_gdp = VALUES(estimated_gdp),
    last_refreshed_at = VALUES(last_refreshed_at)
