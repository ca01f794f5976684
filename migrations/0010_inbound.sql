-- 0010: durable inbound work, and the one place where "this delivery was seen" lives.
-- Owned by the bot package.
--
-- Before this, a slash command, button, form or thread reply was acknowledged
-- and then handled by a goroutine: a crash, a database blip or a timeout lost
-- it while its author believed it done. And inbound deduplication was kept
-- twice, in bot_inbound (keys the bot handled) and slack_inbound_seen (keys the
-- Slack adapter saw, and replayed signatures). Both tables are replaced by
-- this one.
--
-- The bot inserts one row per inbound event that has work to do, in the same
-- statement that deduplicates it (the key is the primary key), before the
-- platform is acknowledged: an event is acknowledged exactly when its row
-- exists. Rows are then processed from here with retries, on any replica:
-- claimed with FOR UPDATE SKIP LOCKED and a lease (locked_until), so a
-- process that dies mid-way leaves a row another replica takes once the lease
-- runs out. The replica that inserts a row claims it in the same statement and
-- starts on it at once; a graceful stop gives it back (NOTIFY
-- threatdesk_inbound).
ALTER TABLE bot_inbound RENAME TO bot_inbound_0004;
ALTER INDEX bot_inbound_seen_idx RENAME TO bot_inbound_0004_seen_idx;

CREATE TABLE bot_inbound (
    -- platform:kind:delivery key (a Slack trigger_id or event_id, a Discord
    -- interaction or message id); a redelivery carries the same key.
    key          text        PRIMARY KEY,
    platform     text        NOT NULL,
    -- command, action, submit, reply: work to do (payload says what).
    -- form: a command or button answered with a form; recorded so that a
    -- redelivery does not open it twice. replay: a signed HTTP request's
    -- signature, so that a replay is refused on every replica. seen: a key
    -- carried over from the tables this one replaces.
    kind         text        NOT NULL
        CHECK (kind IN ('command', 'action', 'submit', 'reply', 'form', 'replay', 'seen')),
    -- What redoes the work: the event as the adapter handed it over.
    payload      jsonb,
    -- What the adapter needs to answer the person after a restart (a Slack
    -- response URL, a Discord interaction token). It can post as the app
    -- for a while, so it is cleared as soon as the row is settled.
    responder    jsonb,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- Not before: retry backoff pushes this forward.
    available_at timestamptz NOT NULL DEFAULT now(),
    -- A claim is a lease; NULL when nobody holds the row.
    locked_until timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    done_at      timestamptz,
    -- Gave up: the person was told, an operator reads last_error.
    dead_at      timestamptz,
    last_error   text,
    CHECK (kind IN ('command', 'action', 'submit', 'reply') OR done_at IS NOT NULL)
);

-- Workers look only at rows with work left; this partial index keeps that
-- cheap however many settled keys are kept for deduplication.
CREATE INDEX bot_inbound_pending_idx ON bot_inbound (available_at)
    WHERE done_at IS NULL AND dead_at IS NULL;

-- Pruning: settled keys are kept for two days (longer than any platform
-- redelivers), replay keys for minutes (signatures expire after five).
CREATE INDEX bot_inbound_received_idx ON bot_inbound (received_at);

-- The dead-row gauge.
CREATE INDEX bot_inbound_dead_idx ON bot_inbound (dead_at) WHERE dead_at IS NOT NULL;

-- Keys the bot already handled stay handled.
INSERT INTO bot_inbound (key, platform, kind, received_at, available_at, done_at)
SELECT key, split_part(key, ':', 1),
       CASE WHEN split_part(key, ':', 2) IN ('command', 'action', 'submit', 'reply') THEN split_part(key, ':', 2) ELSE 'seen' END,
       seen_at, seen_at, seen_at
FROM bot_inbound_0004
ON CONFLICT (key) DO NOTHING;

-- Replayed signatures were keyed on the raw header ("v0=" and hex, which a
-- replay could upper-case); they are keyed on the decoded bytes now, written
-- as lower-case hex.
INSERT INTO bot_inbound (key, platform, kind, received_at, available_at, done_at)
SELECT 'slack:sig:' || lower(substr(key, length('slack:sig:v0=') + 1)), 'slack', 'replay', seen_at, seen_at, seen_at
FROM slack_inbound_seen
WHERE key LIKE 'slack:sig:v0=%'
ON CONFLICT (key) DO NOTHING;

-- The Slack adapter's own delivery keys (slack:t:, slack:e:) are not carried
-- over: every delivery of theirs that had work to do is in bot_inbound_0004
-- under the bot's key, and the adapter no longer keeps a record of its own.
DROP TABLE bot_inbound_0004;
DROP TABLE slack_inbound_seen;
