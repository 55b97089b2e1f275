-- How many countries match; {filters} comes only from a whitelist in service.py.
SELECT COUNT(*) FROM countries {filters}
