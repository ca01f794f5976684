package hunting

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
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
	for _, tbl := range []string{"hunting_alerts", "hunting_incidents"} {
		_, err := f.pool.Exec(f.ctx, "ALTER TABLE "+tbl+" SET (autovacuum_enabled = false)")
		require.NoError(t, err)
	}
	f.ingest(t, gen{ID: "k1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"})
	_, err := f.pool.Exec(f.ctx, "ANALYZE hunting_alerts; ANALYZE hunting_incidents")
	require.NoError(t, err)
	// The org grows by 40,000 alerts after the statistics were taken.
	_, err = f.pool.Exec(f.ctx, `
INSERT INTO hunting_alerts (org, id, source, tenant, incident_id, description, severity, severity_rank, first_activity,
    content_hash, ingested_at, updated_at)
SELECT 'contoso', 'bulk-' || g, 'defender', $1, i.id, repeat('x', 400), 'Low', 1, now(), '\x00', now(), now()
FROM generate_series(1, 40000) g, (SELECT min(id) AS id FROM hunting_incidents) i`, tenantContoso)
	require.NoError(t, err)

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

	var plan []struct {
		Plan struct {
			Hit  int `json:"Shared Hit Blocks"`
			Read int `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	var raw []byte
	require.NoError(t, f.pool.QueryRow(f.ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+knownAlertsSQL, "contoso", ids).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &plan))
	pages := plan[0].Plan.Hit + plan[0].Plan.Read
	// About 4 pages per id (two index levels, the heap, the incident);
	// the org's alerts fill about 3,000.
	require.Less(t, pages, 20*len(ids), "pages read to look up %d alerts: %s", len(ids), raw)
}
