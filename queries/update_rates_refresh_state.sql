-- Record a successful rates refresh (the countries source stays). Params: :last_refreshed_at,
-- :summary_png, :summary_etag, :rates_source, :rates_updated_at.
UPDATE refresh_state
SET last_refreshed_at = :last_refreshed_at, summary_png = :summary_png, summary_etag = :summary_etag,
    rates_source = :rates_source, rates_updated_at = :rates_updated_at
WHERE id = 1
