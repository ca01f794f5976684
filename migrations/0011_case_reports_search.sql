-- 0011: casework: full-text search of cases and the indexes behind the
-- service report and case search. Owned by the casework package.

-- The words of a case's question and conclusion, for "/experts cases search
-- <words>". Generated, so no code path can forget to keep it current; the
-- 'english' configuration drops stop words and stems ("servers" finds
-- "server"), and is immutable, as a stored generated column requires.
ALTER TABLE cases
    ADD COLUMN search_tsv tsvector
        GENERATED ALWAYS AS (to_tsvector('english'::regconfig, question || ' ' || summary)) STORED;

CREATE INDEX cases_search_idx ON cases USING gin (search_tsv);

-- The words of every message. Internal expert notes are indexed too (experts
-- may search them), so a search must filter on internal for everyone else:
-- casework's Search does.
ALTER TABLE case_messages
    ADD COLUMN body_tsv tsvector
        GENERATED ALWAYS AS (to_tsvector('english'::regconfig, body)) STORED;

CREATE INDEX case_messages_search_idx ON case_messages USING gin (body_tsv);

-- The report reads the cases an org opened in a calendar period (one range
-- scan per org), and search lists an org's cases newest first.
CREATE INDEX cases_org_created_idx ON cases (org, created_at);

-- Search by subject: a file hash, a device or host name, an alert or
-- incident id, compared without regard to case.
CREATE INDEX cases_subject_id_idx ON cases (lower(subject_id)) WHERE subject_id <> '';
CREATE INDEX cases_subject_name_idx ON cases (lower(subject_name)) WHERE subject_name <> '';

-- Search by requester ("@user"); the assignee side is cases_assignee_idx.
CREATE INDEX cases_requester_idx ON cases (requester_user);

-- The weekly digest: one row per week it was queued for. casework inserts
-- the row and the digest's outbox event in one transaction, ON CONFLICT DO
-- NOTHING, so that replicas whose schedules all fire queue it once, and a
-- late or repeated run of the schedule queues nothing more.
CREATE TABLE casework_digests (
    period_start timestamptz PRIMARY KEY,
    period_end   timestamptz NOT NULL,
    time_zone    text        NOT NULL,
    queued_at    timestamptz NOT NULL
);
