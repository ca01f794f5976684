-- 0036: hunting: the intake queue. A sender that asks for it (Prefer:
-- respond-async) is answered once its alerts are stored here, durably,
-- and they are correlated afterwards, each org's oldest first, under the
-- org's lock, in transactions that delete the rows they correlate
-- (hunting/queue.go): a crash leaves a row either queued or correlated,
-- never both or neither.
CREATE TABLE hunting_intake_queue (
    org         text        NOT NULL,
    seq         bigserial,
    tenant      text        NOT NULL,
    received_at timestamptz NOT NULL,
    -- heads: drain transactions begun from this row (the org's oldest);
    -- a second means the first did not finish, and the row is tried alone.
    heads       integer     NOT NULL DEFAULT 0,
    -- attempts: tries of this row alone, each counted before it starts; at
    -- 3 the row is left for an operator (last_error says why).
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    -- alert: the item exactly as the sender posted it (at most 1 MiB).
    alert       bytea       NOT NULL,
    PRIMARY KEY (org, seq)
) WITH (toast_tuple_target = 8160, autovacuum_vacuum_scale_factor = 0.05);

-- An item is kept in its row, uncompressed: compressing it costs more CPU
-- than its disk is worth for a row that lives seconds.
ALTER TABLE hunting_intake_queue ALTER COLUMN alert SET STORAGE EXTERNAL;
