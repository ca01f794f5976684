package slack_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// deliveryConfig is a one-org bot config on the fake workspace of setup.
func deliveryConfig() bot.Config {
	return bot.Config{
		Orgs:    []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: "T0FAKE", Channels: []string{socChannel}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: "T0FAKE", Channel: deskChannel}},
		Experts: bot.UserIDs{Slack: []string{expert}},
		Delivery: bot.Delivery{Workers: 2, Poll: 20 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
	}
}

func deliveryFake(t *testing.T) *slackfake.Server {
	return slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{{ID: socChannel, Name: "soc"}, {ID: deskChannel, Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: analyst, Name: "alice"}, {ID: expert, Name: "eve"}},
	})
}

// process is one threatdesk process: the real bot on db behind a Slack
// adapter (Socket Mode when socket is set).
type process struct {
	bot     *bot.Bot
	adapter *adapter.Adapter
	cancel  context.CancelFunc
}

// kill ends the process the way a crash does for what matters here: its
// calls in flight are abandoned and nothing more is recorded. It reports
// whether anything of the process ended with an error (a panic).
func (p *process) kill() error {
	p.cancel()
	return errors.Join(p.bot.Stop(), p.adapter.Stop())
}

func startProcess(t *testing.T, fake *slackfake.Server, db *pgxpool.Pool, cfg bot.Config, socket bool) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Both processes of a test share the database, so they share its key.
	key, err := secrets.Parse(strings.Repeat("7d", 32))
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)
	b, err := bot.New(cfg, db, bot.NewCaseworkCases(cw), nil, log, prometheus.NewRegistry())
	require.NoError(t, err)
	o := fake.Options()
	acfg := adapter.Config{BotToken: secrets.String(o.BotToken), SigningSecret: secrets.String(o.SigningSecret), APIURL: fake.APIURL()}
	if socket {
		acfg.AppToken = secrets.String(o.AppToken)
	}
	a, err := adapter.New(acfg, log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(a))
	require.NoError(t, b.Start(ctx))
	require.NoError(t, a.Start(ctx))
	p := &process{bot: b, adapter: a, cancel: cancel}
	t.Cleanup(func() { require.NoError(t, p.kill()) })
	if socket {
		require.NoError(t, fake.WaitConnected(ctx))
	}
	return p
}

