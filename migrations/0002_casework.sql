-- 0002: casework: cases, messages, thread anchors, SLA state, credits and the hash-chained timeline.
-- Owned by the casework package.

-- One row per experts-on-demand case. The identity column is the number in
-- the human reference (EOD-<number>): sequential per deployment, and never
-- reused, because an identity value is never handed out twice (a rolled-back
-- open leaves a gap, not a duplicate).
CREATE TABLE cases (
    number                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org                    text        NOT NULL,
    -- Caller-supplied idempotency key (a slash command's delivery key, a
    -- form submission id): a retried command or a double click finds the
    -- case it already opened instead of opening a second one.
    open_key               text        NOT NULL,
    subject_kind           text        NOT NULL
        CHECK (subject_kind IN ('none', 'alert', 'device', 'file', 'incident')),
    subject_id             text        NOT NULL DEFAULT '',
    subject_name           text        NOT NULL DEFAULT '',
    subject_link           text        NOT NULL DEFAULT '',
    subject_severity       text        NOT NULL DEFAULT '',
    category               text        NOT NULL
        CHECK (category IN ('alert_inquiry', 'device_compromise', 'threat_intel', 'notification_question', 'other')),
    question               text        NOT NULL,
    priority               text        NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    requester_platform     text        NOT NULL,
    requester_workspace    text        NOT NULL,
    requester_user         text        NOT NULL,
    requester_name         text        NOT NULL DEFAULT '',
    contact                text        NOT NULL DEFAULT '',
    -- Empty assignee_user means nobody has taken the case.
    assignee_platform      text        NOT NULL DEFAULT '',
    assignee_workspace     text        NOT NULL DEFAULT '',
    assignee_user          text        NOT NULL DEFAULT '',
    assignee_name          text        NOT NULL DEFAULT '',
    status                 text        NOT NULL
        CHECK (status IN ('new', 'in_progress', 'more_info_needed', 'file_sample_needed',
                          'needs_more_time', 'concluded', 'closed', 'withdrawn')),
    summary                text        NOT NULL DEFAULT '',
    -- Whether the case still holds one of its org's credits (false after a
    -- refund on withdraw), so a credit is never given back twice.
    credit_used            boolean     NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    status_at              timestamptz NOT NULL,
    taken_at               timestamptz,
    first_response_at      timestamptz,
    concluded_at           timestamptz,
    closed_at              timestamptz,
    -- SLA clock. Targets are copied from the config at open so that a config
    -- change never moves the goalposts of a running case. The clock's running
    -- time is sla_elapsed_us plus (now - sla_running_since) while it runs;
    -- sla_running_since is NULL while paused (waiting on the requester) or
    -- stopped (concluded, closed, withdrawn). The full history is in
    -- case_status_periods; these columns are its running total, kept so that
    -- the sweep and the breaching list are index lookups.
    response_target_us     bigint      NOT NULL CHECK (response_target_us > 0),
    conclusion_target_us   bigint      NOT NULL CHECK (conclusion_target_us > 0),
    sla_elapsed_us         bigint      NOT NULL DEFAULT 0,
    sla_running_since      timestamptz,
    -- Each SLA notice is emitted exactly once: the sweep sets these with a
    -- conditional UPDATE (... WHERE x IS NULL) in the same transaction as the
    -- outbox event, so a restart or a second replica cannot emit it again.
    response_warned_at     timestamptz,
    response_breached_at   timestamptz,
    conclusion_warned_at   timestamptz,
    conclusion_breached_at timestamptz,
    -- Derived on every change (casework's Service.derive):
    -- due_at: the earliest due time of a running clock, for urgency order.
    due_at                 timestamptz,
    -- at_risk_at: when a pending clock passed (or will pass) its warning
    -- point; "breaching" means at_risk_at <= now.
    at_risk_at             timestamptz,
    -- next_sla_at: when the sweep next has a warning or breach to emit.
    next_sla_at            timestamptz,
    -- Head of the hash chain in case_timeline: deleting the newest entries
    -- (which leaves a shorter but consistent chain) is caught against these.
    timeline_len           integer     NOT NULL DEFAULT 0,
    timeline_head          bytea,
    CONSTRAINT cases_open_key_uniq UNIQUE (org, open_key)
);

