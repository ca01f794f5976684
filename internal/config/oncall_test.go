package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/config"
)

// TestOncallSettingsReachTheirPackages: the time zone reaches the bot (times
// are shown in it), oncall.page_after reaches casework's sweep, and
// cases.remind_after is casework's, checked with the file's other problems.
func TestOncallSettingsReachTheirPackages(t *testing.T) {
	t.Parallel()
	const base = `
orgs:
  - id: contoso
    slack: {team: T0CONTOSO, channels: [C0CONTOSOSOC]}
desk:
  slack: {channel: C0EXPERTDESK}
experts:
  slack: [U0EXPERT1]
`
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base)}))
	require.NoError(t, err)
	require.Equal(t, time.UTC, c.File.Bot.Location, "default UTC")
	require.Equal(t, 15*time.Minute, c.File.Cases.PageAfter, "page_after's default reaches casework")
	require.Equal(t, 24*time.Hour, c.File.Cases.RemindAfter)

	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "timezone: America/New_York\n"+base+`
oncall:
  handover: daily 09:00
  rotation: [{slack: U0EXPERT1}]
  page_after: 30m
cases:
  remind_after: 2d
`)}))
	require.NoError(t, err)
	require.Equal(t, "America/New_York", c.File.Bot.Location.String())
	require.Equal(t, 30*time.Minute, c.File.Cases.PageAfter)
	require.Equal(t, 48*time.Hour, c.File.Cases.RemindAfter)

	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"cases:\n  remind_after: 10s\nhunting:\n  notify_score: 500\n")}))
	require.ErrorContains(t, err, "cases.remind_after 10s is too short: use at least 1m (default 24h)")
	require.ErrorContains(t, err, "hunting.notify_score 500", "reported with the others")
}
