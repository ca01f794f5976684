package bot_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Fixture ids.
const (
	slackTeam     = "T0CONTOSO"
	contosoSOC    = "C0CONTOSOSOC"
	contosoSOC2   = "C0CONTOSOIR"
	deskChannel   = "C0EXPERTDESK"
	analyst       = "U0ANALYST1"
	expert1       = "U0EXPERT1"
	expert2       = "U0EXPERT2"
	manager       = "U0MANAGER1"
	admin         = "U0ADMIN1"
	fabGuild      = "1000000000000000001"
	fabSOC        = "1000000000000000002"
	fabAnalyst    = "1000000000000000077"
	discordExpert = "1000000000000000009"
	strangerChan  = "C0RANDOM"
	alertID       = "da637551227677560813_-961444813"
)

func testConfig() Config {
	return Config{
		Orgs: []Org{
			{ID: "contoso", Name: "Contoso", Slack: &SlackPlace{Team: slackTeam, Channels: []string{contosoSOC, contosoSOC2}}},
			{ID: "fabrikam", Name: "Fabrikam", Discord: &DiscordPlace{Guild: fabGuild, Channels: []string{fabSOC}}},
		},
		Desk:     Desk{Slack: &SlackDesk{Team: slackTeam, Channel: deskChannel}},
		Experts:  UserIDs{Slack: []string{expert1, expert2}, Discord: []string{discordExpert}},
		Managers: UserIDs{Slack: []string{manager}},
		Admins:   UserIDs{Slack: []string{admin}},
		Delivery: Delivery{
			Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			Pace: map[Platform]Pace{Slack: {}, Discord: {}},
		},
	}
}

type fixture struct {
	bot     *Bot
	db      *pgxpool.Pool
	cw      *casework.Service
	slack   *bottest.Adapter
	discord *bottest.Adapter
	reg     *prometheus.Registry
	keys    atomic.Int64
	// settled signals after each row the bot's workers handled.
	settled testwait.Signal
}

// waitFor waits up to 10 s until cond holds, checking it each time the
// bot has handled a row or an adapter recorded a call.
func (f *fixture) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, tenSeconds, what, cond, &f.settled, f.slack, f.discord)
}

type option func(*Config)

// setup returns a started bot on a fresh database with recording fake
// adapters for Slack and Discord.
func setup(t testing.TB, opts ...option) *fixture {
	t.Helper()
	db := pgtest.New(t)
	return setupOn(t, db, true, opts...)
}

func setupOn(t testing.TB, db *pgxpool.Pool, start bool, opts ...option) *fixture {
	t.Helper()
	return setupWith(t, db, start, nil, casework.Config{}, opts...)
}

// setupWith is setupOn with hunting wired in (hunt may be nil) and
// casework configured.
func setupWith(t testing.TB, db *pgxpool.Pool, start bool, hunt Incidents, cwCfg casework.Config, opts ...option) *fixture {
	t.Helper()
	cfg := testConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cwCfg.Key == nil {
		key, err := secrets.Generate()
		require.NoError(t, err)
		cwCfg.Key = key
	}
	cw, err := casework.New(db, cwCfg, nil, nil)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	b, err := New(cfg, db, NewCaseworkCases(cw), hunt, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), reg)
	require.NoError(t, err)
	f := &fixture{bot: b, db: db, cw: cw, slack: bottest.New(Slack, slackTeam), discord: bottest.New(Discord, fabGuild), reg: reg}
	f.slack.SetName(analyst, "Ana Lyst")
	f.slack.SetName(expert1, "Eve Expert")
	f.slack.SetName(expert2, "Ed Expert")
	f.discord.SetName(fabAnalyst, "Fab Analyst")
	require.NoError(t, b.Register(f.slack))
	require.NoError(t, b.Register(f.discord))
	b.OnSettled(f.settled.Notify)
	if start {
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, b.Start(ctx))
		t.Cleanup(func() { cancel(); require.NoError(t, b.Stop()) })
	} else {
		t.Cleanup(func() { require.NoError(t, b.Stop()) })
	}
	return f
}

func (f *fixture) user(p Platform, id string) User {
	ws := slackTeam
	if p == Discord {
		ws = fabGuild
	}
	return User{Platform: p, Workspace: ws, ID: id}
}

// command builds a command as an adapter would from "/experts <text>".
func (f *fixture) command(p Platform, userID, channel, text string) (Command, *bottest.Responder) {
	words := Tokenize(text)
	c := Command{User: f.user(p, userID), Channel: channel, Key: fmt.Sprintf("k%d", f.keys.Add(1)), Received: time.Now()}
	if len(words) > 0 {
		c.Name = words[0]
		c.Args = words[1:]
		c.Text = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), words[0]))
	}
	r := bottest.NewResponder()
	c.Respond = r
	return c, r
}

