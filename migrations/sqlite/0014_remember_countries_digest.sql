-- The digest of the entries the last refresh wrote its rows from (countries.core.entries_digest):
-- a refresh whose entries have the same digest writes only the rates, estimates and refresh time
-- of the rows it finds, since the rest of each row is what those entries decide. NULL: unknown
-- (before this, or after a refresh that did not say), and every row is written whole.
ALTER TABLE refresh_state ADD COLUMN countries_digest TEXT;
