-- No schedule asks the countries upstream before :held_until (Unix seconds; a later hold kept).
UPDATE refresh_state SET countries_held_until = :held_until
WHERE id = 1 AND (countries_held_until IS NULL OR countries_held_until < :held_until)
