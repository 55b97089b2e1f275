DROP INDEX countries_search_key;
ALTER TABLE countries DROP COLUMN search_key;
