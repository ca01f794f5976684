-- 0033: bot: the newest message taken from each chat thread, per platform.
-- Discord's gateway does not replay what was posted while no session was
-- connected (a restart, a crash, a reconnect that could not resume), and
-- Slack retries an event only for minutes: on a new Discord session, and
-- when the Slack adapter starts, each case thread is read after its mark
-- and what was missed is handed over (the inbound key and casework's chat
-- key keep one that was taken from being relayed twice).
CREATE TABLE bot_thread_mark (
    platform    text        NOT NULL,
    -- The thread: the channel and message it hangs off ("C123/1700000000.000100";
    -- on Discord the parent channel and the thread's id).
    thread      text        NOT NULL,
    -- The newest message taken from it, as a number that grows with time:
    -- a Discord snowflake, a Slack ts in microseconds.
    message     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, thread)
);
