-- 0015: the pages of case lists and searches behind their More buttons:
-- bot_pages. Owned by the bot package.
--
-- A More button carries only an opaque token (random, 16 bytes): no case
-- data, no query text, nothing a client could edit to see another org's
-- cases. The token names a row here, which every replica reads, so the
-- button works on any replica and after a restart. The row holds what is
-- listed (a case list's filter or a search's text), the scope it was listed
-- for (a token pressed by someone of another scope is refused exactly as an
-- unknown one), and where the next page starts (the domain's own cursor).
-- Rows are kept for a day; pressing More on an older list says to run the
-- command again.
CREATE TABLE bot_pages (
    token      text        PRIMARY KEY,
    platform   text        NOT NULL,
    -- The viewer's scope: 'all', 'all+internal' (experts, who also search
    -- internal notes) or 'org:<id>'.
    scope      text        NOT NULL,
    -- What is listed and where the next page starts (bot.pageQuery).
    query      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Expired pages are deleted by the bot's housekeeping.
CREATE INDEX bot_pages_expires_idx ON bot_pages (expires_at);
