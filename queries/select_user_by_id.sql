-- One user by id. Params: :id.
SELECT id, name, email, age, created_at, updated_at FROM users WHERE id = :id
