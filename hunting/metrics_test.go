package hunting

import (
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
