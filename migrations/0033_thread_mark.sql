-- 0033: bot: the newest message taken from each chat thread, per platform.
-- Discord's gateway does not replay what was posted while no session was
-- connected (a restart, a crash, a reconnect that could not resume): on a
-- new session the Discord adapter reads each active case thread's
-- messages after its mark and hands over any it missed (the inbound key and
-- casework's chat key keep one that was taken from being relayed twice).
CREATE TABLE bot_thread_mark (
    platform    text        NOT NULL,
    -- The thread (a Discord thread is a channel).
    channel     text        NOT NULL,
    -- The newest message id taken from it (a Discord snowflake).
    message     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, channel)
);
