-- 0003: hunting: alerts, entities, incidents, correlation and notification state.
-- Owned by the hunting package.
--
-- Every row carries its org: an org never sees, joins or merges another org's
-- alerts, and every lookup is scoped by org.

-- Incidents: correlated groups of alerts, one per attack. Besides the
-- aggregate the card shows (title, severity, score and its reasons), a row
-- holds its own notification state, so that "was this already posted?" is
-- answered by the database, in the same transaction as the outbox row.
CREATE TABLE hunting_incidents (
    id               bigserial   PRIMARY KEY,
    org              text        NOT NULL,
    -- open: takes new alerts; closed: never reopened (a new alert starts a
    -- new incident); merged: absorbed into merged_into, kept for old links.
    status           text        NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'closed', 'merged')),
    merged_into      bigint      REFERENCES hunting_incidents (id),
    title            text        NOT NULL DEFAULT '',
    summary          text        NOT NULL DEFAULT '',
    severity         text        NOT NULL DEFAULT 'informational',
    severity_rank    smallint    NOT NULL DEFAULT 0,
    score            integer     NOT NULL DEFAULT 0,
    -- Why the score is what it is: [{"factor","points","detail"}], shown on
    -- the card as "why you are seeing this".
    breakdown        jsonb       NOT NULL DEFAULT '[]',
    -- Came from (or contains an alert of) the expert hunting service.
    expert           boolean     NOT NULL DEFAULT false,
    alert_count      integer     NOT NULL DEFAULT 0,
    device_count     integer     NOT NULL DEFAULT 0,
    user_count       integer     NOT NULL DEFAULT 0,
    -- Aggregates kept up to date batch by batch, so that re-scoring never
    -- re-reads an incident's alerts. tactics and tactic_first are parallel:
    -- each tactic and when it was first seen (kill-chain progression).
    medium_plus      integer     NOT NULL DEFAULT 0,
    rare_files       integer     NOT NULL DEFAULT 0,
    tactics          text[]      NOT NULL DEFAULT '{}',
    tactic_first     timestamptz[] NOT NULL DEFAULT '{}',
    -- The first device and user names (at most 200), for the card and to
    -- say "new device X" on an update.
    device_names     text[]      NOT NULL DEFAULT '{}',
    user_names       text[]      NOT NULL DEFAULT '{}',
    -- The alert that names the attack: expert first, then highest severity,
    -- then earliest.
    title_rank       integer     NOT NULL DEFAULT -1,
    title_base       text        NOT NULL DEFAULT '',
    title_family     text        NOT NULL DEFAULT '',
    title_time       timestamptz,
    -- Activity times of the alerts (from the payloads).
    first_activity   timestamptz,
    last_activity    timestamptz,
    -- Service clock times (Config.Now).
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    closed_at        timestamptz,
    -- Notification state. eligible_at: when the score first crossed the
    -- org's bar (group_wait runs from here); posted_at: the first card's
    -- outbox row; notified_at: the latest post/update/repeat (group_interval
    -- and repeat_interval run from here); notified: what the card showed
    -- then, to say what changed; next_due_at: when a sweep must look again.
    eligible_at      timestamptz,
    posted_at        timestamptz,
    notified_at      timestamptz,
    notified         jsonb,
    notify_seq       integer     NOT NULL DEFAULT 0,
    -- What the latest update announced (new device, new tactic, severity up).
    last_changes     jsonb       NOT NULL DEFAULT '[]',
    next_due_at      timestamptz,
    acked_by         text,
    acked_at         timestamptz
) WITH (fillfactor = 80); -- rewritten on every batch that touches it: leave room for HOT updates

-- The sweep finds incidents whose group_wait, group_interval or repeat is due.
CREATE INDEX hunting_incidents_due_idx ON hunting_incidents (next_due_at)
    WHERE status = 'open' AND next_due_at IS NOT NULL;

-- Closed and merged incidents: correlation skips their entities with a probe
-- of this small index (an incident is open unless it is here). Rows enter it
-- only when their status changes, so batch updates stay HOT.
CREATE INDEX hunting_incidents_done_idx ON hunting_incidents (id) WHERE status <> 'open';

-- Lists and the bot's "incident <id>" lookup are per org.
CREATE INDEX hunting_incidents_org_idx ON hunting_incidents (org, id);

