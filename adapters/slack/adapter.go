// Package slack connects threatdesk to Slack: it implements bot.Adapter over
// the Web API (Block Kit messages, modals, threads, ephemeral answers), and
// turns what Slack sends, over Socket Mode or signed HTTP requests, into calls
// on a bot.Handler, acknowledged within Slack's 3 seconds.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// DefaultAPIURL is Slack's Web API base.
const DefaultAPIURL = "https://slack.com/api/"

// Config configures the adapter. Its first four fields are the SLACK_*
// environment variables (README.md, "Environment"), which internal/config
// reads into it directly (env tags) and checks with Validate, with every
// other setting. The tokens never print (secrets.String).
//
// Slack is enabled by BotToken; AppToken turns on Socket Mode and
// SigningSecret the HTTP endpoints (either or both).
type Config struct {
	// BotToken is the bot user OAuth token (xoxb-...), SLACK_BOT_TOKEN.
	// Required by New.
	BotToken secrets.String `env:"SLACK_BOT_TOKEN"`
	// AppToken is the app-level token (xapp-...) with connections:write,
	// SLACK_APP_TOKEN. When set, Start connects over Socket Mode.
	AppToken secrets.String `env:"SLACK_APP_TOKEN"`
	// SigningSecret verifies HTTP requests from Slack, SLACK_SIGNING_SECRET.
	// When set, Handler serves /slack/commands, /slack/interactions and /slack/events.
	SigningSecret secrets.String `env:"SLACK_SIGNING_SECRET"`
	// APIURL is the Web API base, SLACK_API_URL: an http(s) URL ending in a
	// slash; default DefaultAPIURL. Socket Mode opens its connection here too.
	APIURL string `env:"SLACK_API_URL"`
	// ClientID and ClientSecret (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET) turn
	// on Add to Slack for customer workspaces (oauth.go): install links,
	// GET /slack/install and GET /slack/oauth/callback. Both or neither.
	ClientID     string         `env:"SLACK_CLIENT_ID"`
	ClientSecret secrets.String `env:"SLACK_CLIENT_SECRET"`
	// Pool and Key keep the installed workspaces' tokens (installs.go),
	// sealed under a subkey of Key; required with ClientID. Without them
	// every call uses BotToken, as a single-workspace install always has.
	Pool *pgxpool.Pool `env:"-"`
	Key  *secrets.Key  `env:"-"`
	// PublicURL is THREATDESK_PUBLIC_URL's base (no trailing slash): install
	// links and the OAuth redirect URI (PublicURL + /slack/oauth/callback)
	// are on it. PublicLocal says it is only the HTTP address (the links
	// work on this machine only).
	PublicURL   string `env:"-"`
	PublicLocal bool   `env:"-"`
	// Orgs is where the running config places an org (the bot): an
	// install for an org whose config names its team is accepted in that
	// team only. Required with ClientID.
	Orgs OrgDirectory `env:"-"`
	// InstallTTL is how long an install link works (default 1h).
	InstallTTL time.Duration `env:"-"`
	// Replays refuses a replayed signed HTTP request. Default: in memory
	// (does not survive a restart or span replicas; pass the bot, whose
	// inbound table keeps them, in production). Redeliveries are not the
	// adapter's business: the handler stores each event under its delivery
	// key and does its work once.
	Replays ReplayCache
	// UserCacheTTL is how long a display name from users.info is kept; default 10m.
	UserCacheTTL time.Duration
	// CallTimeout bounds each Web API call; default 10s.
	CallTimeout time.Duration
	// MaxBodyBytes caps an HTTP request body from Slack; default 1 MiB.
	MaxBodyBytes int64
	// AckTimeout is how long a handler may take before the adapter
	// acknowledges without its answer (sent later through the response URL);
	// default 2.5s, inside Slack's 3s.
	AckTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between Socket Mode
	// sessions that end in an error; defaults 1s and 2m.
	ReconnectMin, ReconnectMax time.Duration
	// HTTPClient makes Web API calls; default a client with CallTimeout.
	HTTPClient *http.Client
	// HistoryInterval is the least time between two reads of
	// conversations.history, and of conversations.replies, in one
	// workspace, whose pages then hold 15 messages (history.go): Slack's
	// limit for an app distributed outside the Slack Marketplace. Default
	// 61s with Add to Slack (ClientID), which distributes the app; none
	// without (an app of one workspace reads at Tier 3). Negative: none.
	HistoryInterval time.Duration
}

