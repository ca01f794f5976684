package casework_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	reg := prometheus.NewRegistry()
	clock := testclock.New(t0)
	key := testKey(t)
	a, err := casework.New(pool, casework.Config{Now: clock.Now, Key: key}, nil, reg)
	require.NoError(t, err)
	b, err := casework.New(pool, casework.Config{Now: clock.Now, Key: key}, nil, reg)
	require.NoError(t, err, "a second Service in one process shares the metrics")
	ctx := context.Background()
	f := &fixture{svc: a}
	c, _, err := a.Open(ctx, f.openReq("contoso"))
	require.NoError(t, err)
	_, err = b.Take(ctx, c.Ref, expert("U-e"))
	require.NoError(t, err)
	_, err = a.Take(ctx, c.Ref, expert("U-other"))
	require.Error(t, err)
	clock.Advance(50 * time.Minute)
	_, err = b.SweepSLA(ctx)
	require.NoError(t, err)

	families, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
	}
	require.True(t, names["threatdesk_casework_cases_opened_total"])
	require.True(t, names["threatdesk_casework_sla_sweep_seconds"])
	require.Equal(t, 1.0, total(t, reg, "threatdesk_casework_cases_opened_total"))
	require.Equal(t, 1.0, total(t, reg, "threatdesk_casework_refused_total"), "the losing take")
	require.Equal(t, 1.0, total(t, reg, "threatdesk_casework_sla_events_total"), "one warning")
	require.Equal(t, 2.0, total(t, reg, "threatdesk_casework_transitions_total"), "new, in_progress")
}

// total sums a counter family's series.
func total(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestMetricsByOrg: cases opened, credits and SLA notices carry the org,
// bounded by the configured orgs: any other org is counted as
// OtherOrgLabel, so the label cannot grow with what callers send.
func TestMetricsByOrg(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	pool := pgtest.New(t)
	clock := testclock.New(t0)
	five := 5
	svc, err := casework.New(pool, casework.Config{Now: clock.Now, Key: testKey(t),
		Orgs: []casework.Org{{ID: "contoso"}, {ID: "fabrikam", CreditsPerQuarter: &five}}}, nil, reg)
	require.NoError(t, err)
	ctx := context.Background()
	f := &fixture{svc: svc}
	for _, org := range []string{"contoso", "contoso", "fabrikam", "acme", "globex"} {
		_, _, err := svc.Open(ctx, f.openReq(org))
		require.NoError(t, err)
	}
	// contoso's second case is withdrawn before anyone took it: a refund.
	_, err = svc.Transition(ctx, casework.TransitionRequest{Ref: "EOD-2", To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	clock.Advance(50 * time.Minute) // every high case is past 75% of its hour
	res, err := svc.SweepSLA(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, res.Warnings)

	require.Equal(t, map[string]float64{
		"org=_other,priority=high":   2,
		"org=contoso,priority=high":  2,
		"org=fabrikam,priority=high": 1, // configured with its own allowance
	}, series(t, reg, "threatdesk_casework_cases_opened_total"))
	require.Equal(t, map[string]float64{
		"change=used,org=_other":      2,
		"change=used,org=contoso":     2,
		"change=refunded,org=contoso": 1,
		"change=used,org=fabrikam":    1,
	}, series(t, reg, "threatdesk_casework_credits_total"))
	require.Equal(t, map[string]float64{
		"clock=first_response,kind=warning,org=_other":   2,
		"clock=first_response,kind=warning,org=contoso":  1,
		"clock=first_response,kind=warning,org=fabrikam": 1,
	}, series(t, reg, "threatdesk_casework_sla_events_total"))
}

// series returns a counter family's values by their labels ("a=1,b=2", sorted).
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(ls, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}
