-- 0019: adapters/web: the case tracker's sign-in links and sessions. Owned
-- by the web adapter (adapters/web/session.go). Neither table holds a
-- secret: tokens and session ids are 32 random bytes that only their
-- holder's browser (or chat message) knows; the database keeps their
-- SHA-256, so a copy of it signs nobody in.

-- One row per sign-in link answered to "/experts web": who asked, from
-- which channel (a member's org is that channel's, by the config), and the
-- roles they had then. A link signs in once (used_at) within ten minutes.
CREATE TABLE web_login_links (
    token_hash   bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    platform     text        NOT NULL,
    workspace    text        NOT NULL DEFAULT '',
    user_id      text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    channel      text        NOT NULL DEFAULT '',
    -- bot roles: member, expert, manager, admin.
    roles        text[]      NOT NULL,
    -- A member's org ('' for experts and managers who asked from the desk).
    org          text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

-- Old links are deleted by age.
CREATE INDEX web_login_links_expires_idx ON web_login_links (expires_at);

-- One row per browser session. Every request re-checks the roles against
-- the running config: a session grants at most the roles it was opened
-- with, and only while the config still gives them. Signing out (or
-- losing access) ends the session here, so a copied cookie is worthless.
CREATE TABLE web_sessions (
    id_hash      bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    platform     text        NOT NULL,
    workspace    text        NOT NULL DEFAULT '',
    user_id      text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    channel      text        NOT NULL DEFAULT '',
    roles        text[]      NOT NULL,
    org          text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    -- Set when the session ended before expiring, with why
    -- ('signed out', 'access removed', 'revoked').
    ended_at     timestamptz,
    end_reason   text        NOT NULL DEFAULT ''
);

-- A person's sessions, to end them all (Revoke).
CREATE INDEX web_sessions_user_idx ON web_sessions (platform, workspace, user_id);
-- Old sessions are deleted by age.
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);
