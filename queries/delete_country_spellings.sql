-- The spellings rows of the countries given; {ids} becomes one placeholder per id (:id_0,
-- :id_1, ...). Params: those.
DELETE FROM country_spellings WHERE country_id IN ({ids})
