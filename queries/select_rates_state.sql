-- Which source the stored rates came from, its provider time and the refresh time. No params.
SELECT rates_source, rates_updated_at, last_refreshed_at FROM refresh_state WHERE id = 1
