-- 0032: hunting: a Graph tenant's throttling (the Retry-After of a 429 or
-- 503), kept in the database so that whichever replica takes the pull job
-- next waits too (it was kept per replica: another replica kept asking, and
-- was throttled again).
CREATE TABLE hunting_graph_throttle (
    tenant      text        PRIMARY KEY,
    not_before  timestamptz NOT NULL
);