func openedDelivered(t *testing.T, db *pgxpool.Pool) func() bool {
	return func() bool {
		var n int
		require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE kind = 'case.opened' AND delivered_at IS NOT NULL`).Scan(&n))
		return n == 1
	}
}

// TestExactlyOnceWhenTheAnswerIsLost: Slack stores the desk card but its
// answer never reaches the bot. Killed at that moment, the next process on
// the same database, once the row's lease runs out, finds the card in the
// desk's history by the part's key in its metadata and does not post it
// again; a dropped connection is recovered the same way by the process
// that saw it drop.
func TestExactlyOnceWhenTheAnswerIsLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kill bool
	}{{"process killed while Slack holds the answer", true}, {"connection dropped", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := deliveryFake(t)
			db := pgtest.New(t)
			held := fake.HoldAnswer(func(m slackfake.Message) bool { return m.Channel == deskChannel && m.ThreadTS == "" }, !tc.kill)
			first := startProcess(t, fake, db, deliveryConfig(), true)
			_, err := fake.Command(t.Context(), slackfake.SlashCommand{Text: `ask "is this beacon normal?"`, UserID: analyst, ChannelID: socChannel})
			require.NoError(t, err)
			var card slackfake.Message
			select {
			case card = <-held:
			case <-time.After(20 * time.Second):
				t.Fatal("the desk card never reached Slack")
			}
			if tc.kill {
				require.NoError(t, first.kill())
				// The dead process's lease runs out.
				_, err := db.Exec(context.Background(), `UPDATE outbox SET locked_until = now() WHERE locked_until > now()`)
				require.NoError(t, err)
				startProcess(t, fake, db, deliveryConfig(), false)
			}
			require.Eventually(t, openedDelivered(t, db), 20*time.Second, 20*time.Millisecond)

			var cards []string
			for _, m := range fake.Messages(deskChannel) {
				if m.ThreadTS == "" {
					cards = append(cards, m.TS)
				}
			}
			require.Equal(t, []string{card.TS}, cards, "the desk card is posted exactly once")
			var anchor string
			require.NoError(t, db.QueryRow(context.Background(), `SELECT message FROM bot_anchor WHERE target = 'desk'`).Scan(&anchor))
			require.Equal(t, card.TS, anchor, "the card found is the case's desk card")
			require.Len(t, fake.Messages(socChannel), 1, "the receipt, sent before, is not sent again")
			hist := fake.Calls("conversations.history")
			require.Len(t, hist, 1, "only the part whose outcome was unknown is looked for")
			require.Equal(t, deskChannel, hist[0].Form.Get("channel"))
			require.Equal(t, "1", hist[0].Form.Get("include_all_metadata"))
			require.Empty(t, fake.Violations())
		})
	}
}

// TestRetryAfterCountsFromThe429: after a 429 no post reaches Slack's
// channel before its Retry-After has passed since Slack sent the 429, plus
// the bot's margin (measured on the fake's own clock).
func TestRetryAfterCountsFromThe429(t *testing.T) {
	t.Parallel()
	fake := deliveryFake(t)
	startProcess(t, fake, pgtest.New(t), deliveryConfig(), true)
	fake.FailNext("chat.postMessage", 1, slackfake.Failure{Status: 429, RetryAfter: time.Second})
	_, err := fake.Command(t.Context(), slackfake.SlashCommand{Text: `ask "is this beacon normal?"`, UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	var posts []slackfake.Call
	testwait.For(t, 20*time.Second, "the 429 and the post after it", func() bool {
		posts = nil
		for _, c := range fake.Calls("chat.postMessage") {
			if c.Form.Get("channel") == socChannel {
				posts = append(posts, c)
			}
		}
		return len(posts) == 2 && posts[1].Status == 200
	}, fake)
	require.Equal(t, 429, posts[0].Status)
	gap := posts[1].Received.Sub(posts[0].At)
	t.Logf("the retry reached the fake %s after the 429 was sent", gap)
	require.GreaterOrEqual(t, gap, time.Second+bot.RetryMargin, "the retry came %s after the 429", gap)
}

// TestDirectMessageOnceWhenTheAnswerIsLost: Slack stores an assignee's
// direct message but its answer is lost. The retry reads the direct
// conversation's history (im:history, which the app now asks for: without
// it Slack answers missing_scope and the message was posted again) and
// records the message it finds: the assignee gets it once.
func TestDirectMessageOnceWhenTheAnswerIsLost(t *testing.T) {
	t.Parallel()
	const ed = "U0EXPERT2"
	fake := slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{{ID: socChannel, Name: "soc"}, {ID: deskChannel, Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: analyst, Name: "alice"}, {ID: expert, Name: "eve"}, {ID: ed, Name: "ed"}},
		Scopes:   adapter.BotScopes, // what an install grants
	})
	db := pgtest.New(t)
	cfg := deliveryConfig()
	cfg.Experts.Slack = append(cfg.Experts.Slack, ed)
	startProcess(t, fake, db, cfg, true)
	_, err := fake.Command(t.Context(), slackfake.SlashCommand{Text: `ask "is this beacon normal?"`, UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	require.Eventually(t, openedDelivered(t, db), 20*time.Second, 20*time.Millisecond)

	held := fake.HoldAnswer(func(m slackfake.Message) bool { return strings.HasPrefix(m.Channel, "D") }, true)
	_, err = fake.Command(t.Context(), slackfake.SlashCommand{Text: "assign EOD-1 <@" + ed + "|ed>", UserID: expert, ChannelID: deskChannel})
	require.NoError(t, err)
	var dm slackfake.Message
	select {
	case dm = <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the direct message never reached Slack")
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n))
		return n == 0
	}, 20*time.Second, 20*time.Millisecond)
	var dms []string
	for _, m := range fake.Messages(dm.Channel) {
		dms = append(dms, m.TS)
	}
	require.Equal(t, []string{dm.TS}, dms, "the direct message is posted exactly once")
	require.Contains(t, dm.Text+texts(t, dm.Blocks), "assigned you EOD-1")
}
