-- The data version, bumped by every write: a process whose cache saw another version drops it. No params.
SELECT data_version FROM refresh_state WHERE id = 1
