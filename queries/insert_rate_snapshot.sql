-- A new snapshot of the rates for the history. Params: :taken_at, :day, :source.
INSERT INTO rate_snapshots (taken_at, day, source) VALUES (:taken_at, :day, :source)
