// Package discordfake is a fake Discord for tests: a real HTTP server with
// the REST routes threatdesk's Discord adapter uses and a gateway websocket
// (HELLO, IDENTIFY then READY, heartbeat ACK, dispatches, RECONNECT and
// RESUME: gateway.go). It enforces
// Discord's message, component and modal limits and the allowed_mentions
// rule (a violation fails the test unless Options.Lenient), answers 429 or
// 5xx when told to, records every call and counts concurrent gateway
// sessions per token. The real discordgo client talks to it over sockets.
package discordfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Options configures a fake.
type Options struct {
	// Token is the bot token it accepts (without "Bot "). Default "test-token".
	Token string
	// DisallowedIntents are the privileged intents not switched on in the
	// Developer Portal: an IDENTIFY asking for any of them is closed with
	// 4014 "Disallowed intent(s)." as Discord does.
	DisallowedIntents int
	// SessionStarts is how many IDENTIFYs GET /gateway/bot's
	// session_start_limit allows (default 1000 a day); each IDENTIFY sent
	// spends one.
	SessionStarts int
	// AppID is the application id. Default "1100000000000000001".
	AppID string
	// BotID is the bot user's id. Default "1100000000000000002".
	BotID string
	// Guilds exist at start, each with its text channels.
	Guilds []Guild
	// HeartbeatInterval sent in HELLO. Default 41.25s.
	HeartbeatInterval time.Duration
	// InteractionDeadline: a callback later than this after dispatch gets
	// 10062 Unknown interaction, like Discord. Default 3s.
	InteractionDeadline time.Duration
	// Lenient records violations without failing the test (for tests of
	// the fake itself).
	Lenient bool
	// Now is the fake's clock for interaction deadlines and token
	// lifetimes; default time.Now. A test moves it to play a late answer.
	Now func() time.Time
}

// Guild is a server with text channels.
type Guild struct {
	ID       string
	Channels []string
	// JoinedAt is when the bot joined it (GUILD_CREATE's joined_at).
	// Default: 1 January 2024, long before any test.
	JoinedAt time.Time
}

// defaultJoinedAt is the join time of a guild that does not set one.
var defaultJoinedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// User is a Discord user as the fake knows it.
type User struct {
	ID         string `json:"id"`
	Username   string `json:"username"`
	GlobalName string `json:"global_name,omitempty"`
	Bot        bool   `json:"bot,omitempty"`
	// Nick is the server nickname (member lookups).
	Nick string `json:"-"`
	// NoDMs makes messages to their DM channel fail with 50007 ("Cannot
	// send messages to this user"), as for someone who turned off direct
	// messages from server members.
	NoDMs bool `json:"-"`
}

// Channel is a guild text channel, a thread or a DM.
type Channel struct {
	ID       string `json:"id"`
	Type     int    `json:"type"`
	GuildID  string `json:"guild_id,omitempty"`
	ParentID string `json:"parent_id,omitempty"`
	Name     string `json:"name,omitempty"`
	// PermissionOverwrites allow and deny permissions in the channel to a
	// role (Type 0; the guild's id is @everyone) or a member (Type 1), as
	// Discord's channel object carries them (SetOverwrites).
	PermissionOverwrites []Overwrite `json:"permission_overwrites,omitempty"`
	// ThreadMetadata is a thread's: archived (after its auto-archive time
	// idle, ArchiveThread), locked by a moderator.
	ThreadMetadata *ThreadMetadata `json:"thread_metadata,omitempty"`
}

// ThreadMetadata is the part of a thread's thread_metadata the fake keeps.
type ThreadMetadata struct {
	Archived            bool `json:"archived"`
	Locked              bool `json:"locked"`
	AutoArchiveDuration int  `json:"auto_archive_duration"`
}

// ArchiveThread archives thread (as Discord does after its auto-archive
// time idle), locked too when locked (as a moderator may): a post
// unarchives an archived thread unless it is locked (then 160005); an
// edit inside an archived thread is refused (50083) until the thread is
// unarchived (PATCH /channels/{thread} {"archived": false}).
// https://discord.com/developers/docs/topics/threads
func (s *Server) ArchiveThread(thread string, locked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[thread]
	md := ThreadMetadata{AutoArchiveDuration: 10080}
	if c.ThreadMetadata != nil {
		md = *c.ThreadMetadata
	}
	md.Archived, md.Locked = true, locked
	c.ThreadMetadata = &md
	s.channels[thread] = c
}

