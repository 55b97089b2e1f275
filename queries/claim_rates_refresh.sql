-- Claim this interval's scheduled rates refresh unless a process claimed one since :due (as
-- claim_scheduled_refresh, for the rates). Params: :now, :due (Unix seconds), :token.
UPDATE refresh_state SET rates_claimed_at = :now, rates_claimed_by = :token
WHERE id = 1 AND (rates_claimed_at IS NULL OR rates_claimed_at <= :due)
