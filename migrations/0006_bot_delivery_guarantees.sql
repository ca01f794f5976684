-- 0006: bot: attempts whose outcome is unknown, and anchors that will never exist.
-- Owned by the bot package.

-- One row per message part a delivery worker is about to post, written before
-- the platform is called and removed when the part's bot_delivery row is
-- written. A row still here on a later attempt means an earlier attempt may
-- have reached the platform without its answer coming back (the process died,
-- the connection dropped): that part is looked for on the platform (Slack:
-- message metadata in the channel's history) before it is posted again.
-- started_at is the first such attempt: the search starts there.
CREATE TABLE bot_attempt (
    outbox_id  bigint      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    part       text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, part)
);

-- A stream's anchor (a case's receipt or desk card, an incident's
-- notification) that failed for good: its part was refused permanently or ran
-- out of attempts, or its event went dead. Later parts that edit it or post in
-- its thread are dead too (counted and logged with this reason) instead of
-- waiting for it, and the other side of a case is told once: notice_row is
-- the outbox row that carries that notice, claimed by the first row that
-- meets the dead anchor.
CREATE TABLE bot_anchor_dead (
    stream     text        NOT NULL,
    target     text        NOT NULL,
    outbox_id  bigint      NOT NULL,
    reason     text        NOT NULL,
    -- code is the platform's short error code ("channel_not_found"), shown
    -- in the notice; reason is for operators.
    code       text        NOT NULL DEFAULT '',
    notice_row bigint,
    dead_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, target)
);
