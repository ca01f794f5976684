package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/config"
)

// TestReportsDigest: the reports block decodes into the bot's Reports, which
// gets the top-level timezone; its problems are reported with the others.
func TestReportsDigest(t *testing.T) {
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
	p := writeFile(t, "timezone: Europe/London\n"+base+`
reports:
  digest:
    slack: {channel: C0MANAGERS}
    when: "Mon 08:00"
`)
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p}))
	require.NoError(t, err)
	r := c.File.Bot.Reports
	require.Equal(t, &bot.Digest{Slack: &bot.DigestSlack{Channel: "C0MANAGERS"}, When: "Mon 08:00"}, r.Digest)
	require.Equal(t, "Europe/London", r.Location.String())
	require.Equal(t, bot.Dest{Platform: bot.Slack, Channel: "C0MANAGERS"}, r.Digest.Dest())

	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, base+"reports:\n  digest:\n    discord: {guild: \"1000000000000000001\", channel: \"1000000000000000009\"}\n")}))
	require.NoError(t, err)
	require.Equal(t, bot.DefaultDigestWhen, c.File.Bot.Reports.Digest.When)
	require.Equal(t, "UTC", c.File.Bot.Reports.Location.String())

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"typo in a key", base + "reports:\n  digest:\n    slack: {channel: C0MANAGERS}\n    wehn: Mon 08:00\n", []string{"wehn"}},
		{"an org's channel, and a bad time, with the other problems", "timezone: Mars/Olympus\n" + base +
			"reports:\n  digest:\n    slack: {channel: C0CONTOSOSOC}\n    when: Mon 8am\n",
			[]string{`timezone "Mars/Olympus"`, "reports.digest: channel C0CONTOSOSOC is org contoso's channel", `reports.digest.when "Mon 8am" is not a weekly time`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, tc.yaml)}))
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
