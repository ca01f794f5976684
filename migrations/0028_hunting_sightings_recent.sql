-- 0028: hunting: experts' sightings reach recent ones first. Owned by the
-- hunting package.
--
-- The desk card's sightings ask, per file hash, IP address, URL or domain,
-- which incidents of any org saw it in the last weeks. The sighting and
-- URL-host indexes led to every incident that ever held it, each read from
-- the table to check last_seen. With last_seen in them, the window is a
-- range. They left last_seen out to keep its rewrites HOT; since 0027 the
-- correlation index holds it, so those rewrites write index entries anyway
-- and these cost nothing more.
--
-- The old indexes are dropped last: a DROP INDEX locks the table against
-- reads until the migration commits, and building the new ones takes a
-- while on a big table.
CREATE INDEX hunting_incident_entities_sighting_recent_idx ON hunting_incident_entities (kind, value, last_seen)
    WHERE kind IN ('file', 'ip', 'url');

-- The expression is hunting.urlHostSQL's, character for character.
CREATE INDEX hunting_incident_entities_url_host_recent_idx
    ON hunting_incident_entities ((substring(value from '^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@]*@)?([^/?#:@]+)')), last_seen)
    WHERE kind = 'url';

DROP INDEX hunting_incident_entities_sighting_idx;
DROP INDEX hunting_incident_entities_url_host_idx;
