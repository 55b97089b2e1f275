-- Record a successful refresh. Params: :last_refreshed_at, :summary_png, :summary_etag.
UPDATE refresh_state
SET last_refreshed_at = :last_refreshed_at, summary_png = :summary_png, summary_etag = :summary_etag
WHERE id = 1
