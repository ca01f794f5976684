package bot

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// oneIncident is hunting holding one incident.
type oneIncident struct {
	Incidents
	v IncidentView
}

func (o oneIncident) Incident(context.Context, string, string) (IncidentView, error) { return o.v, nil }

// TestHeldUpReminderOfAnAcknowledgedIncident: a "still not acknowledged"
// reminder whose delivery was held up says nothing once the incident was
// acknowledged or closed meanwhile; only the card is brought up to date.
// It was posted anyway, telling the SOC something false.
func TestHeldUpReminderOfAnAcknowledgedIncident(t *testing.T) {
	t.Parallel()
	base := IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90, Status: "open"}
	acked, closed := base, base
	acked.AckedBy = "Ana Lyst"
	closed.Status = "closed"
	for name, tc := range map[string]struct {
		inc      IncidentView
		reminded bool
	}{"open": {base, true}, "acknowledged": {acked, false}, "closed": {closed, false}} {
		b := &Bot{cfg: unitConfig(), core: &core{now: time.Now, hunt: oneIncident{v: tc.inc}}}
		parts, err := b.renderIncident(context.Background(), IncidentEvent{IncidentID: "12", Org: "contoso", Action: "repeat"})
		require.NoError(t, err, name)
		var keys []string
		for _, p := range parts {
			keys = append(keys, p.key)
		}
		if tc.reminded {
			require.Equal(t, []string{"card", "note"}, keys, name)
			require.Contains(t, allText(parts[1].msg), "still not acknowledged", name)
		} else {
			require.Equal(t, []string{"card"}, keys, name)
		}
	}
}
