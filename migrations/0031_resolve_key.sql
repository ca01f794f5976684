-- 0031: hunting: the key of the request that resolved an incident (the
-- bot's stored inbound event). The same request worked again, after a
-- crash between the resolution and the bot marking its work done, is
-- answered as done; anyone else, whatever their display name, is told
-- who resolved it. Empty for incidents resolved before, or upstream.
ALTER TABLE hunting_incidents ADD COLUMN resolve_key text NOT NULL DEFAULT '';
