-- Insert one user. Params: :id, :name, :email, :email_key, :age, :created_at, :updated_at.
INSERT INTO users (id, name, email, email_key, age, created_at, updated_at)
VALUES (:id, :name, :email, :email_key, :age, :created_at, :updated_at)
