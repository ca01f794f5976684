package hunting

import (
	"crypto/md5"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// TestKnownAlertsAreProbedByID: looking up a batch's alerts reads a few
// pages per id, not every alert of the org, even when the planner's
// statistics were taken while the org had few alerts (as they are while
// intake fills a new org faster than autovacuum analyzes). Before, the
// lookup was planned as a scan of the org's alerts filtered by id: it read
// every page of them to find none.
func TestKnownAlertsAreProbedByID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pgtest.NoAutovacuum(t, f.pool, "hunting_alerts", "hunting_incidents")
	f.ingest(t, gen{ID: "k1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"})
	f.exec(t, "ANALYZE hunting_alerts; ANALYZE hunting_incidents")
	// The org grows by 40,000 alerts after the statistics were taken.
	f.exec(t, `
INSERT INTO hunting_alerts (org, id, source, tenant, incident_id, description, severity, severity_rank, first_activity,
    content_hash, ingested_at, updated_at)
SELECT 'contoso', 'bulk-' || g, 'defender', $1, i.id, repeat('x', 400), 'Low', 1, now(), '\x00', now(), now()
FROM generate_series(1, 40000) g, (SELECT min(id) AS id FROM hunting_incidents) i`, tenantContoso)

	ids := []string{"k1", "bulk-17"}
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("new-%d", i))
	}
	var known []string
	rows, err := f.pool.Query(f.ctx, knownAlertsSQL, "contoso", ids)
	require.NoError(t, err)
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		known = append(known, vals[0].(string))
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{"k1", "bulk-17"}, known)
	var other int
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM ("+knownAlertsSQL+") k", "fabrikam", ids).Scan(&other))
	require.Zero(t, other, "another org's lookup finds none of contoso's alerts")

	pages, plan := pgtest.PlanPages(t, f.pool, knownAlertsSQL, "contoso", ids)
	// About 4 pages per id (two index levels, the heap, the incident);
	// the org's alerts fill about 3,000.
	require.Less(t, pages, 20*len(ids), "pages read to look up %d alerts: %s", len(ids), plan)
}

// TestStaleIncidentsReadOnlyTheOpenOnes: the sweep's re-scoring, once a
// minute, finds its open incidents without reading every closed incident
// ever stored. Before, no index led to the open ones: each pass read an
// entry for every incident.
func TestStaleIncidentsReadOnlyTheOpenOnes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pgtest.NoAutovacuum(t, f.pool, "hunting_incidents")
	f.exec(t, `
INSERT INTO hunting_incidents (org, status, summary, created_at, updated_at)
SELECT 'contoso', CASE WHEN g % 1000 = 0 THEN 'open' ELSE 'closed' END,
    (SELECT string_agg(md5(g::text || k::text), '') FROM generate_series(1, 10) k), $1::timestamptz, $1::timestamptz + g * interval '1 second'
FROM generate_series(1, 30000) g`, t0.Add(-48*time.Hour))
	f.exec(t, "ANALYZE hunting_incidents")

	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT sum(cardinality(array_agg)) FROM ("+staleIncidentsSQL+") s", t0, 20).Scan(&n))
	require.Equal(t, 20, n, "the 20 longest untouched of the 30 open incidents")
	pages, plan := pgtest.PlanPages(t, f.pool, staleIncidentsSQL, t0, 20)
	// The 30 open incidents sit on about as many pages (31 read). Without
	// the index, every incident's entry of an index was read (298 pages
	// here), and that grows with every incident ever stored.
	require.Less(t, pages, 100, "pages read to find the stale open incidents: %s", plan)
}

// TestIncidentsAreProbedByID: reading the incidents a batch touches reads
// a few pages per incident, not the entries of every incident of the org,
// even with statistics taken while the org was small; and an id of
// another org's incident reads nothing of it.
func TestIncidentsAreProbedByID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pgtest.NoAutovacuum(t, f.pool, "hunting_incidents")
	f.ingest(t, gen{ID: "i1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"},
		gen{ID: "i2", Tenant: tenantFabrikam, Device: "fs-1", Title: "Mimikatz"})
	f.exec(t, "ANALYZE hunting_incidents")
	f.exec(t, `
INSERT INTO hunting_incidents (org, created_at, updated_at) SELECT 'contoso', now(), now() FROM generate_series(1, 30000)`)
	var ids []int64
	rows, err := f.pool.Query(f.ctx, `SELECT id FROM hunting_incidents ORDER BY id LIMIT 2`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 2)
	contoso, fabrikam := ids[0], ids[1]
	for i := range int64(50) {
		ids = append(ids, fabrikam+1000+i*300)
	}
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer tx.Rollback(f.ctx)
	sts, err := loadStates(f.ctx, tx, "contoso", append(ids, contoso), nil, false)
	require.NoError(t, err)
	require.Len(t, sts, 51, "an id asked twice is read once")
	require.Equal(t, contoso, sts[0].ID, "in id order")
	for _, st := range sts {
		require.NotEqual(t, fabrikam, st.ID, "another org's incident")
	}
	pages, plan := pgtest.PlanPages(t, f.pool, loadStatesSQL(false, false), "contoso", ids)
	// 159 pages read; 1,784 as "org = $1 AND id = ANY($2)".
	require.Less(t, pages, 10*len(ids), "pages read to load %d incidents: %s", len(ids), plan)
}

