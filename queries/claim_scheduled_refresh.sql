-- Claim this interval's scheduled refresh unless a process claimed one since :due. One statement, so
-- racing processes cannot both succeed. Params: :now, :due (Unix seconds), :token.
UPDATE refresh_state SET schedule_claimed_at = :now, schedule_claimed_by = :token
WHERE id = 1 AND (schedule_claimed_at IS NULL OR schedule_claimed_at <= :due)
