package hunting

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/hunting/graphfake"
)

// graphAlert is the Graph sample with another id, device and update time.
func graphAlert(t testing.TB, id, device string, updated time.Time) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, "graph-alert-v2-sample.json"))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["id"] = id
	m["lastUpdateDateTime"] = updated.UTC().Format(time.RFC3339Nano)
	ev := m["evidence"].([]any)
	ev[0].(map[string]any)["mdeDeviceId"] = fmt.Sprintf("%040x", hashString(device))
	ev[0].(map[string]any)["deviceDnsName"] = device
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// graphClientID is the app registration's Application (client) ID.
const graphClientID = "11111111-2222-3333-4444-555555555555"

func graphSetup(t *testing.T) (*fixture, *graphfake.Server) {
	t.Helper()
	fake := graphfake.New(tenantFabrikam, graphClientID, "s3cret")
	t.Cleanup(fake.Close)
	f := setup(t, func(c *Config) {
		c.Graph = &GraphConfig{
			Tenants:  []GraphTenant{{TenantID: tenantFabrikam, ClientID: graphClientID, ClientSecret: "s3cret"}},
			BaseURL:  fake.BaseURL(),
			LoginURL: fake.LoginURL(),
			PageSize: 3,
			Interval: 50 * time.Millisecond,
		}
		c.minGraphInterval = time.Millisecond // to see scheduled pulls
	})
	return f, fake
}

func TestGraphPull(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	base := t0.Add(-2 * time.Hour)
	for i := range 7 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("g", i), fmt.Sprint("host", i%2), base.Add(time.Duration(i)*time.Minute))))
	}
	n, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	require.Equal(t, 7, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`))
	tokens, calls := fake.Calls()
	require.Equal(t, 1, tokens, "the token is cached")
	require.Equal(t, 3, calls, "three pages of three")
	require.Equal(t, "lastUpdateDateTime ge "+t0.Add(-24*time.Hour).Format("2006-01-02T15:04:05.0000000Z"), fake.Filters()[0])
	var mark time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks WHERE tenant = $1`, tenantFabrikam).Scan(&mark))
	require.True(t, mark.Equal(base.Add(6*time.Minute)), "watermark %s", mark)

	// Next pull: only what changed since the watermark.
	require.NoError(t, fake.Add(graphAlert(t, "g7", "host9", base.Add(time.Hour)), graphAlert(t, "g1", "host1", base.Add(time.Hour+time.Second))))
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "one new, one updated; the watermark item comes back unchanged")
	require.Contains(t, fake.Filters()[3], base.Add(6*time.Minute).Format("2006-01-02T15:04:05"))
	require.Equal(t, 8, f.count(t, `SELECT count(*) FROM hunting_alerts`))

	// Throttled: the pull stops, says when to retry, and picks up later.
	fake.Throttle(1)
	require.NoError(t, fake.Add(graphAlert(t, "g8", "host8", base.Add(2*time.Hour))))
	_, err = f.svc.PullGraph(f.ctx)
	var te *ThrottledError
	require.ErrorAs(t, err, &te)
	require.Equal(t, time.Second, te.RetryAfter)
	_, err = f.svc.PullGraph(f.ctx)
	require.ErrorAs(t, err, &te, "still inside Retry-After")
	f.clock.Advance(1100 * time.Millisecond)
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestGraphPullErrors(t *testing.T) {
	t.Parallel()
	fake := graphfake.New(tenantFabrikam, graphClientID, "s3cret")
	t.Cleanup(fake.Close)
	f := setup(t, func(c *Config) {
		c.Graph = &GraphConfig{
			Tenants:  []GraphTenant{{TenantID: tenantFabrikam, ClientID: graphClientID, ClientSecret: "wrong-secret"}},
			BaseURL:  fake.BaseURL(),
			LoginURL: fake.LoginURL(),
		}
	})
	_, err := f.svc.PullGraph(f.ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "AADSTS7000215")
	require.NotContains(t, err.Error(), "wrong-secret", "secrets never go in errors")

	_, err = New(f.pool, Config{Orgs: testOrgs(), Graph: &GraphConfig{
		Tenants: []GraphTenant{{TenantID: "other"}}, Interval: time.Second}}, nil, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), `hunting.graph.tenants[0].tenant_id "other" is not in any org's tenants`)
	require.Contains(t, err.Error(), `hunting.graph.tenants[0].client_id "" must be the app registration's Application (client) ID`)
	require.Contains(t, err.Error(), "hunting.graph.tenants[0].client_secret_env must name the environment variable")
	require.Contains(t, err.Error(), "hunting.graph.interval 1s is too short: use at least 10s")
}

func TestGraphPullScheduled(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	require.NoError(t, fake.Add(graphAlert(t, "s1", "hostS", t0.Add(-time.Hour))))
	require.NoError(t, f.svc.Start(f.ctx))
	defer func() { require.NoError(t, f.svc.Stop()) }()
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM hunting_alerts`) == 1
	}, 10*time.Second, 20*time.Millisecond)
}

// withFields returns a Graph alert with some fields replaced.
func withFields(t testing.TB, raw json.RawMessage, fields map[string]any) json.RawMessage {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	for k, v := range fields {
		m[k] = v
	}
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// TestGraphPullIsBoundToItsTenant: an alert pulled with Fabrikam's
// credentials that claims Contoso's tenant is rejected (not routed to
// Contoso), and the watermark stays at it, so it is read again by the next
// pull rather than skipped; a severity of unknownFutureValue is taken in as
// informational.
func TestGraphPullIsBoundToItsTenant(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	base := t0.Add(-time.Hour)
	foreign := withFields(t, graphAlert(t, "gx", "hostX", base.Add(2*time.Minute)), map[string]any{"tenantId": tenantContoso})
	future := withFields(t, graphAlert(t, "g2", "host2", base.Add(3*time.Minute)), map[string]any{"severity": "unknownFutureValue"})
	require.NoError(t, fake.Add(graphAlert(t, "g1", "host1", base.Add(time.Minute)), foreign, future))

	watermark := func() time.Time {
		var mark time.Time
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks WHERE tenant = $1`, tenantFabrikam).Scan(&mark))
		return mark
	}
	n, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "g1 and g2; gx rejected")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'contoso'`), "never routed to the tenant it claims")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gx'`))
	a, err := f.svc.Alert(f.ctx, "fabrikam", "g2")
	require.NoError(t, err)
	require.Equal(t, SeverityInformational, a.Severity, "unknownFutureValue is informational")
	require.True(t, watermark().Equal(base.Add(2*time.Minute)), "the watermark stops at the rejected alert, not past g2: %s", watermark())

	// The next pull reads the rejected alert again; still rejected, still held.
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	filters := fake.Filters()
	require.Contains(t, filters[len(filters)-1], base.Add(2*time.Minute).Format("2006-01-02T15:04:05"))
	require.True(t, watermark().Equal(base.Add(2*time.Minute)))

	// Once the alert comes back right, it is taken in and the watermark moves on.
	require.NoError(t, fake.Add(graphAlert(t, "gx", "hostX", base.Add(4*time.Minute))))
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gx' AND org = 'fabrikam'`))
	require.True(t, watermark().Equal(base.Add(4*time.Minute)))
}
