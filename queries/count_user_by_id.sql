-- 1 if the user still exists, else 0. Params: :id.
SELECT COUNT(*) FROM users WHERE id = :id
