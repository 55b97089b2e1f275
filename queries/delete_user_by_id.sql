-- Delete one user. Params: :id.
DELETE FROM users WHERE id = :id
