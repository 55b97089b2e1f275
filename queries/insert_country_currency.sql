-- One currency a country uses: its case-folded key and its code. Params: :key, :country_id, :code.
INSERT INTO country_currencies (currency_key, country_id, code) VALUES (:key, :country_id, :code)
