-- 0023: hunting: storage settings for fast intake. Owned by the hunting
-- package.
--
-- No planner statistics for the columns no query filters, joins, groups or
-- sorts on.
--
-- Intake inserts alerts and rewrites incidents fast enough that autovacuum
-- analyzes both tables about once a minute, and ANALYZE sorted every sampled
-- value of every column: the alerts' evidence (jsonb), descriptions and
-- hashes made an ANALYZE of 50,000 alerts take 1.2 s of CPU (0.15 s
-- without them), on the cores intake needs. Statistics are kept for the
-- columns queries use (org, id, incident_id, first_activity, status,
-- classification on alerts; id, org, status, title_family and the times on
-- incidents).

ALTER TABLE hunting_alerts
    ALTER COLUMN source SET STATISTICS 0,
    ALTER COLUMN tenant SET STATISTICS 0,
    ALTER COLUMN provider_incident SET STATISTICS 0,
    ALTER COLUMN title SET STATISTICS 0,
    ALTER COLUMN description SET STATISTICS 0,
    ALTER COLUMN recommended SET STATISTICS 0,
    ALTER COLUMN severity SET STATISTICS 0,
    ALTER COLUMN severity_rank SET STATISTICS 0,
    ALTER COLUMN determination SET STATISTICS 0,
    ALTER COLUMN category SET STATISTICS 0,
    ALTER COLUMN tactic SET STATISTICS 0,
    ALTER COLUMN techniques SET STATISTICS 0,
    ALTER COLUMN detection_source SET STATISTICS 0,
    ALTER COLUMN expert SET STATISTICS 0,
    ALTER COLUMN threat_family SET STATISTICS 0,
    ALTER COLUMN device_id SET STATISTICS 0,
    ALTER COLUMN device_name SET STATISTICS 0,
    ALTER COLUMN web_url SET STATISTICS 0,
    ALTER COLUMN created_time SET STATISTICS 0,
    ALTER COLUMN last_activity SET STATISTICS 0,
    ALTER COLUMN last_update SET STATISTICS 0,
    ALTER COLUMN evidence SET STATISTICS 0,
    ALTER COLUMN content_hash SET STATISTICS 0,
    ALTER COLUMN ingested_at SET STATISTICS 0,
    ALTER COLUMN updated_at SET STATISTICS 0;

ALTER TABLE hunting_incidents
    ALTER COLUMN title SET STATISTICS 0,
    ALTER COLUMN summary SET STATISTICS 0,
    ALTER COLUMN breakdown SET STATISTICS 0,
    ALTER COLUMN tactics SET STATISTICS 0,
    ALTER COLUMN tactic_first SET STATISTICS 0,
    ALTER COLUMN device_names SET STATISTICS 0,
    ALTER COLUMN user_names SET STATISTICS 0,
    ALTER COLUMN title_base SET STATISTICS 0,
    ALTER COLUMN notified SET STATISTICS 0,
    ALTER COLUMN last_changes SET STATISTICS 0,
    ALTER COLUMN impact_detail SET STATISTICS 0;

-- A batch rewrites a few hundred incidents, often several on one page, in
-- one transaction: the new versions of a page's rows must all fit on it for
-- the updates to stay HOT (no new index entries). At 80% fill, 30% of the
-- updates under intake were not HOT; at 50%, 8% (those that move
-- next_due_at, which is indexed). The table is small (one row per
-- incident); new pages are filled to 50%.
ALTER TABLE hunting_incidents SET (fillfactor = 50);
