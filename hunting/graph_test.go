package hunting

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// settle is hunting.graph.settle's default: the watermark stays that far
// behind Graph's time.
const settle = 5 * time.Minute

// graphClientID is the app registration's Application (client) ID.
const graphClientID = "11111111-2222-3333-4444-555555555555"

// graphSetup pulls Fabrikam's tenant from a fake Graph, three alerts a
// page, every 50 ms when scheduled.
func graphSetup(t *testing.T) (*fixture, *graphfake.Server) {
	t.Helper()
	return graphPullSetup(t, 3, 0, func(c *Config) {
		c.Graph.Interval = 50 * time.Millisecond
		c.minGraphInterval = time.Millisecond // to see scheduled pulls
	})
}

// graphPullSetup pulls Fabrikam's tenant from a fake Graph whose clock is
// the fixture's, pageSize alerts a page and maxPages a pull (0: the
// default); more adjust the rest of the config.
func graphPullSetup(t *testing.T, pageSize, maxPages int, more ...func(*Config)) (*fixture, *graphfake.Server) {
	t.Helper()
	fake := graphfake.New(tenantFabrikam, graphClientID, "s3cret")
	t.Cleanup(fake.Close)
	f := setup(t, func(c *Config) {
		c.Graph = &GraphConfig{
			Tenants:  []GraphTenant{{TenantID: tenantFabrikam, ClientID: graphClientID, ClientSecret: "s3cret"}},
			BaseURL:  fake.BaseURL(),
			LoginURL: fake.LoginURL(),
			PageSize: pageSize,
			MaxPages: maxPages,
		}
		for _, m := range more {
			m(c)
		}
	})
	fake.SetClock(f.clock.Now)
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
	tokens, _ := fake.Calls()
	require.Equal(t, 1, tokens, "the token is cached")
	require.Equal(t, "lastUpdateDateTime ge "+t0.Add(-24*time.Hour-settle).Format("2006-01-02T15:04:05.0000000Z"), fake.Filters()[0],
		"the first pull reaches a day back from Graph's time less settle")
	var mark time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks WHERE tenant = $1`, tenantFabrikam).Scan(&mark))
	require.True(t, mark.Equal(t0.Add(-settle)), "the watermark is where the last window ended, settle behind Graph: %s", mark)

	// Next pull: only what changed since the watermark, in one window.
	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g7", "host9", t0.Add(-30*time.Second)), graphAlert(t, "g1", "host1", t0.Add(-29*time.Second))))
	_, before := fake.Calls()
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "one new, one updated")
	_, after := fake.Calls()
	require.Equal(t, 1, after-before, "one page")
	require.Equal(t, "lastUpdateDateTime ge "+t0.Add(-settle).Format("2006-01-02T15:04:05.0000000Z"), fake.Filters()[len(fake.Filters())-1])
	require.Equal(t, 8, f.count(t, `SELECT count(*) FROM hunting_alerts`))

	// Throttled: the pull stops, says when to retry, and picks up later.
	fake.Throttle(1)
	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g8", "host8", f.clock.Now().Add(-30*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	var te *ThrottledError
	require.ErrorAs(t, err, &te)
	require.Equal(t, time.Second, te.RetryAfter)
	_, err = f.svc.PullGraph(f.ctx)
	require.ErrorAs(t, err, &te, "still inside Retry-After")
	// Another replica taking the pull job waits too, without asking Graph
	// (the wait was kept per replica).
	other, err := New(f.pool, f.svc.cfg, nil, nil)
	require.NoError(t, err)
	_, before = fake.Calls()
	_, err = other.PullGraph(f.ctx)
	require.ErrorAs(t, err, &te, "another replica is inside Retry-After too")
	_, after = fake.Calls()
	require.Equal(t, before, after, "and did not ask Graph")
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
	fake.SetClock(f.clock.Now)
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

// TestGraphPullRunsOnOneReplica: every replica scheduled the Graph pull
// every interval (gocron's locker only keeps runs from overlapping): with
// three replicas each tenant was read three times an interval, and Graph
// throttles by app and tenant. A replica whose tick comes after another's
// pull, within the interval, does not pull again.
func TestGraphPullRunsOnOneReplica(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 3, 0)
	require.NoError(t, fake.Add(graphAlert(t, "r1", "hostR", t0.Add(-time.Hour))))
	require.NoError(t, f.svc.Start(f.ctx))
	defer func() { require.NoError(t, f.svc.Stop()) }()
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM hunting_alerts`) == 1
	}, 10*time.Second, 20*time.Millisecond)
	tokens, _ := fake.Calls()
	require.Equal(t, 1, tokens, "the first replica pulled")

	// A second replica starts: its first tick comes after that pull.
	other, err := New(f.pool, f.svc.cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, other.Start(f.ctx))
	defer func() { require.NoError(t, other.Stop()) }()
	time.Sleep(500 * time.Millisecond) // its first ticks run at once
	tokens, _ = fake.Calls()
	require.Equal(t, 1, tokens, "the second replica did not pull again (each asks for its own token)")
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
// Contoso) and held: the watermark moves on, and the alert is fetched again
// by its id at every pull until it comes back right; a severity of
// unknownFutureValue is taken in as informational.
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
	tries := func() int {
		return f.count(t, `SELECT coalesce(sum(tries), 0) FROM hunting_graph_held WHERE tenant = '`+tenantFabrikam+`' AND id = 'gx'`)
	}
	n, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "g1 and g2; gx rejected")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'contoso'`), "never routed to the tenant it claims")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gx'`))
	a, err := f.svc.Alert(f.ctx, "fabrikam", "g2")
	require.NoError(t, err)
	require.Equal(t, SeverityInformational, a.Severity, "unknownFutureValue is informational")
	require.True(t, watermark().Equal(t0.Add(-settle)), "the watermark moves past the rejected alert: %s", watermark())
	require.Equal(t, 1, tries(), "gx is held")
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldHeld)))

	// A pull within a minute of its try leaves it; the next pull after
	// that fetches the held alert by its id; still rejected, still held.
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Empty(t, fake.Gets(), "tried a moment ago")
	f.clock.Advance(time.Minute)
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, []string{"gx"}, fake.Gets())
	require.Equal(t, 2, tries())
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldHeld)), "counted once")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gx'`))

	// Once the alert is right (here without a newer lastUpdateDateTime, as
	// when the config is fixed), the next pull takes it in and releases it.
	require.NoError(t, fake.Add(graphAlert(t, "gx", "hostX", base.Add(2*time.Minute))))
	f.clock.Advance(2 * time.Minute) // its second try waits twice as long
	n, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gx' AND org = 'fabrikam'`))
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_graph_held`))
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldAccepted)))
	require.True(t, watermark().Equal(f.clock.Now().Add(-settle)))
}

// TestRejectedAlertDoesNotStallThePull: with more alerts after a rejected
// one than one pull reads, the next pull goes on from where the last ended.
// (The watermark used to stay at the rejected alert: every pull read the
// same pages again and never reached the alerts after them.)
func TestRejectedAlertDoesNotStallThePull(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 3, 2) // six alerts a pull
	base := t0.Add(-time.Hour)
	require.NoError(t, fake.Add(withFields(t, graphAlert(t, "gx", "hostX", base), map[string]any{"tenantId": tenantContoso})))
	for i := 1; i <= 10; i++ {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("g", i), fmt.Sprint("host", i%3), base.Add(time.Duration(i)*time.Minute))))
	}
	var got []int
	for total := 0; total < 10 && len(got) < 10; {
		n, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		got = append(got, n)
		total += n
	}
	require.LessOrEqual(t, len(got), 5, "pulls of two pages each: %v", got)
	require.Equal(t, 10, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gx'`))
}

