-- Users. id is a UUID4 made by the service. email_key is the NFC + case-folded address computed
-- by the service; its unique index is what makes two racing registrations of one address fail.
-- Timestamps are ISO 8601 UTC strings with whole seconds, so they sort as they read.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    age INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email_key);
CREATE INDEX users_created_at ON users (created_at, id);
