-- When the rates provider says it next updates (Unix seconds, or NULL). Params: :next_update_at.
UPDATE refresh_state SET rates_next_update_at = :next_update_at WHERE id = 1
