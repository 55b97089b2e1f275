-- Who holds the latest scheduled-refresh claim. No params.
SELECT schedule_claimed_by FROM refresh_state WHERE id = 1