// Enabled reports whether Slack is configured (SLACK_BOT_TOKEN is set).
func (c Config) Enabled() bool { return c.BotToken != "" }

// WithDefaults returns c with every unset setting at its default (Replays
// and HTTPClient are New's).
func (c Config) WithDefaults() Config {
	c.APIURL = cmp.Or(c.APIURL, DefaultAPIURL)
	if c.UserCacheTTL <= 0 {
		c.UserCacheTTL = 10 * time.Minute
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 2500 * time.Millisecond
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = time.Second
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 2 * time.Minute
	}
	if c.InstallTTL <= 0 {
		c.InstallTTL = time.Hour
	}
	if c.HistoryInterval == 0 && c.ClientID != "" {
		c.HistoryInterval = 61 * time.Second // one a minute, and a second's margin
	}
	return c
}

// historyPageSize is how many messages a history read asks for.
func (c Config) historyPageSize() int {
	if c.HistoryInterval > 0 {
		return distributedPage
	}
	return findPageSize
}

// Validate reports every wrong setting of c (after WithDefaults), each
// naming the environment variable and how to fix it, joined into one error;
// nil when c is usable or Slack is simply not configured. It never repeats
// a token.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if t := c.BotToken.Value(); t != "" && !strings.HasPrefix(t, "xoxb-") {
		bad("SLACK_BOT_TOKEN must start with xoxb- (the Bot User OAuth Token from the app's OAuth & Permissions page), not a user or app token")
	}
	if t := c.AppToken.Value(); t != "" {
		if !strings.HasPrefix(t, "xapp-") {
			bad("SLACK_APP_TOKEN must start with xapp- (an app-level token with the connections:write scope, from Basic Information)")
		}
		if c.BotToken == "" {
			bad("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode needs both")
		}
	}
	if c.SigningSecret != "" && c.BotToken == "" {
		bad("SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not: set the bot token too to enable Slack")
	}
	if c.BotToken != "" && c.AppToken == "" && c.SigningSecret == "" {
		bad("SLACK_BOT_TOKEN is set but Slack events cannot arrive: set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		bad("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together (Basic Information, App Credentials): set both to enable Add to Slack, or neither")
	}
	if c.ClientID != "" && c.BotToken == "" {
		bad("SLACK_CLIENT_ID is set but SLACK_BOT_TOKEN is not: the provider's own workspace (the desk's) keeps SLACK_BOT_TOKEN; set it too")
	}
	u, err := url.Parse(c.APIURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("SLACK_API_URL %q must be an http(s) URL", c.APIURL)
	case !strings.HasSuffix(u.Path, "/"):
		bad("SLACK_API_URL %q must end with a slash, e.g. %s/", c.APIURL, c.APIURL)
	}
	return errors.Join(errs...)
}

// Adapter is threatdesk's Slack adapter.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	handler bot.Handler
	api     *slack.Client
	// files downloads files posted in case threads (files.go).
	files   *http.Client
	metrics *metrics
	users   *ttlCache[string]
	// triggers remembers where a trigger_id came from (its channel, for
	// the modal it may open, and its workspace, whose token opens it).
	triggers *ttlCache[triggerPlace]

	idMu      sync.Mutex
	teamID    string
	botUserID string

	// installs are the customer workspaces' tokens and clients the cache
	// of their clients (installs.go); nil without Pool and Key.
	installs *Installations
	clients  workspaces

	// caughtUp is set once the case threads are read back after start
	// (catchup.go); until then, and in the threads that could not be read
	// (unread, by "channel/ts"), thread replies hold their threads' marks.
	caughtUp atomic.Bool
	unreadMu sync.Mutex
	unread   map[string]bool

	// shared keeps whether channels are shared by Slack Connect
	// (sharedChannel, for the workspace of who presses a button).
	sharedMu sync.Mutex
	shared   map[string]sharedAt

	// life runs Socket Mode (its loop, cancelled first by Stop) and the
	// work on inbound events (its work, given stopGrace to finish).
	life *lifecycle.Group

	// history paces history reads (history.go); findFrom is where a
	// lookup told to come back goes on (part key → cursor), kept for an
	// hour (a row retried elsewhere, or given up, leaves its entry).
	history  *historyGate
	findFrom *ttlCache[string]
}

