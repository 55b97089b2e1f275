-- One page of countries, each row one JSON object made by the server: the driver then reads one
-- value a row instead of thirteen (aiomysql decodes each value in Python: a 20-row page cost
-- ~760 us of client CPU as columns, ~380 us as JSON). The keys are those of
-- select_countries.sqlite.sql; countries/db.py decodes them into core.CountryRecord (see
-- country_page_rows). {filters} and {order} come only from whitelists in countries/db.py.
-- Params: one per filter clause (:region, :currency, ...), :limit, :offset.
SELECT JSON_OBJECT(
           'id', id, 'name', name, 'official_name', official_name, 'alpha2_code', alpha2_code, 'alpha3_code', alpha3_code,
           'capital', capital, 'region', region, 'subregion', subregion, 'population', population,
           'currency_code', currency_code, 'exchange_rate', exchange_rate,
           'estimated_gdp', estimated_gdp, 'flag_url', flag_url,
           'last_refreshed_at', last_refreshed_at
       ) AS country_json
FROM countries
{filters}
ORDER BY {order}
LIMIT :limit OFFSET :offset
