-- The stored countries that have this case-folded alternative spelling; two are enough to know
-- it is not one country's. Params: :key.
SELECT s.country_id FROM country_spellings s JOIN countries c ON c.id = s.country_id
WHERE s.spelling_key = :key
LIMIT 2
