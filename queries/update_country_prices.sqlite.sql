-- What a refresh changes in a row whose entry is the one the last refresh wrote it from: its
-- rate, estimated GDP and refresh time. Params: :id, :exchange_rate, :estimated_gdp,
-- :last_refreshed_at.
UPDATE countries
SET exchange_rate = :exchange_rate, estimated_gdp = :estimated_gdp, last_refreshed_at = :last_refreshed_at
WHERE id = :id