var (
	_ bot.Adapter  = (*Adapter)(nil)
	_ bot.Presence = (*Adapter)(nil)
)

// New validates cfg and builds the adapter. It makes no network call: Start
// checks the token and connects.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, handler bot.Handler) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if !cfg.Enabled() {
		return nil, errors.New("slack adapter config: SLACK_BOT_TOKEN is empty: set the bot user OAuth token (xoxb-...) from the app's OAuth & Permissions page")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slack adapter config: %w", err)
	}
	if cfg.Replays == nil {
		cfg.Replays = NewMemoryReplayCache(2 * signatureMaxAge)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.CallTimeout}
	}
	if handler == nil {
		return nil, errors.New("slack adapter: handler is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	opts := []slack.Option{slack.OptionAPIURL(cfg.APIURL), slack.OptionHTTPClient(cfg.HTTPClient)}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken.Value()))
	}
	log = log.With("adapter", "slack")
	life, err := lifecycle.New("slack", lifecycle.Options{Log: log, Registerer: reg, Grace: stopGrace})
	if err != nil {
		return nil, fmt.Errorf("slack adapter: %w", err)
	}
	a := &Adapter{
		cfg:      cfg,
		log:      log,
		handler:  handler,
		api:      slack.New(cfg.BotToken.Value(), opts...),
		metrics:  m,
		users:    newTTLCache[string](cfg.UserCacheTTL, 10000),
		triggers: newTTLCache[triggerPlace](10*time.Second, 10000),
		life:     life,
		history:  newHistoryGate(cfg.HistoryInterval),
		findFrom: newTTLCache[string](time.Hour, 10000),
	}
	a.files = a.newFilesClient()
	if cfg.Pool != nil && cfg.Key != nil {
		if a.installs, err = NewInstallations(cfg.Pool, cfg.Key); err != nil {
			return nil, err
		}
	} else if cfg.ClientID != "" {
		return nil, errors.New("slack adapter: Add to Slack (SLACK_CLIENT_ID) needs the database and THREATDESK_SECRET_KEY to keep the workspaces' tokens")
	}
	if cfg.ClientID != "" && (cfg.Orgs == nil || cfg.PublicURL == "") {
		return nil, errors.New("slack adapter: Add to Slack (SLACK_CLIENT_ID) needs the org directory and the public URL")
	}
	return a, nil
}

// Platform returns bot.Slack.
func (a *Adapter) Platform() bot.Platform { return bot.Slack }

// Start checks the bot token (auth.test, which also tells the adapter its own
// bot user; a rejected token is an error, an unreachable Slack only a
// warning) and, when an app token is set, runs Socket Mode until Stop or
// until ctx ends. It returns once the token is checked. A second Start is an
// error (lifecycle.ErrStarted).
func (a *Adapter) Start(ctx context.Context) error {
	return a.life.Start(ctx, func(ctx context.Context) error {
		if _, err := a.identity(ctx); err != nil {
			if kind, _ := bot.Classify(err); kind == bot.Permanent {
				return fmt.Errorf("slack: check the bot token: %w", err)
			}
			// Slack unreachable for now: carry on, identity is asked again when needed.
			a.log.Warn("auth.test failed; starting anyway", "err", err)
		}
		if a.cfg.AppToken != "" {
			a.life.Go("socket mode", func(ctx context.Context) error {
				a.runSocketMode(ctx)
				return nil
			})
		}
		a.background("thread catch-up", a.catchUp)
		return nil
	})
}

// stopGrace is how long Stop lets inbound work in flight finish before it
// cancels it.
const stopGrace = 10 * time.Second

// Stop ends Socket Mode, then waits (up to stopGrace) for inbound work in
// flight to finish before cancelling it, and returns when all of it has
// ended. It is safe before Start and more than once. Stop the HTTP server
// before it, so that no new request arrives.
func (a *Adapter) Stop() error { return a.life.Stop() }

