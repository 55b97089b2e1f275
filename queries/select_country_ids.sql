-- Every stored country: its case-folded name, id, alpha-3 code and the digest of its child rows.
-- No params.
SELECT name_key, id, alpha3_code, keys_digest FROM countries
