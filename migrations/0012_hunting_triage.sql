-- 0012: hunting: what the alerts are (impact, commodity), incidents resolved
-- from chat or upstream, follow-up incidents, and notifications asked for by
-- a person. Owned by the hunting package.

ALTER TABLE hunting_incidents
    -- The heaviest "what is it" weight among the incident's alerts (a High
    -- Ransomware alert, a High credential theft, ...) and its words, folded
    -- in batch by batch like the other aggregates.
    ADD COLUMN impact          integer     NOT NULL DEFAULT 0,
    ADD COLUMN impact_detail   text        NOT NULL DEFAULT '',
    -- How many of its alerts are commodity detections (PUA, adware, test
    -- files): when all are, severity weighs little.
    ADD COLUMN commodity       integer     NOT NULL DEFAULT 0,
    -- How many of its alerts are resolved upstream (Defender status
    -- Resolved, Graph status resolved): at alert_count the incident
    -- resolves itself.
    ADD COLUMN resolved_alerts integer     NOT NULL DEFAULT 0,
    -- How it was resolved: true_positive, informational_expected_activity,
    -- false_positive (Defender's classifications), by whom (a chat user, or
    -- "upstream" when every alert was resolved at the source), when, and
    -- the resolver's comment. Set once, with status closed.
    ADD COLUMN classification  text        NOT NULL DEFAULT ''
        CHECK (classification IN ('', 'true_positive', 'informational_expected_activity', 'false_positive')),
    ADD COLUMN resolved_by     text,
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN resolve_comment text        NOT NULL DEFAULT '',
    -- The closed incident this one follows: new activity on the entities of
    -- a closed incident opens a new one, never reopens the old.
    ADD COLUMN follows         bigint      REFERENCES hunting_incidents (id),
    -- Who posted a quiet incident by hand (NotifyNow); it is then notified
    -- whatever its score.
    ADD COLUMN notify_by       text;

-- The "incidents" list per org, newest first, by status.
CREATE INDEX hunting_incidents_org_status_idx ON hunting_incidents (org, status, id DESC);
