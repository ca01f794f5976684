-- 0014: casework: file samples sent to the experts (the upload drop box),
-- their encrypted bytes, and the upload and download links. Owned by the
-- casework package (sample.go). Every step of a sample (link issued,
-- uploaded, downloaded, deleted) is also an entry of the case's timeline.

-- One row per file sample of a case. The bytes are in case_sample_chunks;
-- this row keeps what the desk and the chain of custody need without
-- decrypting anything: name, size, hashes, who sent it and from where.
CREATE TABLE case_samples (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_number        bigint      NOT NULL REFERENCES cases (number),
    -- upload: through an upload link; thread: a file posted in a case thread.
    source             text        NOT NULL CHECK (source IN ('upload', 'thread')),
    side               text        NOT NULL CHECK (side IN ('requester', 'expert')),
    -- The file name as sent (untrusted; cleaned of paths and control characters).
    name               text        NOT NULL,
    -- 0 only inside the transaction that streams the chunks in.
    size               bigint      NOT NULL CHECK (size >= 0),
    -- Hex digests of the plaintext, computed while it streamed in.
    md5                text        NOT NULL,
    sha1               text        NOT NULL,
    sha256             text        NOT NULL,
    -- How the bytes were cut: chunk_count chunks of chunk_size bytes (the
    -- last one shorter). The count is also bound into each chunk's
    -- associated data (its final flag), so dropping chunks does not go
    -- unnoticed even if this row is edited.
    chunk_size         integer     NOT NULL CHECK (chunk_size > 0),
    chunk_count        integer     NOT NULL CHECK (chunk_count >= 0),
    uploader_platform  text        NOT NULL DEFAULT '',
    uploader_workspace text        NOT NULL DEFAULT '',
    uploader_user      text        NOT NULL DEFAULT '',
    uploader_name      text        NOT NULL DEFAULT '',
    -- The uploader's network address, for uploads through a link.
    uploader_address   text        NOT NULL DEFAULT '',
    -- For a thread file: the chat message and the platform's file id
    -- (Slack F…, Discord attachment id), so that a redelivered event stores
    -- the file once.
    chat_platform      text        NOT NULL DEFAULT '',
    chat_workspace     text        NOT NULL DEFAULT '',
    chat_channel       text        NOT NULL DEFAULT '',
    chat_message       text        NOT NULL DEFAULT '',
    chat_file          text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    -- Set when the retention sweep removed the chunks; the row stays as the
    -- record of what was held.
    deleted_at         timestamptz
);

-- A case's samples in order.
CREATE INDEX case_samples_case_idx ON case_samples (case_number, id);

-- A thread file is stored once per platform file id and case.
CREATE UNIQUE INDEX case_samples_chat_file_uniq ON case_samples (case_number, chat_platform, chat_file)
    WHERE chat_file <> '';

-- The encrypted bytes: each chunk sealed on its own with AES-256-GCM under
-- the sample subkey of THREATDESK_SECRET_KEY, with the sample id, the chunk
-- index and a final-chunk flag as associated data, so a chunk moved to
-- another sample or position, or a dropped tail, does not decrypt. Kept in
-- PostgreSQL so that every replica can serve any sample and no file system
-- is needed.
CREATE TABLE case_sample_chunks (
    sample_id bigint  NOT NULL REFERENCES case_samples (id) ON DELETE CASCADE,
    seq       integer NOT NULL CHECK (seq >= 0),
    data      bytea   NOT NULL,
    PRIMARY KEY (sample_id, seq)
);

-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE case_sample_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Upload links. The token (32 random bytes) is handed out once and only its
-- SHA-256 is kept; it carries no case data. A link takes one file: used_at
-- is set in the transaction that stores the sample.
CREATE TABLE case_upload_links (
    token_hash       bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    case_number      bigint      NOT NULL REFERENCES cases (number),
    issued_platform  text        NOT NULL DEFAULT '',
    issued_workspace text        NOT NULL DEFAULT '',
    issued_user      text        NOT NULL DEFAULT '',
    issued_name      text        NOT NULL DEFAULT '',
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    sample_id        bigint      REFERENCES case_samples (id)
);

-- The sweep forgets links long past their expiry.
CREATE INDEX case_upload_links_expires_idx ON case_upload_links (expires_at);

-- Download links: short-lived, for the expert they were issued to, each
-- download recorded on the timeline. Only the token's SHA-256 is kept.
CREATE TABLE case_download_links (
    token_hash       bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    sample_id        bigint      NOT NULL REFERENCES case_samples (id),
    expert_platform  text        NOT NULL,
    expert_workspace text        NOT NULL DEFAULT '',
    expert_user      text        NOT NULL,
    expert_name      text        NOT NULL DEFAULT '',
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);

CREATE INDEX case_download_links_expires_idx ON case_download_links (expires_at);

-- The retention sweep finds samples whose case closed long enough ago.
CREATE INDEX case_samples_live_idx ON case_samples (case_number) WHERE deleted_at IS NULL;
