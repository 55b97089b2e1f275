-- One rate of a snapshot. Params: :code, :taken_at, :rate.
INSERT INTO rate_history (code, taken_at, rate) VALUES (:code, :taken_at, :rate)
