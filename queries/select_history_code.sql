-- A code if any snapshot of the history has it (a point read of the primary key). Params: :code.
SELECT code FROM rate_history WHERE code = :code LIMIT 1
