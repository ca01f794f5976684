package hunting

import (
	dto "github.com/prometheus/client_model/go"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestMetricsByOrg: alerts taken in and notifications written carry the
// org they belong to, so that dashboards show the report's figures; an
// alert of no configured org counts under OtherOrgLabel.
func TestMetricsByOrg(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.ingest(t,
		gen{ID: "m1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"},
		gen{ID: "m2", Tenant: tenantContoso, Device: "ws-2", Title: "Hands-on-keyboard activity", Source: "ThreatExperts", Severity: "High"},
		gen{ID: "m3", Tenant: tenantFabrikam, Device: "fs-1", Title: "Mimikatz"},
		gen{ID: "m4", Tenant: "c0ffee00-0000-4000-8000-000000000000", Device: "x", Title: "Unknown tenant"},
	)
	f.ingest(t, gen{ID: "m1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell"})
	items := f.svc.m.items
	require.Equal(t, 2.0, testutil.ToFloat64(items.WithLabelValues("contoso", string(StatusAccepted))))
	require.Equal(t, 1.0, testutil.ToFloat64(items.WithLabelValues("contoso", string(StatusUnchanged))))
	require.Equal(t, 1.0, testutil.ToFloat64(items.WithLabelValues("fabrikam", string(StatusAccepted))))
	require.Equal(t, 1.0, testutil.ToFloat64(items.WithLabelValues(OtherOrgLabel, string(StatusRejected))))
	// The expert hunting service's alert is notified at once: a card for Contoso.
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.events.WithLabelValues("contoso", "incident.notify")))
	require.Zero(t, testutil.ToFloat64(f.svc.m.events.WithLabelValues("fabrikam", "incident.notify")))
	require.Equal(t, "contoso", f.svc.cfg.orgLabel("contoso"))
	require.Equal(t, OtherOrgLabel, f.svc.cfg.orgLabel("initech"))
	require.Equal(t, OtherOrgLabel, f.svc.cfg.orgLabel(""))
}

// TestIngestStagesAreTimed: an ingest transaction counts its wall time in
// every stage, so that an operator (and the intake benchmarks) can see
// where intake time goes; a re-post that changes nothing stops after the
// first stage. The stages lie within the batches' own time, from taking a
// connection to the caches learning what was stored.
func TestIngestStagesAreTimed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.ingest(t, gen{ID: "s1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell", Files: []string{sha("s1")}})
	took := f.svc.stageSplit()
	for i, c := range f.svc.m.stages {
		require.Positive(t, took.from[i], "stage %s", stageNames[i])
		require.Equal(t, took.from[i], testutil.ToFloat64(c))
	}
	f.ingest(t, gen{ID: "s1", Tenant: tenantContoso, Device: "ws-1", Title: "Suspicious PowerShell", Files: []string{sha("s1")}})
	for i, c := range f.svc.m.stages {
		switch i {
		case stageBegin, stageKnown, stageCommit, stageApply:
			require.Greater(t, testutil.ToFloat64(c), took.from[i], "stage %s", stageNames[i])
		default:
			require.Equal(t, took.from[i], testutil.ToFloat64(c), "stage %s: the re-post changed nothing", stageNames[i])
		}
	}
	var total float64
	for _, c := range f.svc.m.stages {
		total += testutil.ToFloat64(c)
	}
	var batches dto.Metric
	require.NoError(t, f.svc.m.batchDur.Write(&batches))
	require.EqualValues(t, 2, batches.GetHistogram().GetSampleCount())
	require.LessOrEqual(t, total, batches.GetHistogram().GetSampleSum())
}
