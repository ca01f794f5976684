-- 0036: hunting: the intake queue. A sender that asks for it (Prefer:
-- respond-async) is answered once its alerts are stored here, durably,
-- and they are correlated afterwards, each org's oldest first, by one
-- replica at a time (the org's lock), in transactions that delete the rows
-- they correlate (hunting/queue.go): a crash leaves a row either queued or
-- correlated, never both or neither.
CREATE TABLE hunting_intake_queue (
    org         text        NOT NULL,
    seq         bigserial,
    tenant      text        NOT NULL,
    received_at timestamptz NOT NULL,
    -- attempts: tries of this row alone, each counted before it starts.
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    -- alert: the item exactly as the sender posted it (at most 1 MiB).
    alert       bytea       NOT NULL,
    PRIMARY KEY (org, seq)
) WITH (toast_tuple_target = 8160, autovacuum_vacuum_scale_factor = 0.05);

-- An item is kept in its row, uncompressed: compressing it costs more CPU
-- than its disk is worth for a row that lives seconds.
ALTER TABLE hunting_intake_queue ALTER COLUMN alert SET STORAGE EXTERNAL;

-- The chunk an org's drain began and has not finished: recorded before
-- its transaction, deleted by it. One left over (a crash) has its rows
-- tried one at a time, so that a row that brings the process down is set
-- aside after a few tries instead of crashing every replica for ever.
CREATE TABLE hunting_intake_chunks (
    org       text   PRIMARY KEY,
    first_seq bigint NOT NULL,
    last_seq  bigint NOT NULL
);

-- Queued alerts that could not be correlated, set aside for an operator
-- (last_error says why). Queue one again (at the back of its org's queue)
-- with INSERT INTO hunting_intake_queue (org, tenant, received_at, alert)
-- SELECT org, tenant, received_at, alert FROM hunting_intake_set_aside
-- WHERE id = ...; then delete it here.
CREATE TABLE hunting_intake_set_aside (
    id           bigserial   PRIMARY KEY,
    org          text        NOT NULL,
    seq          bigint      NOT NULL,
    tenant       text        NOT NULL,
    received_at  timestamptz NOT NULL,
    set_aside_at timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    last_error   text        NOT NULL,
    alert        bytea       NOT NULL
);
