-- The snapshots of the days from :first_day to :last_day (YYYY-MM-DD, inclusive), oldest first,
-- as (taken_at, day, source): a range read of the index on (day, taken_at, source) alone, in its
-- order (a day is its snapshots' date, so day then time is time order).
SELECT taken_at, day, source FROM rate_snapshots
WHERE day >= :first_day AND day <= :last_day
ORDER BY day, taken_at