-- Org-scoped listing (a member's "/experts cases") filters on org and status.
CREATE INDEX cases_org_status_idx ON cases (org, status);

-- "/experts cases mine": an expert's assigned cases.
CREATE INDEX cases_assignee_idx ON cases (assignee_user, status) WHERE assignee_user <> '';

-- The breaching list: only open cases with a pending clock have a value
-- here, so the partial index stays small however many cases are concluded.
CREATE INDEX cases_at_risk_idx ON cases (at_risk_at) WHERE at_risk_at IS NOT NULL;

-- The SLA sweep finds the cases with a notice due without scanning the table.
CREATE INDEX cases_next_sla_idx ON cases (next_sla_at) WHERE next_sla_at IS NOT NULL;

-- Concluded cases close themselves after a while; the sweep finds them here.
CREATE INDEX cases_concluded_idx ON cases (concluded_at) WHERE status = 'concluded';

-- Status history: one row per stay in a status. SLA figures (time spent per
-- status, running and paused time) are derived from these rows, not guessed.
CREATE TABLE case_status_periods (
    case_number bigint      NOT NULL REFERENCES cases (number),
    seq         integer     NOT NULL,
    status      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    PRIMARY KEY (case_number, seq)
);

-- The conversation between requester and expert, in order. Internal expert
-- notes are stored with internal = true and are never relayed.
CREATE TABLE case_messages (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_number       bigint      NOT NULL REFERENCES cases (number),
    side              text        NOT NULL CHECK (side IN ('requester', 'expert')),
    internal          boolean     NOT NULL DEFAULT false,
    author_platform   text        NOT NULL DEFAULT '',
    author_workspace  text        NOT NULL DEFAULT '',
    author_user       text        NOT NULL DEFAULT '',
    author_name       text        NOT NULL DEFAULT '',
    body              text        NOT NULL,
    chat_platform     text        NOT NULL DEFAULT '',
    chat_workspace    text        NOT NULL DEFAULT '',
    chat_channel      text        NOT NULL DEFAULT '',
    chat_message      text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    CHECK (NOT internal OR side = 'expert')
);

-- A case's messages in order.
CREATE INDEX case_messages_case_idx ON case_messages (case_number, id);

-- A redelivered chat reply (same chat message) is stored once.
CREATE UNIQUE INDEX case_messages_chat_uniq ON case_messages (case_number, chat_platform, chat_channel, chat_message)
    WHERE chat_message <> '';

-- Thread anchors: the requester's receipt message and the desk card. A reply
-- in either thread names its parent message; the unique index both makes
-- that lookup an index probe and stops two cases claiming one message.
CREATE TABLE case_anchors (
    case_number bigint      NOT NULL REFERENCES cases (number),
    kind        text        NOT NULL CHECK (kind IN ('requester', 'desk')),
    platform    text        NOT NULL,
    workspace   text        NOT NULL DEFAULT '',
    channel     text        NOT NULL,
    message     text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (case_number, kind)
);

CREATE UNIQUE INDEX case_anchors_message_uniq ON case_anchors (platform, channel, message);

-- Credits: one row per org, holding the balance of the quarter it was last
-- touched in. Quarterly top-ups (with the rollover cap) are applied lazily
-- when the row is next read under lock, so no job has to run at quarter start.
CREATE TABLE case_credits (
    org        text        PRIMARY KEY,
    quarter    date        NOT NULL,
    balance    integer     NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL
);

-- The timeline: every event of a case, append-only and hash-chained. Each
-- entry's hash is SHA-256 over the previous entry's hash and its own
-- canonical content, so an edited entry breaks its own hash and a deleted one
-- breaks the chain (or the head kept on the case row).
CREATE TABLE case_timeline (
    case_number bigint      NOT NULL REFERENCES cases (number),
    seq         integer     NOT NULL,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    actor_role  text        NOT NULL,
    actor_id    text        NOT NULL DEFAULT '',
    actor_name  text        NOT NULL DEFAULT '',
    -- Kept as text, not jsonb, so the bytes hashed are the bytes stored.
    detail      text        NOT NULL CHECK (detail::jsonb IS NOT NULL),
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    PRIMARY KEY (case_number, seq)
);

-- The database itself refuses to change or remove timeline entries. (A
-- superuser can still disable the trigger; verification catches that.)
CREATE FUNCTION case_timeline_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_timeline is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER case_timeline_no_update_delete
    BEFORE UPDATE OR DELETE ON case_timeline
    FOR EACH ROW EXECUTE FUNCTION case_timeline_append_only();

CREATE TRIGGER case_timeline_no_truncate
    BEFORE TRUNCATE ON case_timeline
    FOR EACH STATEMENT EXECUTE FUNCTION case_timeline_append_only();
