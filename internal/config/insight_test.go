package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/config"
)

// TestInsightWindow: insight.window defaults to 30d, reads days, and a
// window out of bounds is reported with the other problems.
func TestInsightWindow(t *testing.T) {
	t.Parallel()
	const base = "orgs:\n  - id: contoso\n    slack: {team: T0CONTOSO, channels: [C0SOC]}\ndesk:\n  slack:\n    channel: C0DESK\nexperts:\n  slack: [U0EXPERT1]\n"
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base)}))
	require.NoError(t, err)
	require.Equal(t, insight.DefaultWindow, c.File.Insight.Window)
	require.Equal(t, 30*24*time.Hour, c.File.Insight.Window)

	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"insight:\n  window: 7d\n")}))
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, c.File.Insight.Window)

	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"hunting:\n  notify_score: 500\ninsight:\n  window: 10m\n")}))
	require.ErrorContains(t, err, "insight.window 10m0s is too short")
	require.ErrorContains(t, err, "hunting.notify_score 500", "reported together")
	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"insight:\n  window: 400d\n")}))
	require.ErrorContains(t, err, "insight.window 9600h0m0s is too long")
	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"insight:\n  windw: 7d\n")}))
	require.Error(t, err, "an unknown key is refused")
}
