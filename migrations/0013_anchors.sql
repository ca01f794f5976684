-- 0013: one record of which chat message is a case's receipt or desk card: bot_anchor.
-- Owned by the bot package.
--
-- Before this, the bot recorded each anchor in bot_anchor (keyed by stream and
-- target, which it reads to edit a card, post in its thread and route a thread
-- reply) and then wrote the same message again into casework's case_anchors,
-- which nothing but casework's tests read. The anchors only case_anchors has
-- (a crash between the two writes could leave one) are carried over, under
-- the stream and target the bot uses (case "EOD-n" is stream "case:EOD-n";
-- kind requester is target receipt, desk is desk). A message that already
-- anchors something in bot_anchor keeps that (the unique index on platform,
-- channel and message: one message anchors one thing).
INSERT INTO bot_anchor (stream, target, platform, workspace, channel, message, created_at)
SELECT 'case:EOD-' || a.case_number,
       CASE a.kind WHEN 'requester' THEN 'receipt' ELSE 'desk' END,
       a.platform, a.workspace, a.channel, a.message, a.updated_at
  FROM case_anchors a
ON CONFLICT DO NOTHING;

DROP TABLE case_anchors;
