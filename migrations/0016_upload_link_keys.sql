-- 0016: casework: an upload link issued once per key. Owned by the casework
-- package (samplelink.go, IssueUploadLinkOnce).
--
-- When a case goes to file_sample_needed, the bot posts an upload link in the
-- requester's thread while it renders the status change's outbox event. That
-- event may be rendered more than once (a retried delivery, a lease taken
-- over by another replica), and each rendering must post the same link, not
-- a new one: the link is issued under a key naming the event, and a second
-- call with the key returns the link the first one issued.
--
-- The token still never sits in the database in clear: only its SHA-256
-- (token_hash) is looked up, and token_sealed keeps the token sealed with
-- AES-256-GCM under a subkey of THREATDESK_SECRET_KEY (bound to token_hash),
-- so that a later rendering can post it again. Someone who can read the
-- tables but lacks the key learns no usable link. Links issued without a key
-- (/experts upload, the web's own) keep both columns NULL.
ALTER TABLE case_upload_links
    ADD COLUMN issue_key    text,
    ADD COLUMN token_sealed bytea;

-- One link per key; the keys are the issuer's (the bot's "outbox:<id>").
CREATE UNIQUE INDEX case_upload_links_issue_key_uniq ON case_upload_links (issue_key)
    WHERE issue_key IS NOT NULL;
