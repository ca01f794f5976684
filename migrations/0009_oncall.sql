-- 0009: on-call takes. Owned by the oncall package.
--
-- Who is on call comes from the config (oncall.rotation, oncall.handover,
-- timezone) and is computed, not stored. What is stored is each time an
-- expert took the pager with `/experts oncall take`: one row per take, never
-- updated, so the history of who held the pager when stays readable.

CREATE TABLE oncall_take (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Who took the pager (a rotation member: platform and user id).
    platform           text        NOT NULL CHECK (platform IN ('slack', 'discord')),
    user_id            text        NOT NULL CHECK (user_id <> ''),
    -- The take is in force from taken_at until until_at (the next
    -- hand-over when it was taken). The latest take in force wins.
    taken_at           timestamptz NOT NULL,
    until_at           timestamptz NOT NULL,
    -- Who held the pager just before: the scheduled expert, or
    -- (displaced_take) whoever had taken it earlier in the shift.
    displaced_platform text        NOT NULL DEFAULT '',
    displaced_user_id  text        NOT NULL DEFAULT '',
    displaced_take     boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (until_at > taken_at)
);

-- "The take in force at t": until_at > t narrows to the current shift's rows.
CREATE INDEX oncall_take_until ON oncall_take (until_at);
