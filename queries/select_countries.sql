-- One page of countries. {filters} and {order} come only from whitelists in service.py.
-- Params: :region_key, :currency_key (when filtered), :limit, :offset.
SELECT id, name, capital, region, population, currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at
FROM countries
{filters}
ORDER BY {order}
LIMIT :limit OFFSET :offset