// background runs f on the adapter's work context, tracked by Stop. After
// Stop it is not run.
func (a *Adapter) background(what string, f func(ctx context.Context)) {
	if !a.life.GoWork(what, func(ctx context.Context) error {
		f(ctx)
		return nil
	}) {
		a.log.Info("stopped: not done", "work", what)
	}
}

// msgBroke is the answer when handing an event to the bot failed with a
// panic (logged with its stack, counted in threatdesk_panics_total).
const msgBroke = "Something went wrong in threatdesk; please try again."

// msgStopping is the answer to an event that arrives while the adapter stops.
const msgStopping = "threatdesk is restarting, so nothing was done. Please try again in a minute."

// toBot is the adapter's panic boundary: every inbound event is handed to
// the bot through it, and a panic there becomes an error result.
func (a *Adapter) toBot(what string, f func() error) error {
	return a.life.Guard(what, f)
}

// identity returns our team id and bot user id, calling auth.test once.
func (a *Adapter) identity(ctx context.Context) (string, error) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if a.botUserID != "" {
		return a.botUserID, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	res, err := a.api.AuthTestContext(ctx)
	if err != nil {
		return "", a.classify("auth.test", err)
	}
	a.teamID, a.botUserID = res.TeamID, res.UserID
	return a.botUserID, nil
}

// team returns workspace, or our own team id when it is empty.
func (a *Adapter) team(ctx context.Context, workspace string) string {
	if workspace != "" {
		return workspace
	}
	if _, err := a.identity(ctx); err != nil {
		return ""
	}
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.teamID
}

func (a *Adapter) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

// triggerPlace is where a trigger_id came from.
type triggerPlace struct{ channel, team string }

// failed classifies a Web API error about team's workspace; a refused
// token drops the workspace's cached client.
func (a *Adapter) failed(team, method string, err error) error {
	err = a.classify(method, err)
	a.forgetOnAuthError(team, err)
	return err
}

