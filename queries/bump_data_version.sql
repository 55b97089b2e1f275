-- Mark the data as changed. Being a write, it also takes the lock that serialises writers. No params.
UPDATE refresh_state SET data_version = data_version + 1 WHERE id = 1