// TestSightingsAreProbedByKey: recording a batch's sightings probes the
// stored sighting of each entity and device, not every sighting of the
// org, even with statistics taken while the org had few.
func TestSightingsAreProbedByKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pgtest.NoAutovacuum(t, f.pool, "hunting_entity_devices")
	f.exec(t, `INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen) VALUES ('contoso', 'file', 'f', 'd', $1::timestamptz)`, t0)
	f.exec(t, `ANALYZE hunting_entity_devices`)
	f.exec(t, `INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen)
SELECT 'contoso', 'file', md5(g::text), 'dev-' || (g % 97), $1::timestamptz FROM generate_series(1, 60000) g`, t0)
	n := 200
	kinds, values, devs, ts := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	for i := range n {
		kinds[i], values[i], devs[i], ts[i] = "file", fmt.Sprint("new-", i), "dev-1", t0
	}
	// One seen again two hours later (rewritten), one seen again at once
	// (left as it is).
	values[0], devs[0], ts[0] = "f", "d", t0.Add(2*time.Hour)
	values[1], devs[1] = fmt.Sprintf("%x", md5.Sum([]byte("5"))), "dev-5"
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer tx.Rollback(f.ctx)
	tag, err := tx.Exec(f.ctx, sightingsSQL, "contoso", kinds, values, devs, ts)
	require.NoError(t, err)
	require.EqualValues(t, n-1, tag.RowsAffected(), "198 new and one rewritten")
	require.NoError(t, tx.Rollback(f.ctx))

	for i := range n {
		values[i] = fmt.Sprint("other-", i)
	}
	pages, plan := pgtest.PlanPages(t, f.pool, sightingsSQL, "contoso", kinds, values, devs, ts)
	// 2,276 pages read and written (a probe, a row and its index entry per
	// sighting); 62,503 with a plain join, planned as a hash join over the
	// org's 60,000 sightings.
	require.Less(t, pages, 20*n, "pages read to record %d sightings: %s", n, plan)
}

// TestCandidatesReadOnlyRecentSightings: finding the incidents that saw a
// key within the window reads those, not every incident that ever held the
// key: a device that had an incident a day for years costs no more than a
// new one.
func TestCandidatesReadOnlyRecentSightings(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, first_seen, last_seen)
SELECT g, 'contoso', 'device', 'dev-x', 'ws-x', $1::timestamptz - g * interval '1 day', $1::timestamptz - g * interval '1 day' + interval '2 hours'
FROM generate_series(1, 3000) g`, t0)
	// The org's other devices, one incident each.
	f.exec(t, `
INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, first_seen, last_seen)
SELECT 10000 + g, 'contoso', 'device', 'dev-' || g, 'ws-' || g, $1::timestamptz, $1::timestamptz
FROM generate_series(1, 60000) g`, t0)
	f.exec(t, "ANALYZE hunting_incident_entities")
	args := []any{"contoso", []string{"device"}, []string{"dev-x"}, []time.Time{t0.Add(-36 * time.Hour)}, []time.Time{t0.Add(24 * time.Hour)}, 20}
	var incs []int64
	rows, err := f.pool.Query(f.ctx, candidatesSQL, args...)
	require.NoError(t, err)
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		incs = append(incs, vals[2].(int64))
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []int64{1}, incs, "only yesterday's incident is in reach")
	// Rows read and then dropped by the window: before, all 3,000
	// incidents that ever held the key, to keep one.
	_, plan := pgtest.PlanPages(t, f.pool, candidatesSQL, args...)
	require.Less(t, pgtest.RowsRemoved(t, plan), 10.0, "rows read and dropped to find the incidents in reach of one key: %s", plan)
}

// TestSightingsAcrossOrgsReadOnlyRecentOnes: an expert's sightings of an
// IP address or a domain read the incidents that saw it in the window, not
// every incident of any org that ever held it.
func TestSightingsAcrossOrgsReadOnlyRecentOnes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// 3,000 old incidents of two orgs, a day apart, and one recent.
	f.exec(t, `INSERT INTO hunting_incident_entities (incident_id, org, kind, value, first_seen, last_seen)
