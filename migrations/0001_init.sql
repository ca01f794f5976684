-- 0001: the transactional outbox.
--
-- Every state change (a case opened, a message relayed, an incident that
-- needs a notification) writes its domain event here in the same transaction
-- as the change itself. Delivery workers drain the table after commit, so a
-- crash loses nothing: an event exists exactly when its change committed.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    -- What happened, e.g. "case.opened", "incident.notify".
    kind         text        NOT NULL,
    -- Ordering key: events of one stream (a case, an incident) are delivered
    -- strictly in id order; different streams go in parallel.
    stream       text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Not before: retry backoff and Retry-After push this forward.
    available_at timestamptz NOT NULL DEFAULT now(),
    -- A claim is a lease: a worker that dies after claiming leaves a lease
    -- that expires, and the row is claimed again.
    locked_until timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    delivered_at timestamptz,
    dead_at      timestamptz,
    last_error   text
);

-- Workers scan only undelivered rows; this partial index keeps that cheap
-- however large the delivered history grows.
CREATE INDEX outbox_pending_idx ON outbox (id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

-- The "is an earlier event of this stream still pending?" check.
CREATE INDEX outbox_stream_pending_idx ON outbox (stream, id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

-- Operators and the dead-row metric look for failed deliveries.
CREATE INDEX outbox_dead_idx ON outbox (dead_at) WHERE dead_at IS NOT NULL;
