CREATE INDEX countries_gdp ON countries (estimated_gdp);
DROP INDEX countries_population_desc;
DROP INDEX countries_gdp_asc;
DROP INDEX countries_gdp_desc;
ALTER TABLE countries DROP COLUMN gdp_missing;
