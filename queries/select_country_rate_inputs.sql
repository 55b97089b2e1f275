-- What a rates refresh recomputes each stored country from: id, population, currency. No params.
SELECT id, population, currency_code FROM countries ORDER BY id
