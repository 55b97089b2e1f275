-- Upserts took an AUTOINCREMENT value per country on every refresh (fixed in
-- upsert_countries.sqlite.sql): the next new country gets the id after the largest in use again.
UPDATE sqlite_sequence SET seq = (SELECT COALESCE(MAX(id), 0) FROM countries) WHERE name = 'countries';
