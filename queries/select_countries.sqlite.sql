-- One page of countries. {filters} and {order} come only from whitelists in countries/db.py.
-- (On MySQL the server writes each row as JSON: select_countries.mysql.sql.)
-- Params: one per filter clause (:region, :currency, ...), :limit, :offset.
SELECT id, name, official_name, alpha2_code, alpha3_code, capital, region, subregion, population,
       currency_code, exchange_rate, estimated_gdp, flag_url, last_refreshed_at
FROM countries
{filters}
ORDER BY {order}
LIMIT :limit OFFSET :offset
