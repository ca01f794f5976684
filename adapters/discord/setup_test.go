package discord_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

const (
	guildID   = "1000000000000000001"
	channelID = "1000000000000000002"
	deskID    = "1000000000000000003"
	analystID = "1000000000000000010"
)

// handler is a bot.Handler whose answers tests choose, recording what it got.
type handler struct {
	mu       sync.Mutex
	commands []bot.Command
	actions  []bot.Action
	submits  []bot.Submission
	replies  []bot.Reply

	onCommand func(bot.Command) bot.Ack
	onAction  func(bot.Action) bot.Ack
	onSubmit  func(bot.Submission) bot.SubmitAck
	replyCh   chan bot.Reply
	// refuseReplies makes the next HandleReply calls fail, as the bot's do
	// when it cannot store a reply; replyCalls counts every call.
	refuseReplies int
	replyCalls    int
	// refuse, when set, refuses the replies it names the same way.
	refuse func(bot.Reply) bool
	// replyMark, when set, answers a catch-up's ReplyMark (else no thread
	// is a case's); marked records MarkRead.
	replyMark func(parent bot.Ref) (string, bool)
	marked    []string
	// panicReplies makes the next HandleReply calls panic, as a bug would.
	panicReplies int
	// onComplete makes the handler a bot.Completer.
	onComplete func(u bot.User, channel, typed string) []bot.Choice
	// changed signals after every command, action and submission recorded.
	changed testwait.Signal
}

// Subscribe implements testwait.Source.
func (h *handler) Subscribe() (<-chan struct{}, func()) { return h.changed.Subscribe() }

func (h *handler) CompleteCases(_ context.Context, u bot.User, channel, typed string) []bot.Choice {
	h.mu.Lock()
	f := h.onComplete
	h.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(u, channel, typed)
}

func newHandler() *handler { return &handler{replyCh: make(chan bot.Reply, 64)} }

func (h *handler) HandleCommand(_ context.Context, c bot.Command) bot.Ack {
	h.mu.Lock()
	h.commands = append(h.commands, c)
	f := h.onCommand
	h.mu.Unlock()
	h.changed.Notify()
	if f != nil {
		return f(c)
	}
	return bot.Ack{}
}

func (h *handler) HandleAction(_ context.Context, a bot.Action) bot.Ack {
	h.mu.Lock()
	h.actions = append(h.actions, a)
	f := h.onAction
	h.mu.Unlock()
	h.changed.Notify()
	if f != nil {
		return f(a)
	}
	return bot.Ack{}
}

func (h *handler) HandleSubmit(_ context.Context, s bot.Submission) bot.SubmitAck {
	h.mu.Lock()
	h.submits = append(h.submits, s)
	f := h.onSubmit
	h.mu.Unlock()
	h.changed.Notify()
	if f != nil {
		return f(s)
	}
	return bot.SubmitAck{}
}

func (h *handler) ReplyMark(_ context.Context, parent bot.Ref) (string, bool, error) {
	h.mu.Lock()
	f := h.replyMark
	h.mu.Unlock()
	if f == nil {
		return "", false, nil
	}
	after, ok := f(parent)
	return after, ok, nil
}

func (h *handler) MarkRead(_ context.Context, _ bot.Ref, msg string) {
	h.mu.Lock()
	h.marked = append(h.marked, msg)
	h.mu.Unlock()
	h.changed.Notify()
}

func (h *handler) HandleReply(_ context.Context, r bot.Reply) error {
	h.mu.Lock()
	h.replyCalls++
	if h.panicReplies > 0 {
		h.panicReplies--
		h.mu.Unlock()
		panic("reply bug")
	}
	if h.refuseReplies > 0 || h.refuse != nil && h.refuse(r) {
		h.refuseReplies = max(0, h.refuseReplies-1)
		h.mu.Unlock()
		h.changed.Notify()
		return errors.New("reply not stored: the database is unreachable")
	}
	h.replies = append(h.replies, r)
	h.mu.Unlock()
	h.replyCh <- r
	return nil
}

// commandCount is how many commands reached the handler.
func (h *handler) commandCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.commands)
}

func (h *handler) lastCommand(t *testing.T) bot.Command {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(t, h.commands)
	return h.commands[len(h.commands)-1]
}

type fixture struct {
	fake    *discordfake.Server
	adapter *discord.Adapter
	h       *handler
	priv    ed25519.PrivateKey
	cfg     discord.Config
	reg     *prometheus.Registry
}

type option func(*discord.Config)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("DISCORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// setup starts a fake Discord and an adapter pointed at it (not started).
func setup(t testing.TB, opts ...option) fixture {
	t.Helper()
	fake := discordfake.New(t, discordfake.Options{
		Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID}}},
	})
	fake.AddUser(discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice", Nick: "Alice (SOC)"})
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	h := newHandler()
	cfg := discord.Config{
		Token:           secrets.String(fake.Token()),
		AppID:           fake.AppID(),
		PublicKey:       hex.EncodeToString(pub),
		APIURL:          fake.APIURL(),
		Guilds:          []string{guildID},
		LeaderCheck:     100 * time.Millisecond,
		LeaderGrace:     300 * time.Millisecond,
		DeferredTimeout: time.Minute,
	}
	for _, o := range opts {
		o(&cfg)
	}
	reg := prometheus.NewRegistry()
	a, err := discord.New(cfg, testLogger(t), reg, h)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	return fixture{fake: fake, adapter: a, h: h, priv: priv, cfg: cfg, reg: reg}
}

// start starts the adapter and waits for its gateway session.
func (f fixture) start(t testing.TB) {
	t.Helper()
	require.NoError(t, f.adapter.Start(context.Background()))
	require.True(t, f.fake.WaitSessions(1, 10*time.Second), "gateway session")
	// READY and GUILD_CREATE reach the adapter right after IDENTIFY.
	time.Sleep(50 * time.Millisecond)
}

// startHuntingFlow runs the real bot with casework and hunting (hcfg), and
// insight when withInsight, on a fresh database behind the adapter against
// dfake: the incident flows. Everything stops with the test; it returns
// the flow and hunting, which the tests feed alerts, and the database.
func startHuntingFlow(t *testing.T, ctx context.Context, dfake *discordfake.Server, cfg bot.Config, hcfg hunting.Config, withInsight bool) (*flow, *hunting.Service, *pgxpool.Pool) {
	t.Helper()
	db := pgtest.New(t)
	log := testLogger(t)
	hunt, err := hunting.New(db, hcfg, nil, nil)
	require.NoError(t, err)
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)
	b, err := bot.New(cfg, db, bot.NewCaseworkCases(cw), bot.NewHuntingIncidents(hunt), log, prometheus.NewRegistry())
	require.NoError(t, err)
	if withInsight {
		in, err := insight.New(db, insight.Config{}, hunt, cw, nil)
		require.NoError(t, err)
		b.SetInsight(bot.NewInsightService(in))
	}
	da, err := discord.New(discord.Config{Token: secrets.String(dfake.Token()), AppID: dfake.AppID(), APIURL: dfake.APIURL(), Guilds: []string{guildID}},
		log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(da))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, da.Start(ctx))
	t.Cleanup(func() { require.NoError(t, da.Stop()) })
	require.True(t, dfake.WaitSessions(1, 10*time.Second))
	return &flow{t: t, dfake: dfake, bot: b}, hunt, db
}
