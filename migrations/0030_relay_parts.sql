-- 0030: a long thread message is relayed as several messages (bot package,
-- edits.go): each is recorded, so that an edit or a deletion of the
-- original reaches every part. The first part is part 0, as every relay
-- recorded before this migration is. A replica still on the binary before
-- this one fails to record relays (its ON CONFLICT names the old key) until
-- it is upgraded: upgrade replicas together.
-- parts is how many messages the text was relayed as (a part that failed
-- for good leaves a gap: the edit still knows where each piece goes).
ALTER TABLE bot_relay ADD COLUMN part integer NOT NULL DEFAULT 0 CHECK (part >= 0),
    ADD COLUMN parts integer NOT NULL DEFAULT 1 CHECK (parts > part);
ALTER TABLE bot_relay DROP CONSTRAINT bot_relay_pkey,
    ADD PRIMARY KEY (source_platform, source_channel, source_message, part);
