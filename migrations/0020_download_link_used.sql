-- 0020: a sample download link works once. Anyone holding the URL (browser
-- history, a proxy's log) could fetch the sample again for its ten minutes,
-- recorded on the chain of custody as the expert it was issued to.
ALTER TABLE case_download_links ADD COLUMN used_at timestamptz;
