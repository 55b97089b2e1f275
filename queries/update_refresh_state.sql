-- Record a successful refresh. Params: :last_refreshed_at, :summary_png, :summary_etag,
-- :countries_source, :rates_source, :rates_updated_at, :countries_digest.
UPDATE refresh_state
SET last_refreshed_at = :last_refreshed_at, summary_png = :summary_png, summary_etag = :summary_etag,
    countries_source = :countries_source, rates_source = :rates_source, rates_updated_at = :rates_updated_at,
    countries_digest = :countries_digest
WHERE id = 1
