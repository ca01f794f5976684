-- 0007: where a case was asked is stored with the case, in its opening
-- transaction. Owned by the casework package.
--
-- Before, the bot wrote the origin into bot_case_origin after casework had
-- committed the case: a failure there told the requester that nothing had
-- changed although the case (and its credit) existed, and the delivery
-- worker had to wait for the row before posting the receipt. The origin is
-- now part of the case; existing rows move over and the old table goes.

-- The chat channel the case was asked in (the receipt is posted there).
-- Empty for cases opened before this column existed without a recorded
-- origin: the receipt then goes to the org's first channel.
ALTER TABLE cases
    ADD COLUMN origin_platform  text NOT NULL DEFAULT '',
    ADD COLUMN origin_workspace text NOT NULL DEFAULT '',
    ADD COLUMN origin_channel   text NOT NULL DEFAULT '';

UPDATE cases c
   SET origin_platform = o.platform, origin_workspace = o.workspace, origin_channel = o.channel
  FROM bot_case_origin o
 WHERE o.ref = 'EOD-' || c.number;

DROP TABLE bot_case_origin;
