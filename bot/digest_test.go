package bot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
)

func TestDigestConfig(t *testing.T) {
	t.Parallel()
	slack := func(ch string) *Digest { return &Digest{Slack: &DigestSlack{Channel: ch}} }
	tests := []struct {
		name   string
		digest *Digest
		want   string // "" = valid
	}{
		{"none", nil, ""},
		{"slack, default time", slack("C0MANAGERS"), ""},
		{"discord", &Digest{Discord: &DigestDiscord{Guild: "1000000000000000001", Channel: "1000000000000000009"}, When: "friday 17:30"}, ""},
		{"nowhere", &Digest{When: "Mon 08:00"}, "say where the weekly digest goes"},
		{"both", &Digest{Slack: &DigestSlack{Channel: "C0MANAGERS"}, Discord: &DigestDiscord{Guild: "1000000000000000001", Channel: "1000000000000000009"}},
			"set either slack or discord, not both"},
		{"bad slack channel", slack("#managers"), `reports.digest.slack.channel "#managers" must be a Slack channel id`},
		{"bad discord id", &Digest{Discord: &DigestDiscord{Guild: "guild", Channel: "1000000000000000009"}}, "reports.digest.discord needs guild and channel as Discord ids"},
		{"an org's channel", slack("C0CONTOSOSOC"), "is org contoso's channel, and the digest shows every org's figures"},
		{"an org's discord channel", &Digest{Discord: &DigestDiscord{Guild: "1000000000000000001", Channel: "1000000000000000002"}},
			"is org fabrikam's channel"},
		{"bad weekday", &Digest{Slack: &DigestSlack{Channel: "C0MANAGERS"}, When: "Someday 08:00"}, `reports.digest.when "Someday 08:00" is not a weekly time: "Someday" is not a weekday`},
		{"bad time", &Digest{Slack: &DigestSlack{Channel: "C0MANAGERS"}, When: "Mon 25:00"}, "is not a time between 00:00 and 23:59"},
		{"daily is not weekly", &Digest{Slack: &DigestSlack{Channel: "C0MANAGERS"}, When: "daily 08:00"}, "is not a weekday"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := unitConfig()
			c.Reports.Digest = tt.digest
			c = c.WithDefaults()
			err := errors.Join(c.Validate(), c.ready())
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
	c := unitConfig()
	c.Reports.Digest = slack("C0MANAGERS")
	require.Equal(t, DefaultDigestWhen, c.WithDefaults().Reports.Digest.When)
	require.Empty(t, c.Reports.Digest.When, "WithDefaults does not change the config it was given")
}

// TestDigestDueThisWeek: when the digest is due in the week of a time,
// and the latest time it was due at or before it (what a start or the
// hourly check queues, if no replica has).
func TestDigestDueThisWeek(t *testing.T) {
	t.Parallel()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	mon, err := parseWhen("Mon 08:00")
	require.NoError(t, err)
	sun, err := parseWhen("sunday 20:00")
	require.NoError(t, err)
	at := func(s string) time.Time {
		t.Helper()
		x, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		require.NoError(t, err)
		return x
	}
	for _, tt := range []struct {
		w    when
		now  string
		due  string
		late bool
		last string
	}{
		{mon, "2026-03-30 07:59", "2026-03-30 08:00", false, "2026-03-23 08:00"}, // Monday, just before (BST since the 29th)
		{mon, "2026-03-30 08:00", "2026-03-30 08:00", true, "2026-03-30 08:00"},
		{mon, "2026-04-05 23:00", "2026-03-30 08:00", true, "2026-03-30 08:00"}, // Sunday of the same week
		{sun, "2026-03-30 09:00", "2026-04-05 20:00", false, "2026-03-29 20:00"},
		{sun, "2026-04-05 19:59", "2026-04-05 20:00", false, "2026-03-29 20:00"},
		{sun, "2026-04-05 21:00", "2026-04-05 20:00", true, "2026-04-05 20:00"},
		{sun, "2026-04-06 00:30", "2026-04-12 20:00", false, "2026-04-05 20:00"}, // over the week's end
	} {
		now := at(tt.now)
		due := tt.w.dueIn(now, london)
		require.Equal(t, at(tt.due), due, "due for %s", tt.now)
		require.Equal(t, tt.late, !now.Before(due), "late at %s", tt.now)
		require.Equal(t, at(tt.last), tt.w.lastDue(now, london), "last due at %s", tt.now)
	}
}

// TestDigestMissedOverTheWeeksEnd: a digest due Sunday 20:00, every
// replica down from Sunday 19:00 to Monday 00:30. The replica that starts
// queues that Sunday's digest at once (it waited for next Sunday, which
// queued the next week: the missed week was never sent).
func TestDigestMissedOverTheWeeksEnd(t *testing.T) {
	t.Parallel()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	monday := time.Date(2026, 4, 6, 0, 30, 0, 0, london)
	sunday := time.Date(2026, 4, 5, 20, 0, 0, 0, london)

	q := &dueRecorder{now: monday, calls: make(chan time.Time, 4)}
	d, err := NewDigestScheduler(Reports{Digest: &Digest{Slack: &DigestSlack{Channel: "C0MANAGERS"}, When: "Sun 20:00"}, Location: london},
		q, pgtest.New(t), nil, nil)
	require.NoError(t, err)
	require.NoError(t, d.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, d.Stop()) })
	select {
	case due := <-q.calls:
		require.True(t, due.Equal(sunday), "queued for %s", due)
	case <-time.After(10 * time.Second):
		t.Fatal("the missed digest was not queued at start")
	}
}

// dueRecorder is a DigestQueuer that records the due times asked for.
type dueRecorder struct {
	now   time.Time
	calls chan time.Time
}

func (r *dueRecorder) QueueDigest(_ context.Context, _ *time.Location, due func(time.Time) time.Time) (bool, error) {
	r.calls <- due(r.now)
	return true, nil
}