// TestHeldAlertGoneOrGivenUp: a held alert that Graph no longer has is
// dropped, even when the list brings nothing (it was not fetched at all
// then); one still rejected after the hold time is given up, without
// another fetch. Both are counted.
func TestHeldAlertGoneOrGivenUp(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	base := t0.Add(-time.Hour)
	require.NoError(t, fake.Add(withFields(t, graphAlert(t, "gx", "hostX", base), map[string]any{"tenantId": tenantContoso})))
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_graph_held`))

	fake.Remove("gx") // the list is empty from now on
	f.clock.Advance(time.Minute)
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"gx"}, fake.Gets())
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gx'`), "gone from Graph: dropped")
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldGone)))

	// gy is held, and a later alert moves the watermark past it.
	require.NoError(t, fake.Add(
		withFields(t, graphAlert(t, "gy", "hostY", f.clock.Now().Add(-30*time.Second)), map[string]any{"tenantId": tenantContoso}),
		graphAlert(t, "g3", "host3", f.clock.Now().Add(-20*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gy'`))
	gets := len(fake.Gets())
	f.clock.Advance(7*24*time.Hour + time.Minute)
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_graph_held`), "held past the hold time: given up")
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldGivenUp)))
	require.Len(t, fake.Gets(), gets, "not fetched again")
}

// TestHeldAlertThatFailsBlocksNoOther: a held alert whose fetch keeps
// failing counts a try and waits; the other held alerts are still fetched
// and taken in. (The first failure used to end the round, with nothing
// recorded, at every pull.)
func TestHeldAlertThatFailsBlocksNoOther(t *testing.T) {
	t.Parallel()
	// Graph failing on it (a 500), or answering what cannot be read (it
	// stopped every round, and stayed first: no other was ever fetched).
	for name, fail := range map[string]int{"500": 500, "unreadable": graphfake.Garbled} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			heldAlertThatFails(t, fail)
		})
	}
}

func heldAlertThatFails(t *testing.T, fail int) {
	f, fake := graphSetup(t)
	base := t0.Add(-time.Hour)
	require.NoError(t, fake.Add(
		withFields(t, graphAlert(t, "ga", "hostA", base), map[string]any{"tenantId": tenantContoso}),
		withFields(t, graphAlert(t, "gb", "hostB", base.Add(time.Second)), map[string]any{"tenantId": tenantContoso}),
		graphAlert(t, "g3", "host3", base.Add(time.Minute))))
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM hunting_graph_held`))

	fake.FailGet("ga", fail)
	require.NoError(t, fake.Add(graphAlert(t, "gb", "hostB", base.Add(time.Second)))) // right now
	f.clock.Advance(time.Minute)
	n, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "gb is taken in")
	require.ElementsMatch(t, []string{"ga", "gb"}, fake.Gets())
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'gb'`))
	require.Equal(t, 2, f.count(t, `SELECT tries FROM hunting_graph_held WHERE id = 'ga'`), "the failed fetch counts as a try")
	var reason string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT reason FROM hunting_graph_held WHERE id = 'ga'`).Scan(&reason))
	require.NotEmpty(t, reason)
	require.Contains(t, reason, "is not the tenant", "the rejection's reason stays")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gb'`))
}

