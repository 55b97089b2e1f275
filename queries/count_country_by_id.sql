-- 1 if the country still exists, else 0. Params: :id.
SELECT COUNT(*) FROM countries WHERE id = :id
