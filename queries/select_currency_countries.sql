-- Each currency code a stored country uses, with that country's alpha-2 code (may be null). No params.
SELECT currency_code, alpha2_code FROM countries WHERE currency_code IS NOT NULL
