package hunting

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

func graphSetup(t *testing.T) (*fixture, *graphfake.Server) {
	t.Helper()
	fake := graphfake.New(tenantFabrikam, "app-id", "s3cret")
	t.Cleanup(fake.Close)
	f := setup(t, func(c *Config) {
		c.Graph = &GraphConfig{
			Tenants:  []GraphTenant{{TenantID: tenantFabrikam, ClientID: "app-id", ClientSecret: "s3cret"}},
			BaseURL:  fake.BaseURL(),
			LoginURL: fake.LoginURL(),
			PageSize: 3,
			Interval: 50 * time.Millisecond,
		}
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
	fake := graphfake.New(tenantFabrikam, "app-id", "s3cret")
	t.Cleanup(fake.Close)
	f := setup(t, func(c *Config) {
		c.Graph = &GraphConfig{
			Tenants:  []GraphTenant{{TenantID: tenantFabrikam, ClientID: "app-id", ClientSecret: "wrong-secret"}},
			BaseURL:  fake.BaseURL(),
			LoginURL: fake.LoginURL(),
		}
	})
	_, err := f.svc.PullGraph(f.ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "AADSTS7000215")
	require.NotContains(t, err.Error(), "wrong-secret", "secrets never go in errors")

	_, err = New(f.pool, Config{Tenants: map[string]string{"t": "o"}, Graph: &GraphConfig{
		Tenants: []GraphTenant{{TenantID: "other"}}}}, nil, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), `graph tenant "other" is not in any org's tenants`)
	require.True(t, strings.Contains(err.Error(), "client secret"))
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