SELECT g, CASE WHEN g % 2 = 0 THEN 'contoso' ELSE 'fabrikam' END, k, v, $1::timestamptz - g * interval '1 day', $1::timestamptz - g * interval '1 day'
FROM generate_series(0, 3000) g, (VALUES ('ip', '203.0.113.9'), ('url', 'https://evil.example/a')) AS x(k, v)`, t0)
	// Everything else the orgs saw.
	f.exec(t, `INSERT INTO hunting_incident_entities (incident_id, org, kind, value, first_seen, last_seen)
SELECT 10000 + g, 'contoso', k, v || g, $1::timestamptz, $1::timestamptz
FROM generate_series(1, 30000) g, (VALUES ('ip', '198.51.100.'), ('url', 'https://cdn.example/')) AS x(k, v)`, t0)
	f.exec(t, `ANALYZE hunting_incident_entities`)
	since := t0.Add(-36 * time.Hour)
	for _, c := range []struct {
		sql  string
		args []any
		want int
	}{
		{sightingHitsSQL, []any{[]string{"ip"}, []string{"203.0.113.9"}, since, 50, []string{""}}, 2},
		{domainHitsSQL, []any{[]string{"evil.example"}, since, 50, []string{""}}, 2},
		// A second read skips the orgs a key is common in: yesterday's is Fabrikam's.
		{sightingHitsSQL, []any{[]string{"ip"}, []string{"203.0.113.9"}, since, 50, []string{"fabrikam" + skipSep + "woodgrove"}}, 1},
		{domainHitsSQL, []any{[]string{"evil.example"}, since, 50, []string{"fabrikam"}}, 1},
	} {
		var n int
		require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM ("+c.sql+") h", c.args...).Scan(&n))
		require.Equal(t, c.want, n, "today's and yesterday's incidents, but those of orgs skipped")
		// Before, all 3,001 incidents that ever held it were read to keep two.
		_, plan := pgtest.PlanPages(t, f.pool, c.sql, c.args...)
		require.Less(t, pgtest.RowsRemoved(t, plan), 10.0, "rows read and dropped: %s", plan)
	}
}

// TestIncidentAlertsAreReadByIncident: what an org knows of a subject
// counts and lists the alerts of its incidents through the incident index,
// not by reading every alert of the org, even with statistics taken while
// the org was small; and another org's lookup finds none of them.
func TestIncidentAlertsAreReadByIncident(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pgtest.NoAutovacuum(t, f.pool, "hunting_alerts")
	f.ingest(t, gen{ID: "k1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"})
	f.exec(t, "ANALYZE hunting_alerts")
	// 40,000 alerts of the org's other incidents, and 300 of incident 7.
	f.exec(t, `
INSERT INTO hunting_alerts (org, id, source, tenant, incident_id, description, severity, severity_rank, first_activity,
    content_hash, ingested_at, updated_at)
SELECT 'contoso', 'bulk-' || g, 'defender', $1, CASE WHEN g <= 300 THEN 7 ELSE 100 + g % 5000 END, repeat('x', 400), 'Low', 1,
    $2::timestamptz + g * interval '1 second', '\x00', now(), now()
FROM generate_series(1, 40000) g`, tenantContoso, t0)
	ids := []int64{7}
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, incidentAlertCountSQL, []int64{7, 7}, "contoso").Scan(&n))
	require.Equal(t, 300, n, "an incident asked twice counts once")
	require.NoError(t, f.pool.QueryRow(f.ctx, incidentAlertCountSQL, ids, "fabrikam").Scan(&n))
	require.Zero(t, n, "another org's lookup")
	var latest []string
	rows, err := f.pool.Query(f.ctx, incidentAlertListSQL, ids, "contoso", 3)
	require.NoError(t, err)
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		latest = append(latest, vals[0].(string))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"bulk-300", "bulk-299", "bulk-298"}, latest)
	// What a subject's 200 incidents hold.
	for i := range int64(199) {
		ids = append(ids, 100+i*25)
	}
	for _, c := range []struct {
		sql  string
		args []any
	}{
		{incidentAlertCountSQL, []any{ids, "contoso"}},
		{incidentAlertListSQL, []any{ids, "contoso", 3}},
	} {
		// 2,003 pages to count their 1,900 alerts and 998 to list the
		// latest (each incident's newest 3); 10,366 to count them as
		// "incident_id = ANY($1) AND org = $2", every alert of the org.
		pages, plan := pgtest.PlanPages(t, f.pool, c.sql, c.args...)
		require.Less(t, pages, 3000, "pages read for 200 incidents' alerts: %s", plan)
	}
}
