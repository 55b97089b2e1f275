-- Delete one country. Params: :id.
DELETE FROM countries WHERE id = :id
