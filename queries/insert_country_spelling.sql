-- One spelling key of a country. Params: :key, :country_id.
INSERT INTO country_spellings (spelling_key, country_id) VALUES (:key, :country_id)
