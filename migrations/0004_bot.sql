-- 0004: bot: delivered chat messages per event, inbound dedup keys, notification cards.
-- Owned by the bot package.

-- One row per chat message an outbox event produced, per target ("receipt",
-- "desk", "receipt.note", ...). The delivery worker writes it the moment the
-- platform answers, before the event is marked delivered, so a retried event
-- (a 500 on its second part, a lease that ran out) skips the parts already
-- posted instead of posting them twice.
CREATE TABLE bot_delivery (
    outbox_id  bigint      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    part       text        NOT NULL,
    platform   text        NOT NULL,
    workspace  text        NOT NULL,
    channel    text        NOT NULL,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, part)
);

-- The message a stream's card lives in, per target: a case's receipt in the
-- requester's channel and its card on the desk, an incident's notification.
-- Later events of the stream edit these messages and post into their threads,
-- so they must hit the message that was really posted, on whichever platform.
CREATE TABLE bot_anchor (
    stream     text        NOT NULL,
    target     text        NOT NULL,
    platform   text        NOT NULL,
    workspace  text        NOT NULL,
    channel    text        NOT NULL,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, target)
);

-- A thread reply or a button press names the message it belongs to; this
-- finds the case or incident behind it.
CREATE UNIQUE INDEX bot_anchor_ref_idx ON bot_anchor (platform, channel, message);

-- Inbound idempotency: a slash command, button press or thread reply that a
-- platform delivers twice (Slack retries, Socket Mode redelivery, a double
-- click) carries the same key and is handled once, across restarts and
-- replicas. Rows older than a day may be pruned (seen_at index).
CREATE TABLE bot_inbound (
    key     text        PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_inbound_seen_idx ON bot_inbound (seen_at);

-- Where each case was asked: casework knows the requester but not chat
-- channels, and an org may have several channels. The bot writes this right
-- after opening a case; the worker posts the receipt here (and waits briefly
-- for the row if it renders the "opened" event first).
CREATE TABLE bot_case_origin (
    ref        text        PRIMARY KEY,
    platform   text        NOT NULL,
    workspace  text        NOT NULL,
    channel    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