// archived reports whether a channel is an archived thread, and locked.
// s.mu is held.
func (s *Server) archived(channel string) (archived, locked bool) {
	if md := s.channels[channel].ThreadMetadata; md != nil {
		return md.Archived, md.Locked
	}
	return false, false
}

// patchChannel answers PATCH /channels/{id} for a thread's archived flag:
// the bot may unarchive a thread that is not locked.
func (s *Server) patchChannel(w http.ResponseWriter, r *http.Request, body []byte) {
	ch := r.PathValue("channel")
	var req struct {
		Archived *bool `json:"archived"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Archived == nil {
		s.violate("PATCH /channels/"+ch, []string{"the fake takes only {\"archived\": bool}"})
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	c, ok := s.channels[ch]
	if !ok {
		s.mu.Unlock()
		writeErr(w, 404, 10003, "Unknown Channel")
		return
	}
	if c.ThreadMetadata != nil && c.ThreadMetadata.Locked && !*req.Archived {
		s.mu.Unlock()
		writeErr(w, 403, 50013, "Missing Permissions")
		return
	}
	md := ThreadMetadata{AutoArchiveDuration: 10080}
	if c.ThreadMetadata != nil {
		md = *c.ThreadMetadata // a copy: earlier snapshots keep theirs
	}
	md.Archived = *req.Archived
	c.ThreadMetadata = &md
	s.channels[ch] = c
	out := c
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

// Overwrite is a channel permission overwrite; Allow and Deny are
// permission bit sets, written as strings as Discord writes them.
type Overwrite struct {
	ID    string `json:"id"`
	Type  int    `json:"type"`
	Allow string `json:"allow"`
	Deny  string `json:"deny"`
}

// Role is a guild role with its permission bit set (a string, as Discord
// writes it).
type Role struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Permissions string `json:"permissions"`
}

// EveryonePermissions are @everyone's permissions in every guild of the
// fake: View Channel, Send Messages, Read Message History, Use
// Application Commands, Send Messages in Threads.
const EveryonePermissions = "277025459200"

// GuildOwnerID owns every guild of the fake (no test user).
const GuildOwnerID = "1000000000000000999"

// Message is a stored message.
type Message struct {
	ID         string      `json:"id"`
	ChannelID  string      `json:"channel_id"`
	GuildID    string      `json:"guild_id,omitempty"`
	Author     User        `json:"author"`
	Content    string      `json:"content"`
	Embeds     []Embed     `json:"embeds"`
	Components []Component `json:"components"`
	Flags      int         `json:"flags,omitempty"`
	Type       int         `json:"type"`
	Nonce      string      `json:"nonce,omitempty"`
	// Attachments are its files (files.go; posted by people with SayWithFiles).
	Attachments []Attachment `json:"attachments,omitempty"`
	// Edits counts PATCHes.
	Edits int `json:"-"`
	// Interaction is the id of the interaction this message answers.
	Interaction string    `json:"-"`
	Created     time.Time `json:"-"`
	// Notified are the users the message pinged when it was created: the
	// user mentions in its content that its allowed_mentions allow (edits
	// ping nobody).
	Notified []string `json:"-"`
}

// Call is one recorded request.
type Call struct {
	Method string
	Path   string // below /api/v10, e.g. "/channels/1/messages"
	Query  string
	Body   []byte
	Authed bool
	Status int
	// Received is when the request arrived; At when its answer was written.
	Received time.Time
	At       time.Time
}

type failure struct {
	method, prefix string
	status         int
	retryAfter     time.Duration
	times          int
	global         bool // a global 429: every route, as Discord sends it
	banned         bool // Cloudflare's ban: a 429 with an HTML page
}

// Server is a running fake Discord.
type Server struct {
	t    testing.TB
	opts Options
	srv  *httptest.Server

	mu            sync.Mutex
	seq           int64
	calls         []Call
	violations    []string
	pings         []string
	users         map[string]User
	removed       map[string]bool // RemoveMember
	channels      map[string]Channel
	roles         map[string][]Role   // guild -> roles besides @everyone
	memberRoles   map[string][]string // user -> role ids
	messages      map[string]*Message
	order         []string
	commands      map[string][]Command // "" for global, else guild id
	interactions  map[string]*Interaction
	byToken       map[string]*Interaction
	failures      []*failure
	sessions      map[*session]bool
	gw            map[string]*gwSession // gateway sessions by id, resumable while detached
	resumes       int
	live          map[string]int // token -> identified sessions now
	maxLive       map[string]int
	identifies    int
	identifyTries int

	// changes signals tests waiting on what the fake records (Subscribe).
	changes testwait.Signal
	// attachments are the files people posted, by id, and attDownloads
	// the CDN's requests (attachments.go).
	attachments  map[string]*Attachment
	attDownloads []AttachmentDownload
	// pinned are the pinned messages' ids (pins.go).
	pinned map[string]bool
}

// now is the fake's clock (Options.Now).
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Subscribe signals after every REST request the fake has answered and
// recorded, and whenever a gateway session opens, identifies or closes:
// whatever Calls, Messages, Commands, Sessions and Identifies read changes
// only then. Tests wait on it with testwait.For.
func (s *Server) Subscribe() (<-chan struct{}, func()) { return s.changes.Subscribe() }

// New starts a fake Discord; it stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Token == "" {
		o.Token = "test-token"
	}
	if o.AppID == "" {
		o.AppID = "1100000000000000001"
	}
	if o.BotID == "" {
		o.BotID = "1100000000000000002"
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 41250 * time.Millisecond
	}
	if o.InteractionDeadline == 0 {
		o.InteractionDeadline = 3 * time.Second
	}
	s := &Server{
		t: t, opts: o,
		seq:          1300000000000000000,
		users:        map[string]User{o.BotID: {ID: o.BotID, Username: "threatdesk", Bot: true}},
		channels:     map[string]Channel{},
		roles:        map[string][]Role{},
		memberRoles:  map[string][]string{},
		messages:     map[string]*Message{},
		pinned:       map[string]bool{},
		commands:     map[string][]Command{},
		interactions: map[string]*Interaction{},
		byToken:      map[string]*Interaction{},
		sessions:     map[*session]bool{},
		gw:           map[string]*gwSession{},
		live:         map[string]int{},
		maxLive:      map[string]int{},
	}
	for _, g := range o.Guilds {
		for _, c := range g.Channels {
			s.channels[c] = Channel{ID: c, Type: 0, GuildID: g.ID, Name: "channel-" + c}
		}
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every gateway session.
func (s *Server) Close() {
	s.DropSessions()
	s.srv.Close()
}

// APIURL is the REST base to configure as DISCORD_API_URL.
func (s *Server) APIURL() string { return s.srv.URL + "/api/v10/" }

// GatewayURL is the websocket URL gateway discovery returns.
func (s *Server) GatewayURL() string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/gateway"
}

// Token is the accepted bot token.
func (s *Server) Token() string { return s.opts.Token }

// AppID is the application id.
func (s *Server) AppID() string { return s.opts.AppID }

// BotID is the bot user's id.
func (s *Server) BotID() string { return s.opts.BotID }

// NextID returns a fresh snowflake.
func (s *Server) NextID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextID()
}

func (s *Server) nextID() string {
	// A snowflake's top bits are milliseconds since Discord's epoch
	// (https://discord.com/developers/docs/reference#snowflakes); ids
	// still grow strictly within one millisecond.
	const discordEpoch = 1420070400000
	s.seq = max(s.seq+1, (s.now().UnixMilli()-discordEpoch)<<22)
	return strconv.FormatInt(s.seq, 10)
}

// AddUser makes a user known (for lookups and as an author).
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	s.users[u.ID] = u
	s.mu.Unlock()
}

// RemoveMember takes user out of every guild, as when they leave it or are
// kicked: member lookups answer 10007 Unknown Member.
func (s *Server) RemoveMember(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed == nil {
		s.removed = map[string]bool{}
	}
	s.removed[user] = true
}

// AddChannel makes a channel known.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	s.channels[c.ID] = c
	s.mu.Unlock()
}

// Channel returns a known channel or thread.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	return c, ok
}

// Calls returns every recorded request.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the recorded requests of a method whose path starts with prefix.
func (s *Server) CallsTo(method, prefix string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// Violations returns every broken rule seen.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Pings returns the mentions that would have pinged someone.
func (s *Server) Pings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.pings...)
}

// Messages returns the messages in a channel or thread, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range s.order {
		if m := s.messages[id]; m.ChannelID == channel {
			out = append(out, *m)
		}
	}
	return out
}

// AllMessages returns every message, oldest first.
func (s *Server) AllMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.messages[id])
	}
	return out
}

// Message returns one message.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Commands returns what was registered in a guild ("" for global).
func (s *Server) Commands(guild string) []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.commands[guild]...)
}

// Fail makes the next times requests of method whose path (below /api/v10)
// starts with prefix fail with status; a 429 carries retryAfter.
func (s *Server) Fail(method, prefix string, status int, retryAfter time.Duration, times int) {
	s.mu.Lock()
	s.failures = append(s.failures, &failure{method: method, prefix: prefix, status: status, retryAfter: retryAfter, times: times})
	s.mu.Unlock()
}

// FailGlobal makes the next times requests of any route answer a global
// 429, as Discord's documentation shows one: Retry-After, X-RateLimit-Global
// and X-RateLimit-Scope: global, no bucket headers, and "global": true.
// FailBanned answers the next times requests, whatever their route, as
// Cloudflare answers an IP banned for too many invalid requests: 429 with
// Retry-After and an HTML page, no JSON.
// https://discord.com/developers/docs/topics/rate-limits#invalid-request-limit-aka-cloudflare-bans
func (s *Server) FailBanned(retryAfter time.Duration, times int) {
	s.mu.Lock()
	s.failures = append(s.failures, &failure{status: http.StatusTooManyRequests, retryAfter: retryAfter, times: times, banned: true})
	s.mu.Unlock()
}

func (s *Server) FailGlobal(retryAfter time.Duration, times int) {
	s.mu.Lock()
	s.failures = append(s.failures, &failure{status: http.StatusTooManyRequests, retryAfter: retryAfter, times: times, global: true})
	s.mu.Unlock()
}

// violate records a broken rule and fails the test unless lenient.
func (s *Server) violate(where string, v []string) {
	s.mu.Lock()
	for _, x := range v {
		s.violations = append(s.violations, where+": "+x)
	}
	s.mu.Unlock()
	if !s.opts.Lenient {
		for _, x := range v {
			s.t.Errorf("discordfake: %s: %s", where, x)
		}
	}
}

type apiErr struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Errors  json.RawMessage `json:"errors,omitempty"`
}

// writeFormErr answers 50035 Invalid Form Body as Discord does: the
// message says only that, and the reasons come in errors, here under the
// body's root (https://discord.com/developers/docs/reference#error-messages).
func writeFormErr(w http.ResponseWriter, reasons []string) {
	type reason struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	rs := make([]reason, len(reasons))
	for i, r := range reasons {
		rs[i] = reason{Code: "BASE_TYPE_INVALID", Message: r}
	}
	errs, _ := json.Marshal(map[string]any{"_errors": rs})
	writeJSON(w, http.StatusBadRequest, apiErr{Code: 50035, Message: "Invalid Form Body", Errors: errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, apiErr{Code: code, Message: msg})
}

// recorder wraps a route: records the call, checks auth, injects failures.
func (s *Server) recorder(auth bool, h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		body, _ := readBody(r)
		path := strings.TrimPrefix(r.URL.Path, "/api/v10")
		authed := r.Header.Get("Authorization") == "Bot "+s.opts.Token
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: path, Query: r.URL.RawQuery, Body: body, Authed: authed, Status: sw.status, Received: received, At: time.Now()})
			s.mu.Unlock()
			s.changes.Notify()
		}()
		if auth && !authed {
			writeErr(sw, http.StatusUnauthorized, 0, "401: Unauthorized")
			return
		}
		if f := s.takeFailure(r.Method, path); f != nil {
			if f.status == http.StatusTooManyRequests && f.banned {
				sw.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Seconds()+0.999)))
				sw.Header().Set("Content-Type", "text/html; charset=UTF-8")
				sw.WriteHeader(http.StatusTooManyRequests)
				_, _ = sw.Write([]byte("<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to restrict access</title></head><body>Error 1015: You are being rate limited</body></html>"))
				return
			}
			if f.status == http.StatusTooManyRequests && f.global {
				secs := f.retryAfter.Seconds()
				sw.Header().Set("Retry-After", strconv.Itoa(int(secs+0.999)))
				sw.Header().Set("X-RateLimit-Global", "true")
				sw.Header().Set("X-RateLimit-Scope", "global")
				writeJSON(sw, http.StatusTooManyRequests, map[string]any{"message": "You are being rate limited.", "retry_after": secs, "global": true})
				return
			}
			if f.status == http.StatusTooManyRequests {
				secs := f.retryAfter.Seconds()
				sw.Header().Set("Retry-After", strconv.Itoa(int(secs+0.999)))
				sw.Header().Set("X-RateLimit-Limit", "5")
				sw.Header().Set("X-RateLimit-Remaining", "0")
				sw.Header().Set("X-RateLimit-Reset-After", strconv.FormatFloat(secs, 'f', 3, 64))
				sw.Header().Set("X-RateLimit-Bucket", "fake")
				sw.Header().Set("X-RateLimit-Scope", "user")
				writeJSON(sw, http.StatusTooManyRequests, map[string]any{"message": "You are being rate limited.", "retry_after": secs, "global": false})
				return
			}
			writeErr(sw, f.status, 0, http.StatusText(f.status))
			return
		}
		h(sw, r, body)
	}
}

func (s *Server) takeFailure(method, path string) *failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if (f.method == "" || f.method == method) && strings.HasPrefix(path, f.prefix) {
			f.times--
			if f.times <= 0 {
				s.failures = append(s.failures[:i], s.failures[i+1:]...)
			}
			return f
		}
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	return io.ReadAll(io.LimitReader(r.Body, 4*MaxAttachmentBytes)) // room for files over the limit, to refuse them as Discord does
}

func (s *Server) routes(mux *http.ServeMux) {
	api := "/api/v10"
	mux.HandleFunc("GET /gateway", s.serveGateway)
	mux.HandleFunc("GET /gateway/", s.serveGateway)
	mux.HandleFunc("GET /attachments/{channel}/{id}/{name}", s.serveAttachment)
	mux.Handle("GET "+api+"/gateway", s.recorder(false, s.gateway))
	mux.Handle("GET "+api+"/gateway/bot", s.recorder(true, s.gateway))
	mux.Handle("GET "+api+"/users/{user}", s.recorder(true, s.getUser))
	mux.Handle("POST "+api+"/users/@me/channels", s.recorder(true, s.openDM))
	mux.Handle("GET "+api+"/guilds/{guild}/members/{user}", s.recorder(true, s.getMember))
	mux.Handle("GET "+api+"/guilds/{guild}", s.recorder(true, s.getGuild))
	mux.Handle("GET "+api+"/channels/{channel}", s.recorder(true, s.getChannel))
	mux.Handle("GET "+api+"/channels/{channel}/messages", s.recorder(true, s.getMessages))
	mux.Handle("POST "+api+"/channels/{channel}/messages", s.recorder(true, s.createMessage))
	mux.Handle("PATCH "+api+"/channels/{channel}/messages/{message}", s.recorder(true, s.editMessage))
	mux.Handle("PATCH "+api+"/channels/{channel}", s.recorder(true, s.patchChannel))
	mux.Handle("POST "+api+"/channels/{channel}/messages/{message}/threads", s.recorder(true, s.startThread))
	mux.Handle("PUT "+api+"/channels/{channel}/pins/{message}", s.recorder(true, s.pinMessage))
	mux.Handle("PUT "+api+"/applications/{app}/commands", s.recorder(true, s.putCommands))
	mux.Handle("PUT "+api+"/applications/{app}/guilds/{guild}/commands", s.recorder(true, s.putCommands))
	mux.Handle("GET "+api+"/applications/{app}/commands", s.recorder(true, s.getCommands))
	mux.Handle("GET "+api+"/applications/{app}/guilds/{guild}/commands", s.recorder(true, s.getCommands))
	mux.Handle("POST "+api+"/interactions/{id}/{token}/callback", s.recorder(false, s.callback))
	mux.Handle("POST "+api+"/webhooks/{app}/{token}", s.recorder(false, s.followup))
	mux.Handle("PATCH "+api+"/webhooks/{app}/{token}/messages/{message}", s.recorder(false, s.editWebhookMessage))
	mux.Handle("DELETE "+api+"/webhooks/{app}/{token}/messages/{message}", s.recorder(false, s.deleteWebhookMessage))
	mux.Handle(api+"/", s.recorder(false, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		s.violate("route", []string{fmt.Sprintf("%s %s is not served by the fake", r.Method, r.URL.Path)})
		writeErr(w, http.StatusNotFound, 0, "404: Not Found")
	}))
}

func (s *Server) gateway(w http.ResponseWriter, r *http.Request, _ []byte) {
	total := cmp.Or(s.opts.SessionStarts, 1000)
	s.mu.Lock()
	remaining := max(total-s.identifyTries, 0)
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{
		"url": s.GatewayURL(), "shards": 1,
		"session_start_limit": map[string]int{"total": total, "remaining": remaining, "reset_after": 14400000, "max_concurrency": 1},
	})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("user")
	if id == "@me" {
		id = s.opts.BotID
	}
	s.mu.Lock()
	u, ok := s.users[id]
	s.mu.Unlock()
	if !ok {
		writeErr(w, 404, 10013, "Unknown User")
		return
	}
	writeJSON(w, 200, u)
}

func (s *Server) getMember(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	u, ok := s.users[r.PathValue("user")]
	if s.removed[r.PathValue("user")] {
		ok = false
	}
	inGuild := false
	for _, g := range s.opts.Guilds {
		inGuild = inGuild || g.ID == r.PathValue("guild")
	}
	s.mu.Unlock()
	if !inGuild {
		writeErr(w, 404, 10004, "Unknown Guild") // a guild the bot is not in
		return
	}
	if !ok {
		writeErr(w, 404, 10007, "Unknown Member")
		return
	}
	s.mu.Lock()
	roles := append([]string{}, s.memberRoles[u.ID]...)
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"user": u, "nick": nilIfEmpty(u.Nick), "roles": roles})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) openDM(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		RecipientID string `json:"recipient_id"`
	}
	if json.Unmarshal(body, &req) != nil || req.RecipientID == "" {
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.channels {
		if c.Type == 1 && c.Name == "dm-"+req.RecipientID {
			writeJSON(w, 200, c)
			return
		}
	}
	if _, ok := s.users[req.RecipientID]; !ok {
		writeErr(w, 400, 50033, "Invalid Recipient(s)")
		return
	}
	c := Channel{ID: s.nextID(), Type: 1, Name: "dm-" + req.RecipientID}
	s.channels[c.ID] = c
	writeJSON(w, 200, c)
}

// SetOverwrites replaces a channel's permission overwrites.
func (s *Server) SetOverwrites(channel string, ows ...Overwrite) {
	for i := range ows { // Discord writes "0", never ""
		ows[i].Allow, ows[i].Deny = cmp.Or(ows[i].Allow, "0"), cmp.Or(ows[i].Deny, "0")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[channel]
	c.PermissionOverwrites = ows
	s.channels[channel] = c
}

// AddRole adds a role to a guild; SetMemberRoles gives roles to a user
// (member lookups answer them in every guild).
func (s *Server) AddRole(guild string, r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[guild] = append(s.roles[guild], r)
}

// SetMemberRoles sets the role ids of a user's membership.
func (s *Server) SetMemberRoles(user string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memberRoles[user] = roles
}

// getGuild answers GET /guilds/{guild} for a guild the bot is in: its
// owner and roles (@everyone, whose id is the guild's, first).
func (s *Server) getGuild(w http.ResponseWriter, r *http.Request, _ []byte) {
	g := r.PathValue("guild")
	s.mu.Lock()
	in := false
	for _, og := range s.opts.Guilds {
		in = in || og.ID == g
	}
	roles := append([]Role{{ID: g, Name: "@everyone", Permissions: EveryonePermissions}}, s.roles[g]...)
	s.mu.Unlock()
	if !in {
		writeErr(w, 404, 10004, "Unknown Guild")
		return
	}
	writeJSON(w, 200, map[string]any{"id": g, "name": "guild-" + g, "owner_id": GuildOwnerID, "roles": roles})
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, _ []byte) {
	c, ok := s.Channel(r.PathValue("channel"))
	if !ok {
		writeErr(w, 404, 10003, "Unknown Channel")
		return
	}
	writeJSON(w, 200, c)
}

// checkMessage validates a message body; false means it was rejected.
func (s *Server) checkMessage(w http.ResponseWriter, where string, body []byte, edit bool) (MessageBody, bool) {
	var b MessageBody
	if err := json.Unmarshal(body, &b); err != nil {
		s.violate(where, []string{"body is not a message: " + err.Error()})
		writeErr(w, 400, 50109, "The request body contains invalid JSON.")
		return b, false
	}
	if p := pings(b); len(p) > 0 {
		s.mu.Lock()
		s.pings = append(s.pings, p...)
		s.mu.Unlock()
	}
	if v := validateMessage(b, edit); len(v) > 0 {
		s.violate(where, v)
		writeFormErr(w, v)
		return b, false
	}
	return b, true
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	ch := r.PathValue("channel")
	c, ok := s.Channel(ch)
	if !ok {
		writeErr(w, 404, 10003, "Unknown Channel")
		return
	}
	b, ok := s.checkMessage(w, "POST /channels/"+ch+"/messages", body, false)
	if !ok {
		return
	}
	if c.Type == 1 {
		s.mu.Lock()
		u := s.users[strings.TrimPrefix(c.Name, "dm-")]
		s.mu.Unlock()
		if u.NoDMs {
			writeErr(w, 403, 50007, "Cannot send messages to this user")
			return
		}
	}
	var nonce string
	_ = json.Unmarshal(b.Nonce, &nonce)
	s.mu.Lock()
	switch archived, locked := s.archived(ch); {
	case locked:
		s.mu.Unlock()
		writeErr(w, 403, 160005, "Thread is locked")
		return
	case archived:
		md := *s.channels[ch].ThreadMetadata // a post unarchives it
		md.Archived = false
		c := s.channels[ch]
		c.ThreadMetadata = &md
		s.channels[ch] = c
	}
	if b.EnforceNonce && nonce != "" {
		for _, id := range s.order {
			m := s.messages[id]
			if m.ChannelID == ch && m.Nonce == nonce && m.Author.ID == s.opts.BotID && time.Since(m.Created) < 5*time.Minute {
				out := *m
				s.mu.Unlock()
				writeJSON(w, 200, out)
				return
			}
		}
	}
	m := &Message{ID: s.nextID(), ChannelID: ch, GuildID: c.GuildID, Author: s.users[s.opts.BotID], Content: deref(b.Content),
		Embeds: b.Embeds, Components: b.Components, Flags: b.Flags, Nonce: nonce, Created: time.Now(), Notified: notified(b)}
	s.store(m)
	out := *m
	s.mu.Unlock()
	s.dispatchMessage(out)
	writeJSON(w, 200, out)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// store keeps a message; s.mu is held.
func (s *Server) store(m *Message) {
	if m.Embeds == nil {
		m.Embeds = []Embed{}
	}
	if m.Components == nil {
		m.Components = []Component{}
	}
	s.messages[m.ID] = m
	s.order = append(s.order, m.ID)
}

func (s *Server) editMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	ch, id := r.PathValue("channel"), r.PathValue("message")
	s.mu.Lock()
	m, ok := s.messages[id]
	s.mu.Unlock()
	if !ok || m.ChannelID != ch {
		writeErr(w, 404, 10008, "Unknown Message")
		return
	}
	if m.Author.ID != s.opts.BotID {
		s.violate("PATCH /channels/"+ch+"/messages/"+id, []string{"edits a message another user wrote"})
		writeErr(w, 403, 50005, "Cannot edit a message authored by another user")
		return
	}
	s.mu.Lock()
	archived, _ := s.archived(ch)
	s.mu.Unlock()
	if archived {
		writeErr(w, 400, 50083, "Thread is archived")
		return
	}
	b, ok := s.checkMessage(w, "PATCH /channels/"+ch+"/messages/"+id, body, true)
	if !ok {
		return
	}
	s.mu.Lock()
	edited := *m
	apply(&edited, b)
	if edited.Content == "" && len(edited.Embeds) == 0 && len(edited.Components) == 0 {
		s.mu.Unlock()
		s.violate("PATCH /channels/"+ch+"/messages/"+id, []string{"the edit leaves an empty message"})
		writeErr(w, 400, 50006, "Cannot send an empty message")
		return
	}
	*m = edited
	out := *m
	s.mu.Unlock()
	writeJSON(w, 200, out)
	// Discord dispatches the bot's own edits too.
	s.dispatchMessageEvent("MESSAGE_UPDATE", out)
}

// apply edits m with the fields present in b; s.mu is held.
func apply(m *Message, b MessageBody) {
	if b.Content != nil {
		m.Content = *b.Content
	}
	if b.Embeds != nil {
		m.Embeds = b.Embeds
	}
	if b.Components != nil {
		m.Components = b.Components
	}
	m.Edits++
}

func (s *Server) startThread(w http.ResponseWriter, r *http.Request, body []byte) {
	ch, id := r.PathValue("channel"), r.PathValue("message")
	var req struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &req)
	if n := runes(req.Name); n == 0 || n > maxThreadName {
		s.violate("start thread", []string{fmt.Sprintf("thread name is %d characters, must be 1..%d", n, maxThreadName)})
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	}
	s.mu.Lock()
	m, ok := s.messages[id]
	if !ok || m.ChannelID != ch {
		s.mu.Unlock()
		writeErr(w, 404, 10008, "Unknown Message")
		return
	}
	if _, exists := s.channels[id]; exists {
		s.mu.Unlock()
		writeErr(w, 400, 160004, "A thread has already been created for this message")
		return
	}
	parent := s.channels[ch]
	t := Channel{ID: id, Type: 11, GuildID: parent.GuildID, ParentID: ch, Name: req.Name}
	s.channels[id] = t
	s.mu.Unlock()
	s.Dispatch("THREAD_CREATE", t)
	writeJSON(w, 201, t)
}

func (s *Server) putCommands(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.PathValue("app") != s.opts.AppID {
		writeErr(w, 403, 50001, "Missing Access")
		return
	}
	if g := r.PathValue("guild"); g != "" {
		s.mu.Lock()
		in := false
		for _, og := range s.opts.Guilds {
			in = in || og.ID == g
		}
		s.mu.Unlock()
		if !in {
			writeErr(w, 403, 50001, "Missing Access") // a guild the bot is not in (removed from)
			return
		}
	}
	var cmds []Command
	if err := json.Unmarshal(body, &cmds); err != nil {
		s.violate("PUT commands", []string{"body is not a list of commands: " + err.Error()})
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	}
	if v := validateCommands(cmds); len(v) > 0 {
		s.violate("PUT commands", v)
		writeFormErr(w, v)
		return
	}
	s.mu.Lock()
	for i := range cmds {
		cmds[i].ID = s.nextID()
	}
	s.commands[r.PathValue("guild")] = cmds
	s.mu.Unlock()
	writeJSON(w, 200, cmds)
}

func (s *Server) getCommands(w http.ResponseWriter, r *http.Request, _ []byte) {
	writeJSON(w, 200, s.Commands(r.PathValue("guild")))
}
