-- Indexes that hold each sort order of GET /countries, ties by id, so a page of a sorted list
-- reads only that page. Nulls last needs a column to sort on: gdp_missing.
ALTER TABLE countries ADD COLUMN gdp_missing INTEGER GENERATED ALWAYS AS (estimated_gdp IS NULL) VIRTUAL;
CREATE INDEX countries_gdp_desc ON countries (gdp_missing, estimated_gdp DESC, id);
CREATE INDEX countries_gdp_asc ON countries (gdp_missing, estimated_gdp, id);
CREATE INDEX countries_population_desc ON countries (population DESC, id);
DROP INDEX countries_gdp;
