package slack_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// samples holds Slack's published payloads (see testdata/README.md).
const samples = "testdata/"

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(samples + name)
	require.NoError(t, err, "sample %s", name)
	return b
}

// recorder is a bot.Handler that records what it gets and answers with
// what the test programs.
type recorder struct {
	mu       sync.Mutex
	commands []bot.Command
	actions  []bot.Action
	subs     []bot.Submission
	replies  []bot.Reply
	onCmd    func(bot.Command) bot.Ack
	onAction func(bot.Action) bot.Ack
	onSubmit func(bot.Submission) bot.SubmitAck
	changed  testwait.Signal // after every event recorded
	// panicReplies makes the next HandleReply calls panic, as a bug would.
	panicReplies int
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) poke() { r.changed.Notify() }

// Subscribe implements testwait.Source: it signals after every event the
// recorder got.
func (r *recorder) Subscribe() (<-chan struct{}, func()) { return r.changed.Subscribe() }

func (r *recorder) HandleCommand(_ context.Context, c bot.Command) bot.Ack {
	r.mu.Lock()
	r.commands = append(r.commands, c)
	f := r.onCmd
	r.mu.Unlock()
	r.poke()
	if f != nil {
		return f(c)
	}
	return bot.Ack{}
}

func (r *recorder) HandleAction(_ context.Context, a bot.Action) bot.Ack {
	r.mu.Lock()
	r.actions = append(r.actions, a)
	f := r.onAction
	r.mu.Unlock()
	r.poke()
	if f != nil {
		return f(a)
	}
	return bot.Ack{}
}

func (r *recorder) HandleSubmit(_ context.Context, s bot.Submission) bot.SubmitAck {
	r.mu.Lock()
	r.subs = append(r.subs, s)
	f := r.onSubmit
	r.mu.Unlock()
	r.poke()
	if f != nil {
		return f(s)
	}
	return bot.SubmitAck{}
}

func (r *recorder) HandleReply(_ context.Context, rp bot.Reply) error {
	r.mu.Lock()
	if r.panicReplies > 0 {
		r.panicReplies--
		r.mu.Unlock()
		panic("reply bug")
	}
	r.replies = append(r.replies, rp)
	r.mu.Unlock()
	r.poke()
	return nil
}

func (r *recorder) Commands() []bot.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.Command(nil), r.commands...)
}

func (r *recorder) Actions() []bot.Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.Action(nil), r.actions...)
}

func (r *recorder) Subs() []bot.Submission {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.Submission(nil), r.subs...)
}

func (r *recorder) Replies() []bot.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.Reply(nil), r.replies...)
}

// Distinct is the replies a handler that stores each under its key (as the
// bot does) would work on: the first delivery of each key.
func (r *recorder) Distinct() []bot.Reply {
	var out []bot.Reply
	seen := map[string]bool{}
	for _, rp := range r.Replies() {
		if !seen[rp.Key] {
			seen[rp.Key] = true
			out = append(out, rp)
		}
	}
	return out
}

// Channels and people of the fake workspace.
const (
	socChannel  = "C0SOC"
	deskChannel = "C0DESK"
	privChannel = "G0PRIVATE"
	outChannel  = "C0OUTSIDE" // the app is not a member
	analyst     = "U0ANALYST"
	expert      = "U0EXPERT"
)

type fixture struct {
	fake    *slackfake.Server
	adapter *adapter.Adapter
	rec     *recorder
	ctx     context.Context
	reg     *prometheus.Registry
}

type setupOpts struct {
	socket bool // Socket Mode (Start); otherwise HTTP mode only
	fake   slackfake.Options
	cfg    func(*adapter.Config)
}

// setup starts a fake Slack and an adapter talking to it over real sockets.
func setup(t testing.TB, o setupOpts) fixture {
	t.Helper()
	fo := o.fake
	fo.Channels = append(fo.Channels,
		slackfake.Channel{ID: socChannel, Name: "soc"},
		slackfake.Channel{ID: deskChannel, Name: "expert-desk"},
		slackfake.Channel{ID: privChannel, Name: "ir-private", Private: true},
		slackfake.Channel{ID: outChannel, Name: "outside", NotMember: true},
	)
	fo.Users = append(fo.Users,
		slackfake.User{ID: analyst, Name: "alice", RealName: "Alice Analyst", DisplayName: "alice"},
		slackfake.User{ID: expert, Name: "eve", RealName: "Eve Expert"},
	)
	fake := slackfake.New(t, fo)
	opts := fake.Options()
	cfg := adapter.Config{
		BotToken:      secrets.String(opts.BotToken),
		SigningSecret: secrets.String(opts.SigningSecret),
		APIURL:        fake.APIURL(),
		ReconnectMin:  50 * time.Millisecond,
		ReconnectMax:  200 * time.Millisecond,
	}
	if o.socket {
		cfg.AppToken = secrets.String(opts.AppToken)
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := adapter.New(cfg, log, reg, rec)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	if o.socket {
		require.NoError(t, a.Start(ctx))
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		require.NoError(t, fake.WaitConnected(wctx))
	}
	return fixture{fake: fake, adapter: a, rec: rec, ctx: ctx, reg: reg}
}

// testWriter sends log lines to the test log until the test ends.
type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func (w *testWriter) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// eventually polls cond until it holds or 5 seconds pass: only for state
// nothing signals (the database); for what a fake or the recorder records,
// use waitFor.
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 5*time.Millisecond, msg)
}

