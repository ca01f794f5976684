-- 0022: many customer workspaces (Add to Slack) and configuration reloads.
--
-- slack_installations and slack_oauth_states are owned by adapters/slack
-- (installs.go, oauth.go); config_reloads by the bot (bot/reload.go).

-- One row per Slack workspace (team) that installed the app through Add to
-- Slack. Every Web API call about a workspace uses its row's bot token; the
-- provider's own workspace keeps SLACK_BOT_TOKEN and needs no row. The token
-- is never stored in clear: token_sealed is AES-256-GCM under a subkey of
-- THREATDESK_SECRET_KEY, with the team id as associated data (a sealed token
-- copied to another team's row does not open there). An uninstalled
-- workspace (app_uninstalled, tokens_revoked) keeps its row, inactive, with
-- why and when: nothing is sent to it until it installs again.
CREATE TABLE slack_installations (
    team_id       text        PRIMARY KEY,
    team_name     text        NOT NULL DEFAULT '',
    -- The org whose install link was used (the config's orgs[].id).
    org_id        text        NOT NULL,
    app_id        text        NOT NULL DEFAULT '',
    bot_user_id   text        NOT NULL DEFAULT '',
    scope         text        NOT NULL DEFAULT '',
    token_sealed  bytea       NOT NULL,
    -- The Slack user who approved the install, and who asked for the link.
    installed_by  text        NOT NULL DEFAULT '',
    link_by       text        NOT NULL DEFAULT '',
    installed_at  timestamptz NOT NULL,
    active        boolean     NOT NULL DEFAULT true,
    inactive_at   timestamptz,
    -- app_uninstalled or tokens_revoked.
    inactive_why  text        NOT NULL DEFAULT ''
);

-- Install links are signed and say which org they are for; each is used
-- once. Its state's SHA-256 is stored when the callback uses it, so the
-- same state is refused the second time, on any replica. Rows past their
-- link's expiry are deleted by age.
CREATE TABLE slack_oauth_states (
    state_hash bytea       PRIMARY KEY CHECK (length(state_hash) = 32),
    org_id     text        NOT NULL,
    used_at    timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX slack_oauth_states_expires_idx ON slack_oauth_states (expires_at);

-- The audit of configuration reloads (SIGHUP or /experts reload): who, when,
-- whether it was applied, what changed (one line per change, readable) and
-- what waits for a restart, or every problem of a refused file. Append-only.
CREATE TABLE config_reloads (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- Who asked: "slack:U0ADMIN1", "discord:1000…", or "signal:SIGHUP".
    by_platform text        NOT NULL,
    by_user     text        NOT NULL DEFAULT '',
    by_name     text        NOT NULL DEFAULT '',
    applied     boolean     NOT NULL,
    -- The file's SHA-256, to tell which version was read.
    file_sha256 text        NOT NULL DEFAULT '',
    changes     text[]      NOT NULL DEFAULT '{}',
    restart     text[]      NOT NULL DEFAULT '{}',
    problems    text[]      NOT NULL DEFAULT '{}'
);

CREATE INDEX config_reloads_at_idx ON config_reloads (at);
