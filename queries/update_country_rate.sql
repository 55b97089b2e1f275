-- A country's rate and newly drawn GDP estimate after a rates refresh. Params: :id,
-- :exchange_rate, :estimated_gdp, :last_refreshed_at.
UPDATE countries SET exchange_rate = :exchange_rate, estimated_gdp = :estimated_gdp,
    last_refreshed_at = :last_refreshed_at
WHERE id = :id
