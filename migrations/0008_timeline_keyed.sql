-- 0008: the case timeline's hash chain becomes keyed (HMAC-SHA256 with a
-- subkey of THREATDESK_SECRET_KEY). Owned by the casework package.
--
-- An unkeyed SHA-256 chain can be rewritten and rehashed by anyone with
-- write access to the table, and the chain head kept on the case row with
-- it. From here on every entry is an HMAC over its predecessor and its
-- content, and the case row carries a MAC over its chain head and length,
-- so rewriting needs the key. Entries written before stay verifiable: they
-- keep algorithm 1 (SHA-256, checked as before), but only as the prefix of a
-- case that existed before this migration, with the length recorded here.

-- Per entry: 1 = legacy unkeyed SHA-256, 2 = HMAC-SHA256 under the timeline
-- subkey. casework always writes 2; existing rows are 1.
ALTER TABLE case_timeline ADD COLUMN alg smallint NOT NULL DEFAULT 1 CHECK (alg IN (1, 2));
ALTER TABLE case_timeline ALTER COLUMN alg DROP DEFAULT;

-- Per case: how many of its first entries are legacy (all of them for
-- cases that exist now, none for later cases), and the keyed MAC over
-- (case, timeline_len, timeline_head, timeline_legacy_len), written by
-- casework with every change. NULL only on cases from before this migration
-- until casework first starts with the key and seals them.
ALTER TABLE cases
    ADD COLUMN timeline_legacy_len integer NOT NULL DEFAULT 0 CHECK (timeline_legacy_len >= 0),
    ADD COLUMN timeline_mac        bytea;
UPDATE cases SET timeline_legacy_len = timeline_len;

-- One row: cases numbered up to legacy_cutoff may hold legacy entries; no
-- later case may. casework's first start with the key computes mac (over the
-- cutoff) and seals every earlier case's row in the same transaction; later
-- starts check mac, so a different THREATDESK_SECRET_KEY is caught at start.
-- A missing row is tampering: the migration always creates it.
CREATE TABLE casework_timeline_keying (
    id            boolean     PRIMARY KEY DEFAULT true CHECK (id),
    legacy_cutoff bigint      NOT NULL,
    mac           bytea,
    keyed_at      timestamptz
);
INSERT INTO casework_timeline_keying (legacy_cutoff) SELECT coalesce(max(number), 0) FROM cases;
