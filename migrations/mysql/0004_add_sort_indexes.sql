-- Indexes that hold each sort order of GET /countries, ties by id, so a page of a sorted list
-- reads only that page. Nulls last needs a column to sort on: gdp_missing.
ALTER TABLE countries
    ADD COLUMN gdp_missing TINYINT GENERATED ALWAYS AS (estimated_gdp IS NULL) STORED,
    ADD INDEX countries_gdp_desc (gdp_missing, estimated_gdp DESC, id),
    ADD INDEX countries_gdp_asc (gdp_missing, estimated_gdp, id),
    ADD INDEX countries_population_desc (population DESC, id),
    DROP INDEX countries_gdp;
