-- Who holds the latest scheduled rates refresh claim. No params.
SELECT rates_claimed_by FROM refresh_state WHERE id = 1
