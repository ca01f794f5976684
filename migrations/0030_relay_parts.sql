-- 0030: a long thread message is relayed as several messages (bot package,
-- edits.go): each is recorded, so that an edit or a deletion of the
-- original reaches every part. The first part is part 0, as every relay
-- recorded before this migration is.
ALTER TABLE bot_relay ADD COLUMN part integer NOT NULL DEFAULT 0 CHECK (part >= 0);
ALTER TABLE bot_relay DROP CONSTRAINT bot_relay_pkey,
    ADD PRIMARY KEY (source_platform, source_channel, source_message, part);
