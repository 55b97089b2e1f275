-- Store a user's new values. Params: :id, :name, :email, :email_key, :age, :updated_at.
UPDATE users
SET name = :name, email = :email, email_key = :email_key, age = :age, updated_at = :updated_at
WHERE id = :id
