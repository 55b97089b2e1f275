-- One rate against the US dollar. Params: :code, :rate.
INSERT INTO rates (code, rate) VALUES (:code, :rate)
