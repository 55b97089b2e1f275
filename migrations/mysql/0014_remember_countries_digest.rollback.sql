ALTER TABLE refresh_state DROP COLUMN countries_digest;
