-- 0021: expert insight (issue 19): cases about an IP address, a URL or
-- domain, or a threat actor; the indexes behind cross-customer sightings;
-- and campaign tags. The case columns are casework's, the indexes on
-- hunting's tables hunting's (hunting/insight.go reads through them), the
-- campaign tables the insight package's.

-- New subjects: an IP address or a URL or domain (category
-- network_connection: "the root cause of a suspicious network
-- connection"), a threat actor or campaign (category threat_intel).
ALTER TABLE cases DROP CONSTRAINT cases_subject_kind_check,
    ADD CONSTRAINT cases_subject_kind_check
        CHECK (subject_kind IN ('none', 'alert', 'device', 'file', 'incident', 'ip', 'url', 'actor'));
ALTER TABLE cases DROP CONSTRAINT cases_category_check,
    ADD CONSTRAINT cases_category_check
        CHECK (category IN ('alert_inquiry', 'device_compromise', 'threat_intel', 'notification_question',
                            'network_connection', 'other'));

-- Sightings across customers: "which orgs' incidents hold this file hash,
-- IP address or URL?", by the entity alone. The correlation index
-- (hunting_incident_entities_key_idx) starts with the org, since
-- correlation never crosses orgs; experts' sightings do, so they need the
-- key first. Only the kinds a sighting is about, and no column that changes
-- (last_seen is not in it), so rewriting last_seen stays a HOT update and
-- ingest pays one index entry per new file, IP or URL of an incident.
CREATE INDEX hunting_incident_entities_sighting_idx ON hunting_incident_entities (kind, value)
    WHERE kind IN ('file', 'ip', 'url');

-- Sightings of a domain: the host of each URL entity, lower case (URL values
-- are stored lower case). hunting.urlHostSQL is this very expression: the
-- planner uses the index only for the identical expression.
CREATE INDEX hunting_incident_entities_url_host_idx
    ON hunting_incident_entities ((substring(value from '^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@]*@)?([^/?#:@]+)')))
    WHERE kind = 'url';

-- Sightings of a detection's threat family (the family that titles an
-- incident, e.g. "Qakbot"). title_family is set when an incident is first
-- titled and seldom changes, so this index costs ingest next to nothing.
CREATE INDEX hunting_incidents_title_family_idx ON hunting_incidents (lower(title_family))
    WHERE title_family <> '';

-- Campaigns and threat actors the experts track, by the name they gave
-- (key: the name lower case, spaces collapsed). shared_at: an expert chose
-- to tell customers the name; until then a tagged notification says only
-- that the experts linked it to a campaign they track.
CREATE TABLE insight_campaigns (
    key         text        PRIMARY KEY,
    name        text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    shared_by   text,
    shared_at   timestamptz
);

-- What the experts tagged with a campaign: cases (ref EOD-n) and incidents
-- (ref the incident id), of any org. One row per (what, campaign): tagging
-- twice changes nothing.
CREATE TABLE insight_campaign_tags (
    kind        text        NOT NULL CHECK (kind IN ('case', 'incident')),
    ref         text        NOT NULL,
    campaign    text        NOT NULL REFERENCES insight_campaigns (key),
    org         text        NOT NULL,
    tagged_by   text        NOT NULL,
    tagged_at   timestamptz NOT NULL,
    PRIMARY KEY (kind, ref, campaign)
);

-- "/experts campaign <name>": every tag of a campaign.
CREATE INDEX insight_campaign_tags_campaign_idx ON insight_campaign_tags (campaign);
