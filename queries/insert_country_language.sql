-- One language key of a country. Params: :key, :country_id.
INSERT INTO country_languages (language_key, country_id) VALUES (:key, :country_id)
