-- The id of every stored country by its case-folded name. No params.
SELECT name_key, id FROM countries
