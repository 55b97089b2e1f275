-- No schedule asks the rates upstream before :held_until (Unix seconds; a later hold kept).
UPDATE refresh_state SET rates_held_until = :held_until
WHERE id = 1 AND (rates_held_until IS NULL OR rates_held_until < :held_until)
