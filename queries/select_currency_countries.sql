-- Each currency a stored country uses, first or not, with that country's alpha-2 code (may be
-- null). No params.
SELECT cc.code, c.alpha2_code FROM country_currencies cc JOIN countries c ON c.id = cc.country_id
