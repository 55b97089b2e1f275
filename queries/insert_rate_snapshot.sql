-- A new snapshot of the rates for the history. Params: :taken_at, :day, :source, :refreshed_at.
INSERT INTO rate_snapshots (taken_at, day, source, refreshed_at) VALUES (:taken_at, :day, :source, :refreshed_at)
