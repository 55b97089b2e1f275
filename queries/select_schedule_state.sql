-- What the schedules wait for (Unix seconds, NULL for none): the last claims, the upstreams'
-- holds, open.er-api's next update. No params.
SELECT schedule_claimed_at, rates_claimed_at, countries_held_until, rates_held_until,
       rates_next_update_at
FROM refresh_state WHERE id = 1
