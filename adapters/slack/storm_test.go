package slack_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
)

// TestRateLimitStormThroughTheOutbox: an admin asks for three test
// notifications in each of four orgs' channels while Slack answers the
// first six chat.postMessage calls with 429 and Retry-After. The bot's
// delivery workers (outbox, per-channel pacing, Retry-After) deliver every
// card exactly once, and the fake, which refuses any post to a channel
// within a second of the last, never has to refuse one.
func TestRateLimitStormThroughTheOutbox(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("paced at one message per second per channel")
	}
	const (
		team       = "T0STORM"
		desk       = "C0STORMDESK"
		admin      = "U0ADMIN"
		perChannel = 3
	)
	channels := []string{"C0ORGA", "C0ORGB", "C0ORGC", "C0ORGD"}
	fakeChannels := []slackfake.Channel{{ID: desk, Name: "desk"}}
	var orgs []bot.Org
	for i, ch := range channels {
		fakeChannels = append(fakeChannels, slackfake.Channel{ID: ch, Name: fmt.Sprintf("soc-%d", i)})
		orgs = append(orgs, bot.Org{ID: fmt.Sprintf("org%d", i), Name: fmt.Sprintf("Org %d", i),
			Slack: &bot.SlackPlace{Team: team, Channels: []string{ch}}})
	}
	fake := slackfake.New(t, slackfake.Options{TeamID: team, ChannelInterval: time.Second, Channels: fakeChannels,
		Users: []slackfake.User{{ID: admin, Name: "root"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	db := startRealBot(t, ctx, fake, bot.Config{
		Orgs:    orgs,
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: desk}},
		Experts: bot.UserIDs{Slack: []string{"U0EXPERT"}},
		Admins:  bot.UserIDs{Slack: []string{admin}},
		// The product's pacing with a margin over the fake's strict one
		// second, for the scheduling jitter of a loaded test machine (50 ms
		// was not enough at a load average of 10 under -race).
		Delivery: bot.Delivery{Workers: 4, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {Every: 1250 * time.Millisecond, Burst: 1}}},
	})

	fake.FailNext("chat.postMessage", 6, slackfake.Failure{Status: 429, RetryAfter: time.Second})
	for range perChannel {
		for _, ch := range channels {
			_, err := fake.Command(ctx, slackfake.SlashCommand{Text: "sample-notification", UserID: admin, UserName: "root", ChannelID: ch, TeamID: team})
			require.NoError(t, err)
		}
	}

	var delivered, attempts int
	require.Eventually(t, func() bool {
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), coalesce(sum(attempts), 0) FROM outbox`).
			Scan(&delivered, &attempts))
		return delivered == len(channels)*perChannel
	}, 40*time.Second, 50*time.Millisecond, "every test notification delivered")
	require.Greater(t, attempts, delivered, "the 429s forced retries")
	require.Zero(t, fake.RateLimited(), "no post broke one per second per channel")
	for _, ch := range channels {
		var cards []slackfake.Message
		for _, m := range fake.Messages(ch) {
			if !m.Ephemeral && m.ThreadTS == "" {
				cards = append(cards, m)
			}
		}
		require.Len(t, cards, perChannel, "exactly once each in %s", ch)
		for i := 1; i < len(cards); i++ {
			require.GreaterOrEqual(t, cards[i].PostedAt.Sub(cards[i-1].PostedAt), time.Second, "two posts to %s within a second", ch)
		}
	}
	require.Empty(t, fake.Violations())
}