// TestHeldAlertsOfARemovedTenant: held alerts of a tenant no longer pulled
// are kept for the hold time (a replica on the older config may still pull
// it), then given up, counted and logged like any other.
func TestHeldAlertsOfARemovedTenant(t *testing.T) {
	t.Parallel()
	f, _ := graphSetup(t)
	_, err := f.pool.Exec(f.ctx, `INSERT INTO hunting_graph_held (tenant, id, reason, first_rejected_at, last_tried_at)
VALUES ('0f0f0f0f-0000-4000-8000-000000000000', 'gz', 'unknown tenant', $1, $1)`, f.clock.Now())
	require.NoError(t, err)
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gz'`), "kept within the hold time")
	f.clock.Advance(7*24*time.Hour + time.Minute)
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_graph_held WHERE id = 'gz'`))
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.graphHeld.WithLabelValues(heldGivenUp)))
}

// TestFutureAlertDoesNotMoveTheWatermarkAhead: an alert stamped a month
// ahead (held: too far in the future) does not carry the watermark with
// it; an alert updated a minute later is pulled. The watermark went to the
// future alert's time, and no later alert was ever pulled; one already
// there is brought back.
func TestFutureAlertDoesNotMoveTheWatermarkAhead(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	require.NoError(t, fake.Add(graphAlert(t, "g-future", "hostF", t0.Add(30*24*time.Hour))))
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	var mark time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks`).Scan(&mark))
	require.False(t, mark.After(t0), "the watermark %s stays behind the pull", mark)

	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g-later", "hostL", f.clock.Now().Add(-30*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'g-later'`), "pulled")

	// A watermark moved ahead before is brought back, and pulls go on.
	_, err = f.pool.Exec(f.ctx, `UPDATE hunting_graph_watermarks SET last_update = $1`, t0.Add(30*24*time.Hour))
	require.NoError(t, err)
	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g-after", "hostA", f.clock.Now().Add(-30*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'g-after'`))
}