-- Alerts, one row per (org, source alert id): re-posting updates the row.
CREATE TABLE hunting_alerts (
    org              text        NOT NULL,
    id               text        NOT NULL,
    -- defender | graph
    source           text        NOT NULL,
    tenant           text        NOT NULL,
    -- No foreign key here or on hunting_incident_entities.incident_id, on
    -- purpose: a batch writes thousands of these rows and a foreign key
    -- checks (and share-locks the incident row) once per row. Incidents are
    -- never deleted, and only the hunting package writes these columns.
    incident_id      bigint      NOT NULL,
    provider_incident text       NOT NULL DEFAULT '',
    title            text        NOT NULL DEFAULT '',
    description      text        NOT NULL DEFAULT '',
    recommended      text        NOT NULL DEFAULT '',
    severity         text        NOT NULL,
    severity_rank    smallint    NOT NULL,
    status           text        NOT NULL DEFAULT '',
    classification   text        NOT NULL DEFAULT '',
    determination    text        NOT NULL DEFAULT '',
    category         text        NOT NULL DEFAULT '',
    tactic           text        NOT NULL DEFAULT '',
    techniques       text[]      NOT NULL DEFAULT '{}',
    detection_source text        NOT NULL DEFAULT '',
    expert           boolean     NOT NULL DEFAULT false,
    threat_family    text        NOT NULL DEFAULT '',
    device_id        text        NOT NULL DEFAULT '',
    device_name      text        NOT NULL DEFAULT '',
    web_url          text        NOT NULL DEFAULT '',
    created_time     timestamptz,
    first_activity   timestamptz NOT NULL,
    last_activity    timestamptz,
    last_update      timestamptz,
    -- Hash of the normalized alert: an identical re-post is a no-op.
    -- The alert's entities that never correlate and so are not in
    -- hunting_incident_entities ([{"k": kind, "v": value, "d": display, "a": alt}]): processes
    -- and command lines, registry keys, OS binaries, well-known accounts.
    -- Read for "Show full scope".
    evidence         jsonb       NOT NULL DEFAULT '[]',
    content_hash     bytea       NOT NULL,
    ingested_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (org, id)
);

-- Incident aggregates, timelines and merges read an incident's alerts.
CREATE INDEX hunting_alerts_incident_idx ON hunting_alerts (incident_id, first_activity);

-- Scope of compromise per incident, and the correlation index: an alert joins
-- an open incident that has one of its strong entities (kind, value) seen
-- within the window. Only strong entities (devices, users, file hashes, IPs,
-- URLs) are kept here; the rest stays in hunting_alerts.evidence, which keeps
-- this table, and its write cost per batch, small. display is what the card
-- prints; alt is a second key (a file's SHA-1 when value is its SHA-256).
CREATE TABLE hunting_incident_entities (
    incident_id  bigint      NOT NULL,
    org          text        NOT NULL,
    kind         text        NOT NULL,
    value        text        NOT NULL,
    display      text        NOT NULL DEFAULT '',
    alt          text        NOT NULL DEFAULT '',
    join_key     boolean     NOT NULL DEFAULT true,
    first_seen   timestamptz NOT NULL,
    -- Kept to the hour: rewritten only when it moves by more than that.
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (incident_id, kind, value)
) WITH (fillfactor = 85); -- last_seen changes: room for HOT updates

-- Correlation: "which incidents hold this entity?", per org. Only strong
-- kinds: process command lines and registry keys are never looked up by
-- value, and leaving them out keeps the index small.
CREATE INDEX hunting_incident_entities_key_idx ON hunting_incident_entities (org, kind, value)
    WHERE kind IN ('device', 'user', 'file', 'ip', 'url');

-- The bot's file lookup by SHA-1 when the entity is keyed by SHA-256.
CREATE INDEX hunting_incident_entities_alt_idx ON hunting_incident_entities (org, kind, alt)
    WHERE alt <> '';

-- Device lookup by name ("device <name>").
CREATE INDEX hunting_incident_entities_display_idx ON hunting_incident_entities (org, lower(display))
    WHERE kind = 'device';

-- Prevalence: on which devices was an entity seen, and when last. An entity
-- seen on Config.CommonEntityDevices or more devices inside the window stops
-- being a join key, so a popular public IP or a system binary cannot glue
-- unrelated attacks together. Also the measure of a file's rarity in scoring.
CREATE TABLE hunting_entity_devices (
    org        text        NOT NULL,
    kind       text        NOT NULL,
    value      text        NOT NULL,
    device     text        NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (org, kind, value, device)
);

-- Merges: a new alert linked two open incidents; the younger was folded into
-- the older. Kept so that links to the old incident can be explained.
CREATE TABLE hunting_merges (
    id          bigserial   PRIMARY KEY,
    org         text        NOT NULL,
    from_id     bigint      NOT NULL REFERENCES hunting_incidents (id),
    into_id     bigint      NOT NULL REFERENCES hunting_incidents (id),
    alert_id    text        NOT NULL,
    reason      text        NOT NULL,
    merged_at   timestamptz NOT NULL
);

CREATE INDEX hunting_merges_into_idx ON hunting_merges (into_id);
CREATE INDEX hunting_merges_from_idx ON hunting_merges (from_id);

-- Graph pull: per tenant, the lastUpdateDateTime up to which alerts_v2 was
-- read. Kept in the database so that any replica continues where another
-- stopped.
CREATE TABLE hunting_graph_watermarks (
    tenant       text        PRIMARY KEY,
    last_update  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
