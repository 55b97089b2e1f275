-- One page of users, oldest first, ties by id. Params: :limit, :offset.
SELECT id, name, email, age, created_at, updated_at
FROM users
ORDER BY created_at, id
LIMIT :limit OFFSET :offset
