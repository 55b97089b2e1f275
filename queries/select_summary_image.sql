-- The summary PNG and its ETag (NULL before the first refresh). No params.
SELECT summary_png, summary_etag FROM refresh_state WHERE id = 1
