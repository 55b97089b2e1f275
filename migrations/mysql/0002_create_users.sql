-- Users. id is a UUID4 made by the service. email_key is the NFC + case-folded address computed
-- by the service; its unique index is what makes two racing registrations of one address fail.
-- Timestamps are ISO 8601 UTC strings with whole seconds, so they sort as they read.
CREATE TABLE users (
    id CHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(255) NOT NULL,
    email_key VARCHAR(765) NOT NULL,
    age SMALLINT UNSIGNED NOT NULL,
    created_at CHAR(20) NOT NULL,
    updated_at CHAR(20) NOT NULL,
    UNIQUE KEY users_email_key (email_key),
    KEY users_created_at (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
