package hunting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSummarySaysSingulars: one alert on one device with one user account is
// written in the singular, never "1 alert(s)" (issue 14, item 7).
func TestSummarySaysSingulars(t *testing.T) {
	t.Parallel()
	one := summaryFor(&incState{AlertCount: 1, DeviceCount: 1, UserCount: 1, DeviceNames: []string{"ws-017"}, Severity: SeverityHigh, Score: 55})
	require.Contains(t, one, "1 alert on 1 device (ws-017) involving 1 user account.")
	require.NotContains(t, one, "(s)")
	two := summaryFor(&incState{AlertCount: 2, DeviceCount: 3, UserCount: 2, Severity: SeverityHigh, Score: 55})
	require.Contains(t, two, "2 alerts on 3 devices involving 2 user accounts.")
	require.Equal(t, []string{"Consider isolating the affected device while you investigate"}, recommend(nil, 1, false, SeverityHigh)[:1])
	require.Equal(t, []string{"Consider isolating the affected devices while you investigate"}, recommend(nil, 2, false, SeverityHigh)[:1])
}
