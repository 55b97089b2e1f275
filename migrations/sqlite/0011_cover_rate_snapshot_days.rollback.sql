CREATE INDEX rate_snapshots_day ON rate_snapshots (day, taken_at);
DROP INDEX rate_snapshots_day_source;
