-- 0025: bot: what an anchor message shows. Owned by the bot package.
--
-- shown is a digest of the message last posted or edited at the anchor (a
-- case's card or receipt, an incident's notification, the desk's sightings
-- message), or NULL when not known. An edit that would show the same is
-- not sent: Discord marks every edit "(edited)", and both platforms count
-- each call against the channel's rate limit.
ALTER TABLE bot_anchor ADD COLUMN shown bytea;
