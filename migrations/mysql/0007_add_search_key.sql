-- search_key: the name NFKD-decomposed, combining marks dropped and case-folded, computed by the
-- service at each refresh. `?q=` searches it (ignoring case and accents) and the name sorts order
-- by it, then by the exact spelling: the index holds that order. Rows stored before this
-- migration get LOWER(name) until the next refresh rewrites them.
ALTER TABLE countries
    ADD COLUMN search_key VARBINARY(1020) NOT NULL DEFAULT '',
    ADD INDEX countries_search_key (search_key, name, id);
UPDATE countries SET search_key = LOWER(name);
