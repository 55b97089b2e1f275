-- How many countries match; {filters} comes only from a whitelist in countries/db.py.
SELECT COUNT(*) FROM countries {filters}