func msgOptions(m bot.Message) []slack.MsgOption {
	blocks, text := RenderBlocks(m)
	return []slack.MsgOption{
		slack.MsgOptionText(text, false),
		slack.MsgOptionBlocks(blocks...),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
}

// partEventType is the message metadata event type that carries a delivery
// part's key (bot.Dest.Key) with the message, for FindPosted
// (https://docs.slack.dev/messaging/message-metadata).
const partEventType = "threatdesk_part"

// FindPosted searches at most findPages pages of findPageSize messages (15
// for a distributed app), from findSkew before the first attempt (Slack's
// clock and ours may differ).
const (
	findPageSize = 200
	findPages    = 5
	findSkew     = 5 * time.Minute
)

// Post sends m to dest (in the anchor's thread when dest.Thread is set),
// with dest.Key in the message's metadata.
func (a *Adapter) Post(ctx context.Context, dest bot.Dest, m bot.Message) (bot.Ref, error) {
	ch := dest.Channel
	opts := msgOptions(m)
	if dest.Thread != nil {
		ch = cmp.Or(ch, dest.Thread.Channel)
		opts = append(opts, slack.MsgOptionTS(dest.Thread.Message))
	}
	if dest.Key != "" {
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: partEventType,
			EventPayload: map[string]any{"key": dest.Key}}))
	}
	api, err := a.client(ctx, dest.Workspace)
	if err != nil {
		return bot.Ref{}, fmt.Errorf("post to channel %q: %w", ch, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	gotCh, ts, err := api.PostMessageContext(ctx, ch, opts...)
	a.metrics.call("chat.postMessage", err)
	if err != nil {
		return bot.Ref{}, fmt.Errorf("post to channel %q: %w", ch, a.failed(dest.Workspace, "chat.postMessage", err))
	}
	return bot.Ref{Platform: bot.Slack, Workspace: a.team(ctx, dest.Workspace), Channel: cmp.Or(gotCh, ch), Message: ts}, nil
}

// FindPosted looks for the message Post sent with dest.Key, posted at or
// after since: in the channel's history (conversations.history), or in the
// thread of dest.Thread (conversations.replies), asking for the messages'
// metadata (include_all_metadata). It needs the history scopes the manifest
// grants (channels:history, groups:history).
func (a *Adapter) FindPosted(ctx context.Context, dest bot.Dest, since time.Time) (bot.Ref, bool, error) {
	if dest.Key == "" {
		return bot.Ref{}, false, nil
	}
	ch := dest.Channel
	if dest.Thread != nil {
		ch = cmp.Or(ch, dest.Thread.Channel)
	}
	// since is the first attempt's start; a later attempt may have posted
	// long after it, so every message since is read.
	oldest := slackTS(since.Add(-findSkew))
	api, err := a.client(ctx, dest.Workspace)
	if err != nil {
		return bot.Ref{}, false, fmt.Errorf("look for message %s in channel %q: %w", dest.Key, ch, err)
	}
	method := "conversations.history"
	if dest.Thread != nil {
		method = "conversations.replies"
	}
	cursor, _ := a.findFrom.take(dest.Key) // a lookup told to come back goes on
	for range findPages {
		if wait := a.history.urgent(a.team(ctx, dest.Workspace), method); wait > 0 {
			a.findFrom.put(dest.Key, cursor)
			return bot.Ref{}, false, fmt.Errorf("look for message %s in channel %q: %w", dest.Key, ch,
				bot.RateLimitError(wait, fmt.Errorf("%s: Slack allows this app one a minute in a workspace", method)))
		}
		msgs, next, err := a.historyPage(ctx, api, ch, dest.Thread, oldest, cursor)
		if err != nil {
			return bot.Ref{}, false, fmt.Errorf("look for message %s in channel %q: %w", dest.Key, ch, err)
		}
		for _, m := range msgs {
			if dest.Thread != nil && m.Timestamp == dest.Thread.Message {
				continue // conversations.replies starts with the thread's parent
			}
			if m.Metadata.EventType == partEventType && m.Metadata.EventPayload["key"] == dest.Key {
				return bot.Ref{Platform: bot.Slack, Workspace: a.team(ctx, dest.Workspace), Channel: ch, Message: m.Timestamp}, true, nil
			}
		}
		if next == "" {
			return bot.Ref{}, false, nil
		}
		cursor = next
	}
	a.log.Warn("looked through the most recent messages without finding a part an earlier attempt may have posted; it is posted again",
		"channel", ch, "key", dest.Key, "messages", findPages*a.cfg.historyPageSize())
	return bot.Ref{}, false, nil
}

// slackTS is t as a Slack message timestamp.
func slackTS(t time.Time) string { return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000) }

// historyPage reads one page of a channel's history, or of a thread when
// thread is set, with metadata; next is the cursor of the next page, if any.
func (a *Adapter) historyPage(ctx context.Context, api *slack.Client, ch string, thread *bot.Ref, oldest, cursor string) ([]slack.Message, string, error) {
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	limit := a.cfg.historyPageSize()
	if thread != nil {
		msgs, more, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: ch, Timestamp: thread.Message, Oldest: oldest, Limit: limit, Cursor: cursor, IncludeAllMetadata: true})
		a.metrics.call("conversations.replies", err)
		if err != nil {
			return nil, "", a.classify("conversations.replies", err)
		}
		if !more {
			next = ""
		}
		return msgs, next, nil
	}
	res, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
		ChannelID: ch, Oldest: oldest, Limit: limit, Cursor: cursor, IncludeAllMetadata: true})
	a.metrics.call("conversations.history", err)
	if err != nil {
		return nil, "", a.classify("conversations.history", err)
	}
	next := res.ResponseMetaData.NextCursor
	if !res.HasMore {
		next = ""
	}
	return res.Messages, next, nil
}

