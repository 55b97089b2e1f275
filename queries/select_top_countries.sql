-- Name and estimated GDP of the countries with the largest GDP. Params: :limit.
SELECT name, estimated_gdp FROM countries
WHERE estimated_gdp IS NOT NULL
ORDER BY estimated_gdp DESC, id
LIMIT :limit