// waitFor waits up to 5 seconds until cond holds, checking it whenever one
// of sources (the fake, the recorder) records something.
func waitFor(t testing.TB, what string, cond func() bool, sources ...testwait.Source) {
	t.Helper()
	testwait.For(t, 5*time.Second, what, cond, sources...)
}

// texts returns every "text" string in a JSON document (blocks, a payload), joined by newlines.
func texts(t testing.TB, raw []byte) string {
	t.Helper()
	if len(raw) == 0 {
		return ""
	}
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "text" {
					out = append(out, s)
				} else {
					walk(e)
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return strings.Join(out, "\n")
}

// startRealBot runs the real bot (on casework and a fresh database) behind
// the adapter in Socket Mode against fake, for end-to-end tests; everything
// stops with the test. ctx bounds the whole test.
func startRealBot(t *testing.T, ctx context.Context, fake *slackfake.Server, cfg bot.Config) *pgxpool.Pool {
	t.Helper()
	db := pgtest.New(t)
	startRealBotOn(t, ctx, fake, cfg, db)
	return db
}

// realBot is the real bot and adapter of one process, as startRealBotOn
// started them.
type realBot struct {
	bot     *bot.Bot
	adapter *adapter.Adapter
}

// stop stops the process: adapter first, then the bot, as the service does.
func (r realBot) stop(t testing.TB) {
	t.Helper()
	require.NoError(t, r.adapter.Stop())
	require.NoError(t, r.bot.Stop())
}

// startRealBotOn is startRealBot on db (a database another "process" may
// share). The adapter keeps its replay cache in the bot's inbound table, as
// in production.
func startRealBotOn(t *testing.T, ctx context.Context, fake *slackfake.Server, cfg bot.Config, db *pgxpool.Pool) realBot {
	t.Helper()
	return startBot(t, ctx, fake, cfg, db, nil, false)
}

// startHuntingBot is startRealBot with hunting (hcfg) behind the bot, and
// insight too when withInsight: the incident flows. It returns the
// database and hunting, which the tests feed alerts.
func startHuntingBot(t *testing.T, ctx context.Context, fake *slackfake.Server, cfg bot.Config, hcfg hunting.Config, withInsight bool) (*pgxpool.Pool, *hunting.Service) {
	t.Helper()
	db := pgtest.New(t)
	hunt, err := hunting.New(db, hcfg, nil, nil)
	require.NoError(t, err)
	startBot(t, ctx, fake, cfg, db, hunt, withInsight)
	return db, hunt
}

// startBot starts the bot on casework (and hunting and insight, when hunt
// is set) and the adapter against fake; everything stops with the test.
func startBot(t *testing.T, ctx context.Context, fake *slackfake.Server, cfg bot.Config, db *pgxpool.Pool, hunt *hunting.Service, withInsight bool) realBot {
	t.Helper()
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)
	var incidents bot.Incidents
	if hunt != nil {
		incidents = bot.NewHuntingIncidents(hunt)
	}
	b, err := bot.New(cfg, db, bot.NewCaseworkCases(cw), incidents, log, prometheus.NewRegistry())
	require.NoError(t, err)
	if withInsight {
		in, err := insight.New(db, insight.Config{}, hunt, cw, nil)
		require.NoError(t, err)
		b.SetInsight(bot.NewInsightService(in))
	}
	require.NoError(t, b.UseSamples(bot.NewCaseworkSamples(cw), sampleLinks{}))
	opts := fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), AppToken: secrets.String(opts.AppToken), SigningSecret: secrets.String(opts.SigningSecret),
		APIURL: fake.APIURL(), Replays: b}, log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(a))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, fake.WaitConnected(ctx))
	return realBot{bot: b, adapter: a}
}
