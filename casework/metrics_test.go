package casework_test

import (
	"context"
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
