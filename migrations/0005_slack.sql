-- 0005: Slack deliveries already processed.
--
-- Slack redelivers what it thinks was not acknowledged (Socket Mode
-- retry_attempt, HTTP X-Slack-Retry-Num) and a captured signed request can be
-- replayed: a redelivery must not do the work twice, across restarts and
-- replicas. adapters/slack's PGDeduper inserts each delivery key with
-- ON CONFLICT DO NOTHING; a key already present means "seen".
CREATE TABLE slack_inbound_seen (
    key     text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- The hourly clean-up deletes keys older than a day.
CREATE INDEX slack_inbound_seen_seen_at ON slack_inbound_seen (seen_at);