// Update replaces the message at ref with m (chat.update).
func (a *Adapter) Update(ctx context.Context, ref bot.Ref, m bot.Message) error {
	api, err := a.client(ctx, ref.Workspace)
	if err != nil {
		return fmt.Errorf("update message %s in channel %q: %w", ref.Message, ref.Channel, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	_, _, _, err = api.UpdateMessageContext(ctx, ref.Channel, ref.Message, msgOptions(m)...)
	a.metrics.call("chat.update", err)
	if err != nil {
		return fmt.Errorf("update message %s in channel %q: %w", ref.Message, ref.Channel, a.failed(ref.Workspace, "chat.update", err))
	}
	return nil
}

// PostPrivate shows m to userID only, in dest (chat.postEphemeral).
func (a *Adapter) PostPrivate(ctx context.Context, dest bot.Dest, userID string, m bot.Message) error {
	ch := dest.Channel
	opts := msgOptions(m)
	if dest.Thread != nil {
		ch = cmp.Or(ch, dest.Thread.Channel)
		opts = append(opts, slack.MsgOptionTS(dest.Thread.Message))
	}
	api, err := a.client(ctx, dest.Workspace)
	if err != nil {
		return fmt.Errorf("post privately to %q in channel %q: %w", userID, ch, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	_, err = api.PostEphemeralContext(ctx, ch, userID, opts...)
	a.metrics.call("chat.postEphemeral", err)
	if err != nil {
		return fmt.Errorf("post privately to %q in channel %q: %w", userID, ch, a.failed(dest.Workspace, "chat.postEphemeral", err))
	}
	return nil
}

// OpenForm opens f as a modal with a trigger_id from a command or action
// (views.open). Call it at once: a trigger lasts 3 seconds.
func (a *Adapter) OpenForm(ctx context.Context, trigger string, f bot.Form) error {
	at, _ := a.triggers.get(trigger)
	view, err := RenderModal(f, at.channel)
	if err != nil {
		return bot.PermanentError("invalid_form", "the form does not fit Slack's modal limits", err)
	}
	api, err := a.client(ctx, at.team)
	if err != nil {
		return fmt.Errorf("open form %q: %w", f.ID, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	_, err = api.OpenViewContext(ctx, trigger, view)
	a.metrics.call("views.open", err)
	if err != nil {
		return fmt.Errorf("open form %q: %w", f.ID, a.failed(at.team, "views.open", err))
	}
	return nil
}

// Present implements bot.Presence: users.info says whether the account is
// still active (deleted: deactivated or removed), and, given a channel,
// conversations.members whether the user is still in it (pages of 1000, at
// most 5 inside the look-up's time; a channel larger than that counts them
// as in it).
func (a *Adapter) Present(ctx context.Context, workspace, userID, channel string) (bool, error) {
	api, err := a.client(ctx, workspace)
	if err != nil {
		return true, fmt.Errorf("check user %q: %w", userID, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	u, err := api.GetUserInfoContext(ctx, userID)
	a.metrics.call("users.info", err)
	if err != nil {
		if slackCode(err) == "user_not_found" {
			return false, nil
		}
		return true, fmt.Errorf("check user %q: %w", userID, a.failed(workspace, "users.info", err))
	}
	if u.Deleted {
		return false, nil
	}
	if channel == "" {
		return true, nil
	}
	cursor := ""
	for range 5 {
		ids, next, err := api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: channel, Cursor: cursor, Limit: 1000})
		a.metrics.call("conversations.members", err)
		if err != nil {
			return true, fmt.Errorf("check user %q in channel %s: %w", userID, channel, a.failed(workspace, "conversations.members", err))
		}
		if slices.Contains(ids, userID) {
			return true, nil
		}
		if next == "" {
			return false, nil
		}
		cursor = next
	}
	return true, nil
}

// UserName returns a user's display name (users.info), cached for UserCacheTTL.
func (a *Adapter) UserName(ctx context.Context, workspace, userID string) (string, error) {
	key := workspace + "/" + userID
	if name, ok := a.users.get(key); ok {
		return name, nil
	}
	api, err := a.client(ctx, workspace)
	if err != nil {
		return "", fmt.Errorf("look up user %q: %w", userID, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	u, err := api.GetUserInfoContext(ctx, userID)
	a.metrics.call("users.info", err)
	if err != nil {
		return "", fmt.Errorf("look up user %q: %w", userID, a.failed(workspace, "users.info", err))
	}
	name := cmp.Or(u.Profile.DisplayName, cmp.Or(u.Profile.RealName, cmp.Or(u.RealName, u.Name)))
	a.users.put(key, name)
	return name, nil
}