// TestGraphPageOverTheIntakeLimitIsRead: a Graph page bigger than the
// intake's hunting.max_body_bytes (set low here) is still read: the pull
// has a limit of its own. It was cut at the intake's limit, could never be
// decoded, and the tenant's pull stalled on that page for good.
func TestGraphPageOverTheIntakeLimitIsRead(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 3, 0, func(c *Config) { c.MaxBodyBytes = 4096 })
	long := strings.Repeat("a long description of what the attacker did. ", 120) // about 5.5 KB an alert
	for i := range 3 {
		require.NoError(t, fake.Add(withFields(t, graphAlert(t, fmt.Sprint("gbig", i), "hostB", t0.Add(-time.Hour+time.Duration(i)*time.Minute)),
			map[string]any{"description": long})))
	}
	n, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
}

// TestGraphPullCutShortLosesNothing: Graph lists alerts_v2 the most recent
// first and does not promise to honour $orderby, and a pull stops after
// MaxPages (or a 429, or a crash). Here each pull reads two pages: every
// alert arrives over the pulls, none is skipped. The watermark used to move
// to the newest alert of the first page, and the older ones of the same
// pull were never read.
func TestGraphPullCutShortLosesNothing(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 3, 2)
	for i := range 10 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("g", i), fmt.Sprint("host", i%3), t0.Add(-time.Hour+time.Duration(i)*time.Minute))))
	}
	pulls := 0
	for ; pulls < 30 && f.count(t, `SELECT count(*) FROM hunting_alerts`) < 10; pulls++ {
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 10, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`), "after %d pulls", pulls)
	t.Logf("%d pulls of two pages", pulls)

	// An alert updated while a pull reads its pages (it moves to the top
	// of the list, and the offsets of the others shift) loses nothing.
	f.clock.Advance(time.Minute)
	fake.AfterPage(func(int) {
		fake.AfterPage(nil)
		_ = fake.Add(withFields(t, graphAlert(t, "g2", "host2", f.clock.Now().Add(-time.Second)), map[string]any{"severity": "high"}))
	})
	for i := range 4 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("n", i), "host7", f.clock.Now().Add(-50*time.Second+time.Duration(i)*time.Second))))
	}
	for range 10 {
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		f.clock.Advance(time.Minute)
	}
	require.Equal(t, 14, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	a, err := f.svc.Alert(f.ctx, "fabrikam", "g2")
	require.NoError(t, err)
	require.Equal(t, SeverityHigh, a.Severity, "the update is read")
}

// TestGraphPullFollowsGraphsClock: with this clock ten minutes ahead of
// Graph's, the windows still end settle behind Graph's time (its Date
// header), so an alert Graph stamps a moment later is read. Ending them by
// this clock would have moved the watermark past it before it existed.
func TestGraphPullFollowsGraphsClock(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	fake.SetClock(func() time.Time { return f.clock.Now().Add(-10 * time.Minute) })
	require.NoError(t, fake.Add(graphAlert(t, "g1", "host1", t0.Add(-time.Hour))))
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	var mark time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks`).Scan(&mark))
	require.True(t, mark.Equal(t0.Add(-10*time.Minute-settle)), "settle behind Graph's time: %s", mark)

	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g2", "host2", t0.Add(-9*time.Minute-10*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'g2'`), "read")
}

// TestGraphAlertListedLateIsRead: Graph may list an alert a while after
// its lastUpdateDateTime. One listed 90 seconds late, after a pull that
// found nothing, is still read: the watermark stays settle behind Graph's
// time. (It stayed a minute behind, and moved past the alert before Graph
// listed it.)
func TestGraphAlertListedLateIsRead(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g-late", "hostL", t0.Add(-90*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'g-late'`))
}

// TestGraphDenseWindowChangedWhileReadIsReadAgain: fifteen alerts of one
// millisecond (a bulk update) take two pages, whatever the window; one of
// the first page is updated before the second is read, so the offsets
// shift and the second page skips one. The window is not counted as read
// (its pages brought fewer alerts than its $count) and is read again:
// every alert is stored. The watermark moved past the skipped one.
func TestGraphDenseWindowChangedWhileReadIsReadAgain(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 10, 20)
	at := t0.Add(-time.Hour)
	for i := range 15 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("b", i), fmt.Sprint("host", i), at)))
	}
	dense := "lastUpdateDateTime ge " + graphTime(at) + " and lastUpdateDateTime lt " + graphTime(at.Add(graphMinSpan))
	fired := false
	fake.AfterPage(func(int) {
		if fs := fake.Filters(); !fired && fs[len(fs)-1] == dense {
			fired = true
			require.NoError(t, fake.Add(withFields(t, graphAlert(t, "b0", "host0", t0.Add(-30*time.Second)), map[string]any{"severity": "high"})))
		}
	})
	for range 3 {
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		f.clock.Advance(time.Minute)
	}
	require.True(t, fired, "the dense window was read over pages")
	require.Equal(t, 15, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}

