-- 0017: what people see (issue 14): who chose a case's priority, questions kept
-- while the asker chooses or a manager approves, which relayed message carries
-- which thread message, and whom threatdesk has introduced itself to.

-- Owned by casework. Who chose the priority when the case was opened: empty
-- when it was derived from the subject (casework.DerivePriority).
ALTER TABLE cases
    ADD COLUMN priority_by_platform  text NOT NULL DEFAULT '',
    ADD COLUMN priority_by_workspace text NOT NULL DEFAULT '',
    ADD COLUMN priority_by_user      text NOT NULL DEFAULT '',
    ADD COLUMN priority_by_name      text NOT NULL DEFAULT '';

-- Owned by the bot package. A question that did not open a case at once: its
-- subject is not known to threatdesk (the asker confirms), the org already has
-- an open case about it (the asker follows it or opens a new one), or the org
-- has no credits left (a manager approves one more case). It is kept here, not
-- lost, until one choice is made: the first choice is stored with a
-- conditional UPDATE, so two presses (a double click, two replicas) do it once.
-- key is the inbound key of the command or form that asked: a retried command
-- finds its question here instead of keeping it twice.
CREATE TABLE bot_pending_ask (
    id              bigserial   PRIMARY KEY,
    key             text        NOT NULL UNIQUE,
    reason          text        NOT NULL CHECK (reason IN ('unknown_subject', 'open_case', 'no_credits')),
    org             text        NOT NULL,
    asker_platform  text        NOT NULL,
    asker_workspace text        NOT NULL,
    asker_user      text        NOT NULL,
    asker_name      text        NOT NULL DEFAULT '',
    channel         text        NOT NULL,
    subject         jsonb       NOT NULL,
    question        text        NOT NULL,
    priority        text        NOT NULL DEFAULT '',
    existing_ref    text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    choice          text,
    chosen_by       text        NOT NULL DEFAULT '',
    chosen_at       timestamptz,
    case_ref        text        NOT NULL DEFAULT ''
);

-- Owned by the bot package. The message a thread message was relayed as, on
-- the other side of its case: an edit of the original edits it, a deletion
-- replaces its text. Written with the relay's delivery record.
CREATE TABLE bot_relay (
    source_platform text        NOT NULL,
    source_channel  text        NOT NULL,
    source_message  text        NOT NULL,
    stream          text        NOT NULL,
    target          text        NOT NULL,
    platform        text        NOT NULL,
    workspace       text        NOT NULL,
    channel         text        NOT NULL,
    message         text        NOT NULL,
    side            text        NOT NULL,
    author_id       text        NOT NULL,
    author_name     text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_platform, source_channel, source_message)
);

-- Owned by the bot package. Where and to whom threatdesk has said what it does:
-- a channel it was invited to, a guild it joined, a person's first help.
CREATE TABLE bot_greeted (
    platform   text        NOT NULL,
    scope      text        NOT NULL CHECK (scope IN ('channel', 'guild', 'user', 'home')),
    id         text        NOT NULL,
    greeted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, scope, id)
);
