-- GET /rates/history reads a range of days with each snapshot's time and source: an index on
-- (day, taken_at, source) answers it alone, in order, without a look-up of each row. It replaces
-- the index on (day, taken_at), of which it is a superset.
CREATE INDEX rate_snapshots_day_source ON rate_snapshots (day, taken_at, source);
DROP INDEX rate_snapshots_day;
