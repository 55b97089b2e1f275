-- The digest of the entries the last refresh wrote the rows from (NULL: unknown). No params.
SELECT countries_digest FROM refresh_state WHERE id = 1
