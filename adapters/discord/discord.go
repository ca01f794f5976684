// Package discord connects threatdesk to Discord: the gateway (one replica
// at a time, elected through a PostgreSQL advisory lock) and HTTP
// interactions, the /experts application command, buttons, modals and
// threads, and the rendering of the bot's messages into embeds and
// components within Discord's limits. It implements bot.Adapter.
package discord

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Config configures the adapter. Its first four fields are the DISCORD_*
// environment variables (README.md, "Environment"), which internal/config
// reads into it directly (env tags) and checks with Validate, with every
// other setting. The token never prints (secrets.String).
//
// Discord is enabled by Token; AppID is then required.
type Config struct {
	// Token is the bot token (DISCORD_BOT_TOKEN), with or without "Bot ".
	// Required by New.
	Token secrets.String `env:"DISCORD_BOT_TOKEN"`
	// AppID is the application id (DISCORD_APP_ID), a Discord id.
	AppID string `env:"DISCORD_APP_ID"`
	// PublicKey (DISCORD_PUBLIC_KEY, 64 hex characters) enables HTTP
	// interactions.
	PublicKey string `env:"DISCORD_PUBLIC_KEY"`
	// APIURL is the REST base (DISCORD_API_URL): an http(s) URL ending in a
	// slash; default DefaultAPIURL. Gateway discovery (GET
	// {APIURL}gateway/bot) and so the websocket follow it.
	APIURL string `env:"DISCORD_API_URL"`
	// Guilds get /experts registered by bulk overwrite at start (immediate).
	// Empty: /experts is registered globally. They are the guilds of the
	// bot's config (bot.Config.DiscordGuilds), checked there.
	Guilds []string
	// Pool elects the one replica that holds the gateway session (a session
	// advisory lock on a dedicated connection). Nil: this process always
	// holds it; only for a single replica.
	Pool *pgxpool.Pool
	// DisableGateway runs HTTP interactions only: no gateway session, and so
	// no thread replies.
	DisableGateway bool
	// LeaderCheck is how often a follower tries the lock and the leader
	// checks its lock connection. Default 1s.
	LeaderCheck time.Duration
	// LeaderGrace is how long a new leader waits before connecting, so that
	// a leader cut off from the database has dropped its session. Default
	// 2*LeaderCheck+1s.
	LeaderGrace time.Duration
	// RequestTimeout bounds each REST call. Default 10s.
	RequestTimeout time.Duration
	// RefusedWait is how long the gateway waits after Discord refused the
	// session for a reason only a settings change fixes (a bad token, the
	// Message Content intent not switched on). Default 15m.
	RefusedWait time.Duration
	// AckTimeout is how long an interaction waits for the handler's Ack
	// before deferring (Discord allows 3s in all). Default 2s.
	AckTimeout time.Duration
	// DeferredTimeout: a deferred answer the bot has not filled by then is
	// replaced by a short "done" note, so no "thinking..." is left. Default 30s.
	DeferredTimeout time.Duration
	// SignatureMaxAge rejects signed interactions whose timestamp is further
	// from now (replays). Default 5m.
	SignatureMaxAge time.Duration
	// Replays refuses a signed HTTP interaction seen before (a replay within
	// SignatureMaxAge). Default: in memory, for this process only; pass the
	// bot, whose inbound table keeps them for every replica, in production.
	Replays ReplayCache
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Enabled reports whether Discord is configured (DISCORD_BOT_TOKEN is set).
func (c Config) Enabled() bool { return c.Token != "" }

// WithDefaults returns c with the token trimmed (of spaces and "Bot ") and
// every unset setting at its default (Replays is New's).
func (c Config) WithDefaults() Config {
	c.Token = secrets.String(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c.Token.Value()), "Bot ")))
	c.APIURL = cmp.Or(strings.TrimSpace(c.APIURL), DefaultAPIURL)
	c.LeaderCheck = cmp.Or(c.LeaderCheck, time.Second)
	c.RefusedWait = cmp.Or(c.RefusedWait, 15*time.Minute)
	c.LeaderGrace = cmp.Or(c.LeaderGrace, 2*c.LeaderCheck+time.Second)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, 10*time.Second)
	c.AckTimeout = cmp.Or(c.AckTimeout, 2*time.Second)
	c.DeferredTimeout = cmp.Or(c.DeferredTimeout, 30*time.Second)
	c.SignatureMaxAge = cmp.Or(c.SignatureMaxAge, 5*time.Minute)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

var publicKeyPattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Validate reports every wrong setting of c (after WithDefaults), each
// naming the environment variable and how to fix it, joined into one error;
// nil when c is usable or Discord is simply not configured. It never
// repeats the token.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.ContainsAny(c.Token.Value(), " \t\r\n") {
		bad("DISCORD_BOT_TOKEN contains whitespace: paste the token alone")
	}
	if c.Token != "" && c.AppID == "" {
		bad("DISCORD_APP_ID must be set with DISCORD_BOT_TOKEN (the Application ID from the Discord developer portal)")
	}
	if c.AppID != "" && !bot.IsDiscordID(c.AppID) {
		bad("DISCORD_APP_ID %q must be a numeric Discord id (a snowflake, 15 to 21 digits)", c.AppID)
	}
	if c.PublicKey != "" {
		if !publicKeyPattern.MatchString(c.PublicKey) {
			bad("DISCORD_PUBLIC_KEY must be the 64 hex characters shown as Public Key on the app's General Information page")
		}
		if c.Token == "" {
			bad("DISCORD_PUBLIC_KEY is set but DISCORD_BOT_TOKEN is not: set the bot token too to enable Discord")
		}
	}
	u, err := url.Parse(c.APIURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("DISCORD_API_URL %q must be an http(s) URL", c.APIURL)
	case !strings.HasSuffix(u.Path, "/"):
		bad("DISCORD_API_URL %q must end with a slash, e.g. %s/", c.APIURL, c.APIURL)
	}
	if c.LeaderCheck < 0 || c.LeaderGrace < 0 || c.RequestTimeout < 0 || c.AckTimeout < 0 || c.AckTimeout >= 3*time.Second {
		bad("discord: durations must be positive and AckTimeout under Discord's 3s")
	}
	return errors.Join(errs...)
}

// Adapter is the Discord side of threatdesk.
type Adapter struct {
	cfg       Config
	log       *slog.Logger
	h         bot.Handler
	m         *metrics
	base      *url.URL
	client    *http.Client
	files     *http.Client // attachments of thread replies (files.go)
	rest      *discordgo.Session
	pub       ed25519.PublicKey
	lockKey   int64
	tokenPath *regexp.Regexp
	leading   atomic.Bool
	// globalUntil (Unix nanoseconds): Discord's global rate limit holds
	// every route until then (rest.go).
	globalUntil atomic.Int64

	// qmu guards queues: each channel's message events waiting their
	// turn (inOrder), while a goroutine drains them.
	qmu    sync.Mutex
	queues map[string]*[]func()

	mu       sync.Mutex
	selfID   string
	dms      map[string]string // user id -> DM channel id
	names    map[string]cachedName
	channels map[string]channelInfo
	gw       *discordgo.Session
	// pending are gateway thread replies not yet handed to the bot
	// (gateway.go, retryReplies); replyWake wakes its loop.
	pending   []*pendingReply
	replyWake chan struct{}
	// retrying are the pending replies taken out to be handed over again,
	// until each is done (or back in pending).
	retrying []*pendingReply
	// inflight are new thread messages being handed over for the first
	// time: they hold newer messages' thread marks. readThrough are the
	// threads whose messages this gateway session has all seen (a catch-up
	// read them through, or the bot started them); a reply in any other
	// thread holds its mark (catchup.go). gen counts gateway sessions.
	inflight    []*pendingReply
	readThrough map[string]bool
	paused      map[string]bool // readThrough while the gateway is disconnected
	gen         int
	// catchUpMu runs one guild's thread catch-up at a time (catchup.go).
	catchUpMu sync.Mutex

	// life runs the gateway, the registration and the pending replies (its
	// loops) and the handling of interactions (its work).
	life *lifecycle.Group
}

var (
	_ bot.Adapter  = (*Adapter)(nil)
	_ bot.Presence = (*Adapter)(nil)
)

// Intents the gateway session asks for. MessageContent is privileged: turn
// it on in the Developer Portal, or thread replies arrive without text.
const Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent

// New validates cfg and returns an adapter; nothing is connected until
// Start. HTTP interactions work without Start.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, handler bot.Handler) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if !cfg.Enabled() {
		return nil, errors.New("discord: DISCORD_BOT_TOKEN is empty: copy the token from Developer Portal > your app > Bot")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("discord config: %w", err)
	}
	if cfg.Replays == nil {
		cfg.Replays = &memoryReplays{ttl: 2 * cfg.SignatureMaxAge, m: map[string]time.Time{}}
	}
	if handler == nil {
		return nil, errors.New("discord: a bot.Handler is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.APIURL)
	log = log.With("adapter", "discord")
	life, err := lifecycle.New("discord", lifecycle.Options{Log: log, Registerer: reg, Grace: stopGrace})
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	a := &Adapter{
		cfg:       cfg,
		life:      life,
		log:       log,
		h:         handler,
		m:         m,
		base:      base,
		lockKey:   lockKey(cfg.AppID),
		tokenPath: newTokenPath(),
		dms:       map[string]string{},
		names:     map[string]cachedName{},
		channels:  map[string]channelInfo{},
		replyWake: make(chan struct{}, 1),
	}
	a.client = newHTTPClient(base, cfg.RequestTimeout+5*time.Second, func(wait time.Duration) {
		a.globalUntil.Store(time.Now().Add(wait).UnixNano())
	})
	if cfg.PublicKey != "" {
		k, _ := hex.DecodeString(cfg.PublicKey)
		a.pub = ed25519.PublicKey(k)
	}
	a.rest = a.newSession()
	a.files = a.newFilesClient()
	return a, nil
}

// newTokenPath matches the secret part of interaction webhook and callback paths.
func newTokenPath() *regexp.Regexp {
	return regexp.MustCompile(`(/(?:webhooks|interactions)/[0-9]+/)[^\s"'?/]+`)
}

// newSession returns a discordgo session wired to the configured base, with
// discordgo's own 429 sleeping off: a rate limit surfaces as
// bot.RateLimited with its retry_after, and the outbox waits, once.
func (a *Adapter) newSession() *discordgo.Session {
	s, _ := discordgo.New("Bot " + a.cfg.Token.Value())
	s.Client = a.client
	s.Dialer = newDialer()
	s.ShouldRetryOnRateLimit = false
	s.MaxRestRetries = 0
	s.StateEnabled = false
	s.Identify.Intents = Intents
	s.LogLevel = -1 // discordgo logs through the standard logger; we log ourselves
	return s
}

// Platform implements bot.Adapter.
func (a *Adapter) Platform() bot.Platform { return bot.Discord }

// Start registers /experts, then holds the gateway session whenever this
// replica is the leader. It returns once started; Stop ends it. A second
// Start is an error (lifecycle.ErrStarted).
func (a *Adapter) Start(ctx context.Context) error {
	return a.life.Start(ctx, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		me, err := a.me(cctx)
		cancel()
		if err != nil {
			if k, _ := bot.Classify(err); k == bot.Permanent {
				return fmt.Errorf("discord: start: %w", err)
			}
			a.log.Warn("could not read the bot user; will learn it from the gateway", "err", err)
		} else {
			a.setSelf(me)
		}
		a.life.Go("register commands", func(ctx context.Context) error {
			a.registerLoop(ctx)
			return nil
		})
		if !a.cfg.DisableGateway {
			a.life.Go("pending replies", func(ctx context.Context) error {
				a.retryReplies(ctx)
				return nil
			})
			a.life.Go("gateway", func(ctx context.Context) error {
				if a.cfg.Pool == nil {
					a.holdGateway(ctx)
				} else {
					a.leaderLoop(ctx)
				}
				return nil
			})
		}
		return nil
	})
}

// stopGrace is how long Stop lets interactions in flight finish before it
// cancels them.
const stopGrace = 10 * time.Second

// Stop closes the gateway session, gives up leadership, lets interactions
// in flight finish (up to stopGrace) and waits for all background work to
// end. It is safe before Start and more than once.
func (a *Adapter) Stop() error { return a.life.Stop() }

// msgBroke is the answer when handing an event to the bot failed with a
// panic (logged with its stack, counted in threatdesk_panics_total).
const msgBroke = "Something went wrong; please try again."

// msgStopping is the answer to an interaction that arrives while the
// adapter stops.
const msgStopping = "threatdesk is restarting, so nothing was done. Please try again in a minute."

// toBot is the adapter's panic boundary: every inbound event is handed to
// the bot through it, and a panic there becomes an error result.
func (a *Adapter) toBot(what string, f func() error) error {
	return a.life.Guard(what, f)
}

// Leader reports whether this replica holds the gateway leadership (for
// diagnostics and tests; HTTP interactions work on every replica).
func (a *Adapter) Leader() bool { return a.leading.Load() }

func (a *Adapter) setSelf(id string) {
	a.mu.Lock()
	a.selfID = id
	a.mu.Unlock()
}

func (a *Adapter) self() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.selfID
}