// TestGraphPullKeepsUpWithSteadyLoad: four pages of alerts a minute, pulled
// every minute with at most 20 requests: every alert is stored, and the
// pull spends few requests beyond the pages themselves (each alert is read
// twice: at once, and again once settle has passed).
func TestGraphPullKeepsUpWithSteadyLoad(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 10, 20)
	n := 0
	var requests []int
	for range 15 {
		for i := range 40 {
			n++
			require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("s", n), fmt.Sprint("host", n%7),
				f.clock.Now().Add(-time.Minute+time.Duration(i)*1500*time.Millisecond))))
		}
		_, before := fake.Calls()
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		_, after := fake.Calls()
		requests = append(requests, after-before)
		f.clock.Advance(time.Minute)
	}
	require.Equal(t, n, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	sum := 0
	for _, r := range requests[5:] {
		sum += r
	}
	t.Logf("requests a pull: %v", requests)
	require.LessOrEqual(t, float64(sum)/10, 10.0, "about the four pages a minute, the open window and a few narrowings: %v", requests)
}

// TestGraphColdStartFindsItsAlerts: a first pull whose day of lookback has
// alerts only in its last two hours reaches them in a few pulls.
func TestGraphColdStartFindsItsAlerts(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 10, 20)
	for i := range 600 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("c", i), fmt.Sprint("host", i%9),
			t0.Add(-2*time.Hour+time.Duration(i)*10*time.Second))))
	}
	pulls := 0
	for ; pulls < 20 && f.count(t, `SELECT count(*) FROM hunting_alerts`) < 600; pulls++ {
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		f.clock.Advance(time.Minute)
	}
	_, calls := fake.Calls()
	t.Logf("%d pulls, %d requests", pulls, calls)
	require.Equal(t, 600, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	require.LessOrEqual(t, pulls, 8, "60 pages at 20 requests a pull")
}

// TestGraphPullAfterALongOutage: a tenant whose watermark is 40 days old
// (its secret expired unnoticed) reads what came since in a few pulls. A
// window narrowed to over 32 days was taken as "no bound": the same window
// was asked for at every request, and the older alerts were never read.
func TestGraphPullAfterALongOutage(t *testing.T) {
	t.Parallel()
	f, fake := graphPullSetup(t, 10, 20)
	_, err := f.pool.Exec(f.ctx, `INSERT INTO hunting_graph_watermarks (tenant, last_update, updated_at) VALUES ($1, $2, $2)`,
		tenantFabrikam, t0.Add(-40*24*time.Hour))
	require.NoError(t, err)
	for i := range 25 {
		require.NoError(t, fake.Add(graphAlert(t, fmt.Sprint("o", i), fmt.Sprint("host", i%5), t0.Add(-20*time.Hour+time.Duration(i)*time.Minute))))
	}
	for range 5 {
		_, err := f.svc.PullGraph(f.ctx)
		require.NoError(t, err)
		f.clock.Advance(time.Minute)
	}
	require.Equal(t, 25, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}

// TestGraphDateFarOffIsNotBelieved: an answer whose Date is a day ahead (a
// proxy's, or a broken clock) does not carry the watermark into the future:
// alerts of the next minutes are still read.
func TestGraphDateFarOffIsNotBelieved(t *testing.T) {
	t.Parallel()
	f, fake := graphSetup(t)
	fake.SetClock(func() time.Time { return f.clock.Now().Add(24 * time.Hour) })
	_, err := f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	var mark time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_update FROM hunting_graph_watermarks`).Scan(&mark))
	require.True(t, mark.Equal(t0.Add(-settle)), "this clock's time is used: %s", mark)
	fake.SetClock(f.clock.Now)
	f.clock.Advance(time.Minute)
	require.NoError(t, fake.Add(graphAlert(t, "g-next", "hostN", t0.Add(30*time.Second))))
	_, err = f.svc.PullGraph(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'g-next'`))
}
