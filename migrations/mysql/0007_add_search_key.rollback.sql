ALTER TABLE countries DROP INDEX countries_search_key, DROP COLUMN search_key;
