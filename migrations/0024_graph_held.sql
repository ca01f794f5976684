-- 0024: hunting: Graph alerts held for another try. Owned by the hunting
-- package.
--
-- A pulled alert that is rejected (one naming another tenant, say) used to
-- hold the tenant's watermark: every pull read again from it, and once more
-- than a pull's pages of alerts had come after it, no pull got past them.
-- Now the watermark moves on and the rejected alert is kept here, fetched
-- again by its id at every pull until it is accepted, gone from Graph, or
-- held for hunting.GraphConfig.HoldFor (then given up, logged and counted).
CREATE TABLE hunting_graph_held (
    tenant            text        NOT NULL,
    id                text        NOT NULL,
    last_update       timestamptz,
    reason            text        NOT NULL,
    first_rejected_at timestamptz NOT NULL,
    last_tried_at     timestamptz NOT NULL,
    tries             integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant, id)
);
