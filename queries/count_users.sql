-- How many users there are. No params.
SELECT COUNT(*) FROM users
