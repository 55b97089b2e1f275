ALTER TABLE countries
    ADD INDEX countries_gdp (estimated_gdp),
    DROP INDEX countries_population_desc,
    DROP INDEX countries_gdp_asc,
    DROP INDEX countries_gdp_desc,
    DROP COLUMN gdp_missing;