// run sends a command and returns the immediate ack and the first answer
// (the ack's own message when it carries one).
func (f *fixture) run(t testing.TB, p Platform, userID, channel, text string) (Ack, Message) {
	t.Helper()
	c, r := f.command(p, userID, channel, text)
	ack := f.bot.HandleCommand(context.Background(), c)
	if ack.Message != nil || ack.Form != nil {
		var m Message
		if ack.Message != nil {
			m = *ack.Message
		}
		return ack, m
	}
	got, ok := r.Wait(10 * time.Second)
	require.True(t, ok, "no answer to %q", text)
	return ack, got.Message
}

func (f *fixture) press(t testing.TB, p Platform, userID string, act ActionID, value string, on Ref) (Ack, *bottest.Responder) {
	t.Helper()
	r := bottest.NewResponder()
	a := Action{User: f.user(p, userID), Action: act, Value: value, Message: on, Key: fmt.Sprintf("a%d", f.keys.Add(1)), Respond: r}
	return f.bot.HandleAction(context.Background(), a), r
}

func (f *fixture) submit(t testing.TB, p Platform, userID string, form Form, values map[string]string) (SubmitAck, *bottest.Responder) {
	t.Helper()
	r := bottest.NewResponder()
	s := Submission{User: f.user(p, userID), FormID: form.ID, State: form.State, Values: values, Key: fmt.Sprintf("s%d", f.keys.Add(1)), Respond: r}
	return f.bot.HandleSubmit(context.Background(), s), r
}

// reply posts a human reply in the thread of parent.
func (f *fixture) reply(p Platform, userID string, parent Ref, text string) Ref {
	n := f.keys.Add(1)
	msg := Ref{Platform: p, Workspace: parent.Workspace, Channel: parent.Channel, Message: fmt.Sprintf("r%d", n)}
	f.bot.HandleReply(context.Background(), Reply{Parent: parent, Message: msg, Author: f.user(p, userID), Text: text, Key: fmt.Sprintf("r%d", n)})
	return msg
}

// posted waits for a post into channel (optionally in the thread of
// thread) whose plain text contains want, and returns it.
func posted(t testing.TB, a *bottest.Adapter, channel string, thread *Ref, want string) bottest.Call {
	t.Helper()
	var found bottest.Call
	ok := a.WaitFor(10*time.Second, func(calls []bottest.Call) bool {
		for _, c := range calls {
			if c.Op != bottest.OpPost || c.Dest.Channel != channel {
				continue
			}
			if (thread == nil) != (c.Dest.Thread == nil) || (thread != nil && c.Dest.Thread.Message != thread.Message) {
				continue
			}
			if strings.Contains(bottest.Plain(c.Message), want) {
				found = c
				return true
			}
		}
		return false
	})
	require.True(t, ok, "no post containing %q in %s (thread %v); calls: %s", want, channel, thread, dump(a.Calls()))
	return found
}

func dump(calls []bottest.Call) string {
	var s strings.Builder
	for _, c := range calls {
		th := ""
		if c.Dest.Thread != nil {
			th = " thread " + c.Dest.Thread.Message
		}
		fmt.Fprintf(&s, "\n  %s %s%s %s: %q", c.Op, c.Dest.Channel, th, c.Ref.Message, CutRunes(strings.ReplaceAll(bottest.Plain(c.Message), "\n", " | "), 160))
	}
	return s.String()
}

func plain(m Message) string { return bottest.Plain(m) }

// caseStatus reads a case's status straight from casework.
func (f *fixture) caseStatus(t testing.TB, ref string) casework.Status {
	t.Helper()
	c, err := f.cw.Get(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	return c.Status
}

// eventually polls cond for up to 10 s: only for what nothing signals (a
// gauge refreshed on a timer, the work of another fixture's bot); otherwise
// use fixture.waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Fail(t, "timed out waiting: "+what)
}

// openCase opens a case from the Contoso SOC channel and waits for both cards.
func (f *fixture) openCase(t testing.TB, text string) (ref string, receipt, desk bottest.Call) {
	t.Helper()
	_, m := f.run(t, Slack, analyst, contosoSOC, text)
	got := plain(m)
	require.Contains(t, got, "Opened EOD-")
	i := strings.Index(got, "EOD-")
	ref = strings.Fields(got[i:])[0]
	receipt = posted(t, f.slack, contosoSOC, nil, ref+" ·")
	desk = posted(t, f.slack, deskChannel, nil, ref+" · Contoso")
	f.anchored(t, ref)
	return ref, receipt, desk
}

// anchored waits until both anchors of a case are recorded (they are
// written just after the platform answers the post, which the fake records
// first): a reply in a thread is only recognised once its anchor is.
func (f *fixture) anchored(t testing.TB, ref string) {
	t.Helper()
	f.waitFor(t, "anchors of "+ref+" recorded", func() bool {
		_, _, ok, err := f.bot.CaseAnchors(context.Background(), ref)
		return err == nil && ok
	})
}

const tenSeconds = 10 * time.Second

// testWriter sends the bot's warnings and errors to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
