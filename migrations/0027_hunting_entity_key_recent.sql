-- 0027: hunting: the correlation index reaches recent sightings first.
-- Owned by the hunting package.
--
-- Correlation asks, per key of a batch, which incidents saw it within the
-- window. hunting_incident_entities_key_idx led to every incident that ever
-- held the key, each then read from the table to check its last_seen: a
-- device that has had an incident a day for a year cost 365 reads a batch,
-- to find one. With last_seen in the index, the window is a range of it.
-- last_seen is rewritten at most hourly per incident and key; those
-- rewrites are no longer HOT, a few percent of the index entries intake
-- writes, where most of them are new rows anyway.
CREATE INDEX hunting_incident_entities_key_recent_idx ON hunting_incident_entities (org, kind, value, last_seen)
    WHERE kind IN ('device', 'user', 'file', 'ip', 'url');
DROP INDEX hunting_incident_entities_key_idx;
