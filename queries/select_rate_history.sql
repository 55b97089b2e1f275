-- One statement, two indexed range reads, no scan: the snapshots of the days :first_day to
-- :last_day (YYYY-MM-DD, inclusive) as (taken_at, source, NULL, NULL), from the index on (day,
-- taken_at, source); and the USD rates of up to 21 codes (:code0 .. :code20; repeat a code to fill
-- the slots) taken from :first_taken_at to :last_taken_at as (taken_at, NULL, code, rate), from the
-- primary key (code, taken_at). In no particular order.
SELECT taken_at, source, NULL AS code, NULL AS rate FROM rate_snapshots
WHERE day >= :first_day AND day <= :last_day
UNION ALL
SELECT taken_at, NULL, code, rate FROM rate_history
WHERE code IN (:code0, :code1, :code2, :code3, :code4, :code5, :code6, :code7, :code8, :code9,
               :code10, :code11, :code12, :code13, :code14, :code15, :code16, :code17, :code18,
               :code19, :code20)
  AND taken_at >= :first_taken_at AND taken_at <= :last_taken_at
