// Package slackfake is a fake Slack for tests: a real HTTP server speaking
// the Web API methods threatdesk calls (form and JSON bodies, as slack-go
// sends them), the Socket Mode websocket (hello, envelopes, acks), response
// URLs, and a signer for HTTP-mode requests. It records every call and
// enforces Slack's documented limits, so that a violation fails the test:
// blocks per message, text lengths, button limits, unescaped broadcast
// mentions, unknown channels and threads, expired triggers, and (when
// configured) the per-channel posting rate. It can answer 429 with
// Retry-After, or 500, on demand, and withhold the answer to a post it has
// stored (HoldAnswer), as when a connection drops or the app dies mid-call.
// Messages keep their metadata, which conversations.history and
// conversations.replies return only with include_all_metadata. Files are
// uploaded as Slack takes them (files.getUploadURLExternal, the upload URL,
// files.completeUploadExternal) and direct messages opened
// (conversations.open): see files.go.
// conversations.replies return only with include_all_metadata. People can
// post files (UserFileMessage), served as Slack serves them: with the bot
// token and files:read only (files.go). It knows several workspaces, each
// with its own bot token (a token sees only its own team's channels), the
// Add to Slack flow (the authorize page and oauth.v2.access), uninstalls
// (app_uninstalled, tokens_revoked) and pins.add: see teams.go.
package slackfake

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Channel is a conversation the fake knows.
type Channel struct {
	ID      string
	Name    string
	Private bool
	// NotMember makes posts fail with not_in_channel.
	NotMember bool
	// IM is the app's direct conversation with User (conversations.open).
	IM   bool
	User string
	// Team is the workspace the channel is in (default: the primary team,
	// Options.TeamID). Only that team's token sees it (teams.go).
	Team string
	// Members are who is in it (conversations.members); nil: every user of
	// its team. Leave takes someone out.
	Members []string
	// ExtShared: shared by Slack Connect with other workspaces, whose users
	// (User.Team) write in it too (conversations.info's is_ext_shared; their
	// messages carry their own team, and events is_ext_shared_channel).
	ExtShared bool
}

// User is a workspace member.
type User struct {
	ID          string
	Name        string
	RealName    string
	DisplayName string
	// Deactivated makes conversations.open answer user_disabled: a direct
	// message cannot reach them.
	Deactivated bool
	// Team is the user's workspace (default: the primary team).
	Team string
}

// Options configure the fake. Zero values get working defaults.
type Options struct {
	BotToken      string // default "xoxb-fake-bot-token"
	AppToken      string // default "xapp-fake-app-token"
	SigningSecret string // default "fake-signing-secret"
	TeamID        string // default "T0FAKE"
	BotUserID     string // default "U0BOT"
	BotID         string // default "B0BOT"
	Channels      []Channel
	Users         []User
	// ChannelInterval, when set, is the least time between two messages
	// posted to one channel (Slack: about 1 per second). A faster post is
	// answered 429 with Retry-After and counted in RateLimited.
	ChannelInterval time.Duration
	// HistoryInterval, when set, plays an app distributed outside the Slack
	// Marketplace (docs.slack.dev/reference/methods/conversations.replies:
	// one request a minute, 15 messages a page): conversations.history and
	// conversations.replies each take one call per HistoryInterval per
	// workspace, a faster one answered 429 with Retry-After and counted in
	// RateLimited, and a page holds at most 15 messages (15 by default).
	HistoryInterval time.Duration
	// PingInterval is how often the websocket is pinged; default 2s.
	PingInterval time.Duration
	// AckTimeout is how long an envelope may wait for its ack; default 3s.
	AckTimeout time.Duration
	// TriggerTTL is how long a trigger_id opens a view; default 3s.
	TriggerTTL time.Duration
	// OnViolation is called for every broken limit; default t.Errorf.
	OnViolation func(msg string)
	// Scopes, when set, are the bot scopes the app was granted: reading a
	// conversation's history (conversations.history, conversations.replies)
	// then needs channels:history, groups:history or im:history by the
	// conversation's kind, and answers missing_scope without it, as Slack
	// does. Nil grants every scope.
	Scopes []string
	// NoFilesRead plays an app installed without the files:read scope:
	// file downloads redirect to the sign-in page, files.info answers
	// missing_scope (files.go).
	NoFilesRead bool
	// Teams are the other workspaces the fake knows (teams.go), each with
	// its own bot token once the app is installed there.
	Teams []Team
	// ClientID and ClientSecret are the app's OAuth credentials (defaults
	// "0000000000.fake" and "fake-client-secret"); RedirectURI, when set,
	// is the app's one redirect URL (otherwise any http(s) URL is taken).
	ClientID     string
	ClientSecret string
	RedirectURI  string
	// Now is the fake's clock for response URL lifetimes (30 minutes);
	// default time.Now. A test moves it to play a late answer.
	Now func() time.Time
}

// Message is a message as the fake stores it.
type Message struct {
	Channel   string
	TS        string
	ThreadTS  string
	User      string
	BotID     string
	Text      string
	Blocks    json.RawMessage
	Ephemeral bool
	// To is the recipient of an ephemeral message.
	To       string
	PostedAt time.Time
	Edits    int
	// Metadata is the message metadata posted with it
	// ({"event_type": ..., "event_payload": {...}}), if any.
	Metadata json.RawMessage
	// Files are the ids of the files posted with it (UserFileMessage).
	Files []string
	// Notified are the users the post notified: every <@U…> in its text
	// and blocks, when it was posted (edits notify nobody).
	Notified []string
	// Team is the workspace of the message's author: the channel's, or a
	// guest's own in a channel shared by Slack Connect. Pinned is set by
	// pins.add.
	Team   string
	Pinned bool
}

// Call is one recorded Web API call.
type Call struct {
	Method string
	// Received is when the request arrived; At when it was answered (or
	// the answer withheld).
	Received time.Time
	At       time.Time
	Form     url.Values
	JSON     json.RawMessage
	// Error is the error code answered ("" when ok); Status the HTTP
	// status, 0 when the fake withheld the answer (HoldAnswer).
	Error  string
	Status int
	// Team is the workspace of the token the call was made with ("" when
	// the token was refused, or for app-level and OAuth calls).
	Team string
}

// Response is one message posted through a response URL, as it now
// stands: an answer with replace_original edits it in place, one with
// delete_original removes it (see serveResponse).
type Response struct {
	ID string
	// TS is the message's timestamp, which block actions on it carry in
	// their container.
	TS string
	// ResponseType is "ephemeral" (only User sees it; Slack's default) or
	// "in_channel" (also a message in Channel, see Messages).
	ResponseType string
	Text         string
	Blocks       json.RawMessage
	At           time.Time
	// Channel and User are where, and by whom, the interaction the URL
	// came with happened ("" for a URL from NewResponseURL).
	Channel string
	User    string
	// Edits counts the answers that replaced it (replace_original).
	Edits int
}

// View is one views.open call that succeeded.
type View struct {
	ID        string
	TriggerID string
	View      json.RawMessage
	At        time.Time
	// Team is the workspace the view opened in.
	Team string
}

// Failure is an injected answer for the next calls of a method.
type Failure struct {
	// Status is the HTTP status: 429 (with RetryAfter) or 5xx. 200 with
	// Error answers {"ok":false,"error":Error}.
	Status     int
	RetryAfter time.Duration
	Error      string
}

// Ack is an envelope's acknowledgement as the fake received it.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage
	Latency    time.Duration
}

// Server is the fake Slack.
type Server struct {
	t    testing.TB
	o    Options
	http *httptest.Server

	mu        sync.Mutex
	calls     []Call
	channels  map[string]Channel
	users     map[string]User
	left      map[string]bool // "channel/user": Leave
	messages  []*Message      // in order, all channels
	responses []Response
	// respURLs are the response URLs handed out: when, and how often used.
	respURLs   map[string]*responseURL
	views      []View
	homes      map[string]json.RawMessage // user -> published App Home view
	violations []string
	failures   map[string][]Failure
	lastPost   map[string]time.Time
	// lastRead is when each workspace last read history, per method
	// (HistoryInterval).
	lastRead map[string]time.Time
	rateHits int
	triggers map[string]time.Time // trigger -> expiry
	usedTrig map[string]bool
	seq      int
	clock    int64
	acks     []Ack
	waiters  map[string]chan received
	// inputs are the input blocks' ids of the view each view_submission
	// envelope carried: an ack's errors must name them.
	inputs    map[string][]string
	conns     []*sockConn
	accepted  int // Socket Mode connections ever accepted
	opens     int
	connected chan struct{}
	holds     []*hold
	closing   chan struct{}
	closeOnce sync.Once
	// changes signals tests waiting on what the fake records (Subscribe).
	changes testwait.Signal
	// filestore holds uploaded files and direct messages (files.go).
	filestore *fileStore
	// files are the files people posted, by id; downloads the requests
	// for their bytes (files.go).
	files     map[string]*File
	downloads []Download
	// Workspaces, tokens and Add to Slack (teams.go).
	teams      map[string]*teamState
	tokens     map[string]*tokenState
	codes      map[string]*oauthCode
	trigTeam   map[string]string // trigger -> team
	installs   []Install
	authorizes []Authorize
}

// Subscribe signals after every request the fake has answered (an API
// call, a response URL), and whenever a Socket Mode connection opens or
// closes: whatever Calls, Messages, Responses, Views, Opens and
// Connections read changes only then. Tests wait on it with testwait.For.
func (s *Server) Subscribe() (<-chan struct{}, func()) { return s.changes.Subscribe() }

// notifying signals s.changes after each request h has answered.
func (s *Server) notifying(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer s.changes.Notify()
		h.ServeHTTP(w, r)
	})
}

// hold is a pending HoldAnswer.
type hold struct {
	keep func(Message) bool
	drop bool
	got  chan Message
}

// New starts a fake Slack; it stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	o.BotToken = or(o.BotToken, "xoxb-fake-bot-token")
	o.AppToken = or(o.AppToken, "xapp-fake-app-token")
	o.SigningSecret = or(o.SigningSecret, "fake-signing-secret")
	o.TeamID = or(o.TeamID, "T0FAKE")
	o.BotUserID = or(o.BotUserID, "U0BOT")
	o.BotID = or(o.BotID, "B0BOT")
	o.ClientID = or(o.ClientID, "0000000000.fake")
	o.ClientSecret = or(o.ClientSecret, "fake-client-secret")
	if o.PingInterval <= 0 {
		o.PingInterval = 2 * time.Second
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 3 * time.Second
	}
	if o.TriggerTTL <= 0 {
		o.TriggerTTL = 3 * time.Second
	}
	s := &Server{
		t: t, o: o,
		channels:  map[string]Channel{},
		users:     map[string]User{},
		failures:  map[string][]Failure{},
		lastPost:  map[string]time.Time{},
		lastRead:  map[string]time.Time{},
		homes:     map[string]json.RawMessage{},
		triggers:  map[string]time.Time{},
		usedTrig:  map[string]bool{},
		waiters:   map[string]chan received{},
		inputs:    map[string][]string{},
		connected: make(chan struct{}),
		closing:   make(chan struct{}),
		clock:     time.Now().Unix(),
		teams:     map[string]*teamState{},
		tokens:    map[string]*tokenState{},
		codes:     map[string]*oauthCode{},
		trigTeam:  map[string]string{},
	}
	s.addTeam(Team{ID: o.TeamID, Name: "Fake", BotToken: o.BotToken, BotUserID: o.BotUserID, BotID: o.BotID}, true)
	for _, t := range o.Teams {
		s.addTeam(t, false)
	}
	for _, c := range o.Channels {
		s.channels[c.ID] = c
	}
	for _, u := range o.Users {
		s.users[u.ID] = u
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/link/", s.serveSocket)
	mux.HandleFunc("POST /response/{id}", s.serveResponse)
	mux.HandleFunc("POST /upload/v1/{id}", s.serveUpload)
	mux.HandleFunc("GET /files-pri/{file}/{rest...}", s.serveFile)
	mux.HandleFunc("GET /{$}", s.serveSignIn)
	mux.HandleFunc("GET /oauth/v2/authorize", s.serveAuthorize)
	mux.HandleFunc("POST /oauth/v2/authorize/approve", s.serveApprove)
	s.http = httptest.NewServer(s.notifying(mux))
	t.Cleanup(s.Close)
	return s
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Close stops the server and closes Socket Mode connections.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.http.CloseClientConnections()
	s.http.Close()
}

// APIURL is the Web API base, with its trailing slash (SLACK_API_URL).
func (s *Server) APIURL() string { return s.http.URL + "/api/" }

// URL is the server's root URL.
func (s *Server) URL() string { return s.http.URL }

// Options returns the effective options (tokens, ids).
func (s *Server) Options() Options { return s.o }

// AddChannel makes a channel known.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[c.ID] = c
}

// AddUser makes a user known.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// FailNext answers the next n calls of method with f.
func (s *Server) FailNext(method string, n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], f)
	}
}

// HoldAnswer withholds the answer to the next chat.postMessage whose message
// keep accepts (nil: the next one), after the message is stored as Slack
// would store it: the message is in the channel, but the app never learns
// its ts. With drop the connection is closed at once; without, the request
// hangs until the app gives up on it (or the server closes). The stored
// message is sent on the returned channel when that happens.
func (s *Server) HoldAnswer(keep func(Message) bool, drop bool) <-chan Message {
	h := &hold{keep: keep, drop: drop, got: make(chan Message, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds = append(s.holds, h)
	return h.got
}

// withhold runs a HoldAnswer on a post it caught: nothing is answered.
func (s *Server) withhold(w http.ResponseWriter, r *http.Request, req apiRequest, h *hold, m Message) {
	s.record(req, 0, "")
	h.got <- m
	if h.drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
	}
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
}

func (s *Server) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.violations = append(s.violations, msg)
	s.mu.Unlock()
	if s.o.OnViolation != nil {
		s.o.OnViolation(msg)
		return
	}
	s.t.Errorf("slackfake: %s", msg)
}

// Violations lists every limit broken so far.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// RateLimited counts calls refused for breaking ChannelInterval or
// HistoryInterval.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateHits
}

// Calls returns the recorded calls of method ("" for all).
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages in channel ("" for all), oldest first,
// ephemeral ones included.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if channel == "" || m.Channel == channel {
			out = append(out, *m)
		}
	}
	return out
}

// Message returns one message.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.find(channel, ts); m != nil {
		return *m, true
	}
	return Message{}, false
}

// Replies returns the replies in a thread, oldest first.
func (s *Server) Replies(channel, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channel && m.ThreadTS == threadTS && m.TS != threadTS && !m.Ephemeral {
			out = append(out, *m)
		}
	}
	return out
}

// Responses returns the posts to response URLs.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Response(nil), s.responses...)
}

// Views returns the views opened.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]View(nil), s.views...)
}

// Acks returns the envelope acknowledgements received.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.acks...)
}

func (s *Server) find(channel, ts string) *Message {
	for _, m := range s.messages {
		if m.Channel == channel && m.TS == ts && !m.Ephemeral {
			return m
		}
	}
	return nil
}

// nextTS returns a fresh, increasing message timestamp.
func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("%d.%06d", s.clock, s.seq)
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08d", prefix, s.seq)
}

// NewTrigger issues a trigger_id valid for TriggerTTL.
func (s *Server) NewTrigger() string { return s.newTrigger("") }

// newTrigger issues a trigger_id of team ("": the primary team), which
// only that team's token can open a view with.
func (s *Server) newTrigger(team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := fmt.Sprintf("%d.%d.%x", s.clock, s.seq, sha256.Sum256([]byte(strconv.Itoa(s.seq))))[:48]
	s.triggers[id] = time.Now().Add(s.o.TriggerTTL)
	if team != "" {
		s.trigTeam[id] = team
	}
	return id
}

// NewResponseURL issues a response URL on this server, of no channel and
// no source message: what it posts is only in Responses.
func (s *Server) NewResponseURL() string { return s.responseURL(origin{}) }

// origin is where an interaction happened: the channel, the person, and
// the message it came from (none for a slash command).
type origin struct {
	channel, user string
	// source is the ts of the message: a stored message, or (ephemeral)
	// an answer posted through a response URL (Responses).
	source    string
	ephemeral bool
}

// responseURL issues a response URL for an interaction at o.
func (s *Server) responseURL(o origin) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID("R")
	if s.respURLs == nil {
		s.respURLs = map[string]*responseURL{}
	}
	s.respURLs[id] = &responseURL{issued: s.now(), origin: o}
	return s.http.URL + "/response/" + id
}

// now is the fake's clock (Options.Now).
func (s *Server) now() time.Time {
	if s.o.Now != nil {
		return s.o.Now()
	}
	return time.Now()
}

// Response URL limits: "up to five times within 30 minutes".
// https://docs.slack.dev/interactivity/handling-user-interaction
const (
	maxResponseURLUses = 5
	responseURLLife    = 30 * time.Minute
)

type responseURL struct {
	issued time.Time
	uses   int
	origin
	// last is the ts of the last message posted through the URL: what a
	// slash command's answer replaces or deletes, having no source.
	last string
}

// ---- Web API ----

type apiRequest struct {
	received time.Time
	method   string
	form     url.Values
	json     map[string]any
	raw      []byte
	token    string
	// team is the workspace of token (teams.go).
	team string
}

func (r apiRequest) get(k string) string {
	if r.json != nil {
		switch v := r.json[k].(type) {
		case string:
			return v
		case nil:
		default:
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	return r.form.Get(k)
}

// has reports whether the request names field k at all.
func (r apiRequest) has(k string) bool {
	if r.json != nil {
		if _, ok := r.json[k]; ok {
			return true
		}
	}
	_, ok := r.form[k]
	return ok
}

// appMethods take the app-level token; all others the bot token.
var appMethods = map[string]bool{"apps.connections.open": true}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	req := apiRequest{received: time.Now(), method: r.PathValue("method")}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	req.raw = body
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req.json); err != nil {
				s.answer(w, req, 200, map[string]any{"ok": false, "error": "invalid_json"})
				return
			}
		}
		req.form = url.Values{}
	default:
		req.form, _ = url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			req.form = r.URL.Query()
		}
	}
	if req.method == "oauth.v2.access" {
		// The app authenticates with its client id and secret, not a token.
		s.answer(w, req, 200, s.oauthAccess(r, req))
		return
	}
	req.token = req.form.Get("token")
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		req.token = auth
	}
	if req.token == "" {
		s.answer(w, req, 200, errResp("not_authed"))
		return
	}
	if appMethods[req.method] != strings.HasPrefix(req.token, "xapp-") {
		s.answer(w, req, 200, errResp("not_allowed_token_type"))
		return
	}
	if appMethods[req.method] {
		if req.token != s.o.AppToken {
			s.answer(w, req, 200, errResp("invalid_auth"))
			return
		}
	} else {
		s.mu.Lock()
		team, code := s.tokenTeam(req.token)
		s.mu.Unlock()
		if code != "" {
			s.answer(w, req, 200, errResp(code))
			return
		}
		req.team = team
	}
	s.mu.Lock()
	var fail *Failure
	if fs := s.failures[req.method]; len(fs) > 0 {
		fail = &fs[0]
		s.failures[req.method] = fs[1:]
	}
	s.mu.Unlock()
	if fail != nil {
		switch {
		case fail.Status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, fail.RetryAfter).Round(time.Second)/time.Second)))
			s.answer(w, req, 429, errResp("ratelimited"))
		case fail.Status >= 500:
			s.record(req, fail.Status, "http_"+strconv.Itoa(fail.Status))
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(fail.Status)
			_, _ = io.WriteString(w, "<html><body>Slack is having trouble</body></html>")
		default:
			s.answer(w, req, 200, errResp(or(fail.Error, "internal_error")))
		}
		return
	}
	var res map[string]any
	status := 200
	switch req.method {
	case "auth.test":
		s.mu.Lock()
		t := s.team(req.team)
		s.mu.Unlock()
		res = map[string]any{"ok": true, "url": "https://fake.slack.com/", "team": t.Name, "user": "threatdesk",
			"team_id": t.ID, "user_id": t.BotUserID, "bot_id": t.BotID}
	case "auth.revoke":
		res = s.authRevoke(req)
	case "pins.add":
		res = s.pinsAdd(req)
	case "apps.connections.open":
		s.mu.Lock()
		s.opens++
		s.mu.Unlock()
		res = map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(s.http.URL, "http") + "/link/?ticket=" + s.NewTrigger()[:12]}
	case "chat.postMessage":
		var h *hold
		var m Message
		res, status, h, m = s.postMessage(w, req)
		if h != nil {
			s.withhold(w, r, req, h, m)
			return
		}
	case "chat.update":
		res = s.update(req)
	case "chat.postEphemeral":
		res = s.postEphemeral(req)
	case "views.open":
		res = s.viewsOpen(req)
	case "views.publish":
		res = s.viewsPublish(req)
	case "users.info":
		res = s.usersInfo(req)
	case "conversations.history", "conversations.replies":
		if wait := s.readTooSoon(req); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			res, status = errResp("ratelimited"), http.StatusTooManyRequests
			break
		}
		if req.method == "conversations.history" {
			res = s.history(req)
		} else {
			res = s.replies(req)
		}
	case "conversations.info":
		res = s.conversationInfo(req)
	case "conversations.members":
		res = s.conversationMembers(req)
	case "conversations.open":
		res = s.conversationsOpen(req)
	case "files.getUploadURLExternal":
		res = s.getUploadURL(req)
	case "files.completeUploadExternal":
		res = s.completeUpload(req)
	case "files.info":
		res = s.filesInfo(req)
	case "chat.getPermalink":
		res = s.permalink(req)
	default:
		s.violate("unknown Web API method %q", req.method)
		res = errResp("unknown_method")
	}
	s.answer(w, req, status, res)
}

// readTooSoon counts a history read that breaks HistoryInterval and says
// how long until the next is allowed; 0 takes the read.
func (s *Server) readTooSoon(req apiRequest) time.Duration {
	iv := s.o.HistoryInterval
	if iv <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, now := or(req.team, s.o.TeamID)+"/"+req.method, time.Now()
	if last, ok := s.lastRead[k]; ok && now.Sub(last) < iv {
		s.rateHits++
		return iv - now.Sub(last)
	}
	s.lastRead[k] = now
	return 0
}

func errResp(code string) map[string]any { return map[string]any{"ok": false, "error": code} }

func (s *Server) record(req apiRequest, status int, code string) {
	c := Call{Method: req.method, Received: req.received, At: time.Now(), Form: req.form, Status: status, Error: code, Team: req.team}
	if req.json != nil {
		c.JSON = append(json.RawMessage(nil), req.raw...)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *Server) answer(w http.ResponseWriter, req apiRequest, status int, res map[string]any) {
	code, _ := res["error"].(string)
	s.record(req, status, code)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

// channelFor checks a channel exists in team (the token's; "" for the
// primary team) and the bot is in it. Another team's channel is not found,
// as Slack answers for a conversation the token cannot see.
// historyScope is the scope reading c's history needs, or "" when the app
// has it (Options.Scopes).
func (s *Server) historyScope(c Channel) string {
	need := "channels:history"
	switch {
	case c.IM:
		need = "im:history"
	case c.Private:
		need = "groups:history"
	}
	if s.o.Scopes == nil || slices.Contains(s.o.Scopes, need) {
		return ""
	}
	return need
}

// missingScope is Slack's answer to a method the app lacks a scope for.
func (s *Server) missingScope(need string) map[string]any {
	r := errResp("missing_scope")
	r["needed"], r["provided"] = need, strings.Join(s.o.Scopes, ",")
	return r
}

func (s *Server) channelFor(id, team string) (Channel, string) {
	c, ok := s.channels[id]
	switch {
	case id == "":
		return c, "channel_not_found"
	case !ok:
		return c, "channel_not_found"
	case s.teamOf(id) != or(team, s.o.TeamID):
		return c, "channel_not_found"
	case c.NotMember:
		return c, "not_in_channel"
	}
	return c, ""
}

func (s *Server) postMessage(w http.ResponseWriter, req apiRequest) (map[string]any, int, *hold, Message) {
	ch := req.get("channel")
	text, blocks, threadTS := req.get("text"), req.get("blocks"), req.get("thread_ts")
	if code := s.checkMessage(req.method, text, blocks); code != "" {
		return errResp(code), 200, nil, Message{}
	}
	text, clipped := clip(text)
	meta, code := s.checkMetadata(req.method, req.get("metadata"))
	if code != "" {
		return errResp(code), 200, nil, Message{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.channelFor(ch, req.team); code != "" {
		return errResp(code), 200, nil, Message{}
	}
	if threadTS != "" {
		parent := s.find(ch, threadTS)
		if parent == nil {
			s.mu.Unlock()
			s.violate("chat.postMessage: thread_ts %s is not a message in %s", threadTS, ch)
			s.mu.Lock()
			return errResp("thread_not_found"), 200, nil, Message{}
		}
		if parent.ThreadTS != "" && parent.ThreadTS != parent.TS {
			threadTS = parent.ThreadTS // Slack threads on the parent
		}
	}
	now := time.Now()
	if iv := s.o.ChannelInterval; iv > 0 {
		if last, ok := s.lastPost[ch]; ok && now.Sub(last) < iv {
			s.rateHits++
			wait := iv - now.Sub(last)
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			return errResp("ratelimited"), http.StatusTooManyRequests, nil, Message{}
		}
		s.lastPost[ch] = now
	}
	botUser, botID := s.bot(req.team)
	m := &Message{Channel: ch, TS: s.nextTS(), ThreadTS: threadTS, User: botUser, BotID: botID, Team: s.teamOf(ch),
		Text: text, Blocks: rawOrNil(s.withBlockIDs(blocks)), PostedAt: now, Metadata: meta, Notified: notified(text, blocks)}
	s.messages = append(s.messages, m)
	for i, h := range s.holds {
		if h.keep == nil || h.keep(*m) {
			s.holds = append(s.holds[:i], s.holds[i+1:]...)
			return nil, 0, h, *m
		}
	}
	return warnTruncated(map[string]any{"ok": true, "channel": ch, "ts": m.TS, "message": msgJSON(m, false)}, clipped), 200, nil, Message{}
}

// checkMetadata checks message metadata as chat.postMessage takes it: a
// JSON object with an event_type string and an event_payload object
// (https://docs.slack.dev/messaging/message-metadata). It returns the
// metadata to store, or the error code Slack would answer.
func (s *Server) checkMetadata(method, raw string) (json.RawMessage, string) {
	if raw == "" {
		return nil, ""
	}
	var md struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(raw), &md); err != nil || md.EventType == "" || md.EventPayload == nil {
		s.violate("%s: metadata is not {\"event_type\": string, \"event_payload\": object}: %s", method, raw)
		return nil, "invalid_metadata_format"
	}
	return json.RawMessage(raw), ""
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// withBlockIDs gives every block without a block_id one, as Slack does when
// it stores a message (interaction payloads always carry a block_id).
func (s *Server) withBlockIDs(blocks string) string {
	var bs []map[string]any
	if blocks == "" || json.Unmarshal([]byte(blocks), &bs) != nil {
		return blocks
	}
	for i, b := range bs {
		if id, _ := b["block_id"].(string); id == "" {
			b["block_id"] = fmt.Sprintf("b%d%s", i, strconv.FormatInt(int64(s.seq*7919+i), 36))
		}
	}
	out, err := json.Marshal(bs)
	if err != nil {
		return blocks
	}
	return string(out)
}

// msgJSON is a message as the Web API returns it; its metadata only when
// asked for (include_all_metadata).
func msgJSON(m *Message, withMetadata bool) map[string]any {
	out := map[string]any{"type": "message", "text": m.Text, "ts": m.TS, "user": m.User}
	if m.Team != "" && m.BotID == "" {
		out["team"] = m.Team // the author's workspace
	}
	if m.BotID != "" {
		out["bot_id"] = m.BotID
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if withMetadata && len(m.Metadata) > 0 {
		out["metadata"] = m.Metadata
	}
	return out
}

func (s *Server) update(req apiRequest) map[string]any {
	ch, ts := req.get("channel"), req.get("ts")
	text, blocks := req.get("text"), req.get("blocks")
	if code := s.checkMessage(req.method, text, blocks); code != "" {
		return errResp(code)
	}
	text, clipped := clip(text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.channelFor(ch, req.team); code != "" {
		return errResp(code)
	}
	m := s.find(ch, ts)
	if m == nil {
		return errResp("message_not_found")
	}
	if botUser, _ := s.bot(req.team); m.User != botUser {
		return errResp("cant_update_message")
	}
	// Without blocks, Slack keeps the message's blocks (chat.update: "If
	// you don't include this field, the message's previous blocks will be
	// retained"), their buttons too.
	m.Text = text
	if req.has("blocks") {
		m.Blocks = rawOrNil(s.withBlockIDs(blocks))
	}
	m.Edits++
	return warnTruncated(map[string]any{"ok": true, "channel": ch, "ts": ts, "text": text, "message": msgJSON(m, false)}, clipped)
}

func (s *Server) postEphemeral(req apiRequest) map[string]any {
	ch, user := req.get("channel"), req.get("user")
	text, blocks := req.get("text"), req.get("blocks")
	if code := s.checkMessage(req.method, text, blocks); code != "" {
		return errResp(code)
	}
	text, clipped := clip(text)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.channelFor(ch, req.team)
	if code != "" {
		return errResp(code)
	}
	if !s.isMember(c, user) {
		// "user_not_in_channel: Cannot post user messages to a channel
		// they are not in." https://docs.slack.dev/reference/methods/chat.postEphemeral
		return errResp("user_not_in_channel")
	}
	botUser, botID := s.bot(req.team)
	m := &Message{Channel: ch, TS: s.nextTS(), ThreadTS: req.get("thread_ts"), User: botUser, BotID: botID, Team: s.teamOf(ch),
		Text: text, Blocks: rawOrNil(blocks), Ephemeral: true, To: user, PostedAt: time.Now()}
	s.messages = append(s.messages, m)
	return warnTruncated(map[string]any{"ok": true, "message_ts": m.TS}, clipped)
}

func (s *Server) viewsOpen(req apiRequest) map[string]any {
	trigger := req.get("trigger_id")
	view, _ := req.json["view"].(map[string]any)
	if view == nil {
		return errResp("invalid_arguments")
	}
	raw, _ := json.Marshal(view)
	if code := s.checkView(view); code != "" {
		return errResp(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.triggers[trigger]
	switch {
	case !ok:
		return errResp("invalid_trigger_id")
	case s.usedTrig[trigger]:
		return errResp("exchanged_trigger_id")
	case time.Now().After(exp):
		s.mu.Unlock()
		s.violate("views.open: trigger_id used %s after it expired", time.Since(exp).Round(time.Millisecond))
		s.mu.Lock()
		return errResp("expired_trigger_id")
	}
	if tt := s.trigTeam[trigger]; tt != "" && tt != or(req.team, s.o.TeamID) {
		return errResp("invalid_trigger_id") // a trigger of another workspace
	}
	s.usedTrig[trigger] = true
	v := View{ID: s.nextID("V"), TriggerID: trigger, View: raw, At: time.Now(), Team: or(s.trigTeam[trigger], s.o.TeamID)}
	s.views = append(s.views, v)
	out := map[string]any{}
	for k, val := range view {
		out[k] = val
	}
	out["id"] = v.ID
	out["team_id"] = v.Team
	return map[string]any{"ok": true, "view": out}
}

func (s *Server) usersInfo(req apiRequest) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[req.get("user")]
	if !ok || or(u.Team, s.o.TeamID) != or(req.team, s.o.TeamID) && !s.sharesExt(or(req.team, s.o.TeamID)) {
		return errResp("user_not_found")
	}
	return map[string]any{"ok": true, "user": map[string]any{
		"id": u.ID, "team_id": or(u.Team, s.o.TeamID), "name": u.Name, "real_name": u.RealName, "deleted": u.Deactivated,
		"profile": map[string]any{"display_name": u.DisplayName, "real_name": u.RealName},
	}}
}

// sharesExt reports whether team has a channel shared by Slack Connect:
// its apps then see users of other workspaces too (users.info gives their
// own team_id). s.mu is held.
func (s *Server) sharesExt(team string) bool {
	for _, c := range s.channels {
		if c.ExtShared && s.teamOf(c.ID) == team {
			return true
		}
	}
	return false
}

// conversations.history and conversations.replies: pages of at most limit
// messages (default 100 and 1000, at most 999 and 1000), between oldest and
// latest (exclusive unless inclusive), with a next_cursor while more remain.
// history returns a channel's top-level messages newest first; replies a
// thread's parent first, then its replies oldest first.
// https://docs.slack.dev/reference/methods/conversations.history
// https://docs.slack.dev/reference/methods/conversations.replies

// page is one request's window and paging.
type page struct {
	oldest, latest string
	inclusive      bool
	limit          int
	after          string // cursor: the ts to continue from (inclusive)
	metadata       bool
}

func readPage(req apiRequest, defLimit, maxLimit int) (page, string) {
	p := page{oldest: req.get("oldest"), latest: req.get("latest"), limit: defLimit,
		inclusive: truthy(req.get("inclusive")), metadata: truthy(req.get("include_all_metadata"))}
	if l := req.get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return p, "invalid_limit"
		}
		if n > 0 {
			p.limit = min(n, maxLimit)
		}
	}
	if c := req.get("cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		ts, ok := strings.CutPrefix(string(b), "next_ts:")
		if err != nil || !ok {
			return p, "invalid_cursor"
		}
		p.after = ts
	}
	return p, ""
}

func truthy(v string) bool { return v == "1" || v == "true" }

// in reports whether ts is inside the page's time window.
func (p page) in(ts string) bool {
	if p.oldest != "" {
		if c := compareTS(ts, p.oldest); c < 0 || (c == 0 && !p.inclusive) {
			return false
		}
	}
	if p.latest != "" {
		if c := compareTS(ts, p.latest); c > 0 || (c == 0 && !p.inclusive) {
			return false
		}
	}
	return true
}

// compareTS orders two message timestamps ("1700000000.000123").
func compareTS(a, b string) int {
	split := func(ts string) (int64, int64) {
		sec, frac, _ := strings.Cut(ts, ".")
		x, _ := strconv.ParseInt(sec, 10, 64)
		frac = (frac + "000000")[:6]
		y, _ := strconv.ParseInt(frac, 10, 64)
		return x, y
	}
	as, af := split(a)
	bs, bf := split(b)
	if as != bs {
		return cmp.Compare(as, bs)
	}
	return cmp.Compare(af, bf)
}

// paged cuts msgs (already in answer order, each checked by p.in) at the
// cursor and the limit.
func (p page) paged(msgs []*Message, newestFirst bool) map[string]any {
	start := 0
	if p.after != "" {
		start = len(msgs)
		for i, m := range msgs {
			c := compareTS(m.TS, p.after)
			if (newestFirst && c <= 0) || (!newestFirst && c >= 0) {
				start = i
				break
			}
		}
	}
	msgs = msgs[start:]
	more := len(msgs) > p.limit
	out := []any{}
	for i, m := range msgs {
		if i == p.limit {
			break
		}
		out = append(out, msgJSON(m, p.metadata))
	}
	res := map[string]any{"ok": true, "messages": out, "has_more": more}
	if more {
		res["response_metadata"] = map[string]any{"next_cursor": base64.StdEncoding.EncodeToString([]byte("next_ts:" + msgs[p.limit].TS))}
	}
	return res
}

// distributedPage is the page of an app distributed outside the
// Marketplace (HistoryInterval): 15 messages, by default and at most.
const distributedPage = 15

func (s *Server) history(req apiRequest) map[string]any {
	def, most := 100, 999
	if s.o.HistoryInterval > 0 {
		def, most = distributedPage, distributedPage
	}
	p, code := readPage(req, def, most)
	if code != "" {
		return errResp(code)
	}
	ch := req.get("channel")
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.channelFor(ch, req.team)
	if code != "" {
		return errResp(code)
	}
	if need := s.historyScope(c); need != "" {
		return s.missingScope(need)
	}
	var msgs []*Message
	for i := len(s.messages) - 1; i >= 0; i-- {
		m := s.messages[i]
		if m.Channel == ch && !m.Ephemeral && (m.ThreadTS == "" || m.ThreadTS == m.TS) && p.in(m.TS) {
			msgs = append(msgs, m)
		}
	}
	return p.paged(msgs, true)
}

func (s *Server) replies(req apiRequest) map[string]any {
	def, most := 1000, 1000
	if s.o.HistoryInterval > 0 {
		def, most = distributedPage, distributedPage
	}
	p, code := readPage(req, def, most)
	if code != "" {
		return errResp(code)
	}
	ch, ts := req.get("channel"), req.get("ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.channelFor(ch, req.team)
	if code != "" {
		return errResp(code)
	}
	if need := s.historyScope(c); need != "" {
		return s.missingScope(need)
	}
	parent := s.find(ch, ts)
	if parent == nil {
		return errResp("thread_not_found")
	}
	// The parent comes first on the first page whatever the window.
	var msgs []*Message
	if p.after == "" {
		msgs = append(msgs, parent)
	}
	for _, m := range s.messages {
		if m.Channel == ch && m.ThreadTS == ts && m.TS != ts && !m.Ephemeral && p.in(m.TS) {
			msgs = append(msgs, m)
		}
	}
	return p.paged(msgs, false)
}

func (s *Server) conversationInfo(req apiRequest) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[req.get("channel")]
	if !ok || s.teamOf(c.ID) != or(req.team, s.o.TeamID) || (c.Private && c.NotMember) {
		return errResp("channel_not_found") // a private channel the bot is not in is not there for it
	}
	return map[string]any{"ok": true, "channel": map[string]any{"id": c.ID, "name": c.Name, "is_private": c.Private, "is_member": !c.NotMember,
		"is_shared": c.ExtShared, "is_ext_shared": c.ExtShared}}
}

// conversationMembers answers conversations.members: the channel's member
// ids in pages of limit (default 100, at most 1000) with a next_cursor
// while more remain (https://docs.slack.dev/reference/methods/conversations.members).
func (s *Server) conversationMembers(req apiRequest) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[req.get("channel")]
	if !ok || s.teamOf(c.ID) != or(req.team, s.o.TeamID) || (c.Private && c.NotMember) {
		return errResp("channel_not_found") // a private channel the bot is not in is not there for it
	}
	members := c.Members
	if members == nil {
		for id, u := range s.users {
			if or(u.Team, s.o.TeamID) == s.teamOf(c.ID) {
				members = append(members, id)
			}
		}
		sort.Strings(members)
	}
	var in []string
	for _, id := range members {
		if !s.left[c.ID+"/"+id] {
			in = append(in, id)
		}
	}
	limit, _ := strconv.Atoi(req.get("limit"))
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	from, _ := strconv.Atoi(req.get("cursor"))
	from = min(max(from, 0), len(in))
	to := min(from+limit, len(in))
	next := ""
	if to < len(in) {
		next = strconv.Itoa(to)
	}
	return map[string]any{"ok": true, "members": append([]string{}, in[from:to]...),
		"response_metadata": map[string]any{"next_cursor": next}}
}

// isMember reports whether user is in c, as conversations.members lists
// it: a direct message's person; c.Members, or (nil) every known user of
// c's team (anyone when the fake knows no users); less those who left.
// s.mu is held.
func (s *Server) isMember(c Channel, user string) bool {
	switch {
	case user == "" || s.left[c.ID+"/"+user]:
		return false
	case c.IM && c.User != "":
		return user == c.User
	case c.Members != nil:
		return slices.Contains(c.Members, user)
	case len(s.users) == 0:
		return true
	}
	u, ok := s.users[user]
	return ok && or(u.Team, s.o.TeamID) == s.teamOf(c.ID)
}

// Leave takes user out of channel, as when they leave it or are removed.
func (s *Server) Leave(channel, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left == nil {
		s.left = map[string]bool{}
	}
	s.left[channel+"/"+user] = true
}

// Deactivate deactivates user's account: users.info then says deleted.
func (s *Server) Deactivate(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	u.Deactivated = true
	s.users[user] = u
}

// serveResponse answers a POST to a response URL as Slack documents it
// (https://docs.slack.dev/interactivity/handling-user-interaction):
// "replace_original": true replaces the message the interaction came from
// (in place, whether it is in the channel or ephemeral), and
// "delete_original": true deletes it; otherwise (absent or false) a new
// message is posted, visible to the channel with "response_type":
// "in_channel", to the person who acted only when ephemeral (the
// default). A slash command has no source message: its URL replaces or
// deletes the last message it posted. A URL answers at most five times,
// within 30 minutes of the interaction.
func (s *Server) serveResponse(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ResponseType    string          `json:"response_type"`
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ThreadTS        string          `json:"thread_ts"`
		ReplaceOriginal json.RawMessage `json:"replace_original"`
		DeleteOriginal  json.RawMessage `json:"delete_original"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.violate("response URL: body is not JSON: %v", err)
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	replace, del := jsonTrue(body.ReplaceOriginal), jsonTrue(body.DeleteOriginal)
	blocks := ""
	if len(body.Blocks) > 0 && string(body.Blocks) != "null" {
		blocks = string(body.Blocks)
	}
	if !del {
		if code := s.checkMessage("response_url", body.Text, blocks); code != "" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(errResp(code))
			return
		}
	}
	body.Text, _ = clip(body.Text)
	if body.ResponseType != "in_channel" {
		body.ResponseType = "ephemeral"
	}
	id := r.PathValue("id")
	s.mu.Lock()
	u, known := s.respURLs[id]
	var refused, why string
	switch {
	case !known:
		refused = "invalid_url"
	case u.uses >= maxResponseURLUses:
		refused = "used_url"
	case s.now().Sub(u.issued) > responseURLLife:
		refused = "expired_url"
	case del || replace:
		if !s.changeOriginal(u, del, body.Text, blocks) {
			refused, why = "message_not_found", "there is no original message to replace or delete (deleted already, or a slash command's URL that posted nothing yet)"
			break
		}
		u.uses++
	default:
		u.uses++
		now := time.Now()
		// Stored as Slack shows it: every block has a block_id.
		resp := Response{ID: id, TS: s.nextTS(), ResponseType: body.ResponseType, Text: body.Text,
			Blocks: rawOrNil(s.withBlockIDs(blocks)), At: now, Channel: u.channel, User: u.user}
		s.responses = append(s.responses, resp)
		u.last = resp.TS
		if resp.ResponseType == "in_channel" && u.channel != "" {
			// A message in the channel like any other, even one the app is
			// not in (that is what response URLs are for).
			thread := ""
			if body.ThreadTS != "" && s.find(u.channel, body.ThreadTS) != nil {
				thread = body.ThreadTS
			}
			botUser, botID := s.bot(s.teamOf(u.channel))
			s.messages = append(s.messages, &Message{Channel: u.channel, TS: resp.TS, ThreadTS: thread, User: botUser, BotID: botID,
				Team: s.teamOf(u.channel), Text: resp.Text, Blocks: resp.Blocks, PostedAt: now, Notified: notified(body.Text, blocks)})
		}
	}
	s.mu.Unlock()
	switch refused {
	case "":
	case "message_not_found":
		s.violate("response URL %s: %s", id, why)
		http.Error(w, refused, http.StatusNotFound)
		return
	default:
		s.violate("response URL %s: %s (Slack allows %d uses within %s)", id, refused, maxResponseURLUses, responseURLLife)
		http.Error(w, refused, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// jsonTrue reports whether a JSON value is true or "true" (Slack takes
// both for replace_original and delete_original).
func jsonTrue(v json.RawMessage) bool {
	return string(v) == "true" || string(v) == `"true"`
}

// changeOriginal replaces (text, blocks) or deletes (del) the message u's
// interaction came from: a stored message, an answer posted through a
// response URL, or both (an in_channel answer). It reports whether there
// was one. s.mu is held.
func (s *Server) changeOriginal(u *responseURL, del bool, text, blocks string) bool {
	ts := cmp.Or(u.source, u.last)
	if ts == "" {
		return false
	}
	found := false
	if !u.ephemeral && u.channel != "" {
		for i, m := range s.messages {
			if m.Channel != u.channel || m.TS != ts || m.Ephemeral {
				continue
			}
			found = true
			if del {
				s.messages = slices.Delete(s.messages, i, i+1)
			} else {
				m.Text, m.Blocks = text, rawOrNil(s.withBlockIDs(blocks))
				m.Edits++
			}
			break
		}
	}
	for i := range s.responses {
		r := &s.responses[i]
		if r.TS != ts {
			continue
		}
		found = true
		if del {
			s.responses = slices.Delete(s.responses, i, i+1)
		} else {
			r.Text, r.Blocks = text, rawOrNil(s.withBlockIDs(blocks))
			r.Edits++
		}
		break
	}
	return found
}

// ---- Socket Mode ----

type sockConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
	once sync.Once
}

func (c *sockConn) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *sockConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.wmu.Lock()
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = c.ws.Close()
	})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &sockConn{ws: ws, done: make(chan struct{})}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.accepted++
	n := len(s.conns)
	select {
	case <-s.connected:
	default:
		close(s.connected)
	}
	s.mu.Unlock()
	s.changes.Notify()
	_ = c.write(map[string]any{"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "slackfake", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": "A0FAKE"}})
	go func() {
		t := time.NewTicker(s.o.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				c.wmu.Lock()
				err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
				c.wmu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		c.close()
		s.mu.Lock()
		for i, x := range s.conns {
			if x == c {
				s.conns = append(s.conns[:i], s.conns[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		s.changes.Notify()
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(data, &ack); err != nil || ack.EnvelopeID == "" {
			s.violate("Socket Mode: unreadable message from the app: %q", data)
			continue
		}
		if len(data) >= 20*1024 {
			s.violate("Socket Mode: ack for %s is %d bytes; Slack drops responses of 20KB or more", ack.EnvelopeID, len(data))
		}
		s.checkAckPayload(ack.EnvelopeID, ack.Payload)
		s.mu.Lock()
		ch, ok := s.waiters[ack.EnvelopeID]
		delete(s.waiters, ack.EnvelopeID)
		s.mu.Unlock()
		if !ok {
			s.violate("Socket Mode: ack for unknown or already acknowledged envelope %s", ack.EnvelopeID)
			continue
		}
		ch <- received{ack: Ack{EnvelopeID: ack.EnvelopeID, Payload: ack.Payload}, at: at}
	}
}

// checkAckPayload holds a message carried in an ack (a slash command's
// answer) to the same rules as a posted one; view answers (response_action)
// are left to checkView's callers.
func (s *Server) checkAckPayload(envelope string, payload json.RawMessage) {
	if len(payload) == 0 || string(payload) == "null" || string(payload) == "{}" {
		return
	}
	var p struct {
		Text           string            `json:"text"`
		Blocks         json.RawMessage   `json:"blocks"`
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		s.violate("Socket Mode: ack payload for %s is not an object: %v", envelope, err)
		return
	}
	if p.ResponseAction == "errors" {
		s.mu.Lock()
		ids, ok := s.inputs[envelope]
		delete(s.inputs, envelope)
		s.mu.Unlock()
		for k := range p.Errors {
			if ok && !slices.Contains(ids, k) {
				s.violate("Socket Mode: ack for %s has an error under %q, which is no input block of the submitted view (%v): Slack refuses it", envelope, k, ids)
			}
		}
	}
	if p.ResponseAction != "" {
		return
	}
	blocks := string(p.Blocks)
	if blocks == "null" {
		blocks = ""
	}
	s.checkMessage("Socket Mode ack "+envelope, p.Text, blocks)
}

// submittedInputs returns the input blocks' ids of a view_submission
// payload's view; ok is false for any other payload.
func submittedInputs(payload any) (ids []string, ok bool) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, false
	}
	var p struct {
		Type string `json:"type"`
		View struct {
			Blocks []struct {
				Type    string `json:"type"`
				BlockID string `json:"block_id"`
			} `json:"blocks"`
		} `json:"view"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Type != "view_submission" {
		return nil, false
	}
	for _, b := range p.View.Blocks {
		if b.Type == "input" {
			ids = append(ids, b.BlockID)
		}
	}
	return ids, true
}

// WaitConnected waits until an app has opened a Socket Mode connection.
func (s *Server) WaitConnected(ctx context.Context) error {
	select {
	case <-s.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a Socket Mode connection: %w", ctx.Err())
	}
}

// Opens counts apps.connections.open calls that succeeded.
func (s *Server) Opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

// Accepted counts the Socket Mode connections the fake ever accepted (a
// reconnection has happened once it grows, whatever Connections says while
// the old connection closes).
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Connections counts open Socket Mode connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Envelope is a Socket Mode request.
type Envelope struct {
	EnvelopeID             string `json:"envelope_id"`
	Type                   string `json:"type"`
	Payload                any    `json:"payload"`
	AcceptsResponsePayload bool   `json:"accepts_response_payload"`
	RetryAttempt           int    `json:"retry_attempt"`
	RetryReason            string `json:"retry_reason"`
}

type received struct {
	ack Ack
	at  time.Time
}

// ErrNotAcked is returned when an envelope was not acknowledged in time.
var ErrNotAcked = errors.New("envelope not acknowledged within the ack timeout")

// Send sends an envelope on the newest connection and waits for its ack.
// An envelope not acknowledged within AckTimeout is a violation. raw, when
// not nil, is sent instead of env as is (for malformed envelopes); its
// envelope id must be env.EnvelopeID.
func (s *Server) Send(ctx context.Context, env Envelope, raw []byte) (Ack, error) {
	return s.send(ctx, -1, env, raw)
}

// SendTo is Send on the i-th open Socket Mode connection, oldest first.
// Slack spreads an app's envelopes over its open connections (up to ten,
// e.g. one per replica) and may deliver a retry on another connection than
// the first attempt; SendTo lets a test choose.
// https://api.slack.com/apis/connections/socket (Using multiple connections)
func (s *Server) SendTo(ctx context.Context, i int, env Envelope, raw []byte) (Ack, error) {
	if i < 0 {
		return Ack{}, fmt.Errorf("connection index %d: must not be negative", i)
	}
	return s.send(ctx, i, env, raw)
}

// send sends on connection i (oldest first), or on the newest when i < 0.
func (s *Server) send(ctx context.Context, i int, env Envelope, raw []byte) (Ack, error) {
	s.mu.Lock()
	if env.EnvelopeID == "" {
		env.EnvelopeID = fmt.Sprintf("%08x-fake-%04d", s.clock, s.seq+1)
		s.seq++
	}
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return Ack{}, errors.New("no Socket Mode connection")
	}
	if ids, ok := submittedInputs(env.Payload); ok {
		s.inputs[env.EnvelopeID] = ids
	}
	if i < 0 {
		i = len(s.conns) - 1
	}
	if i >= len(s.conns) {
		n := len(s.conns)
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("no Socket Mode connection %d: %d open", i, n)
	}
	c := s.conns[i]
	ch := make(chan received, 1)
	s.waiters[env.EnvelopeID] = ch
	s.mu.Unlock()
	sent := time.Now()
	var err error
	if raw != nil {
		c.wmu.Lock()
		err = c.ws.WriteMessage(websocket.TextMessage, raw)
		c.wmu.Unlock()
	} else {
		err = c.write(env)
	}
	if err != nil {
		return Ack{}, fmt.Errorf("send envelope: %w", err)
	}
	t := time.NewTimer(s.o.AckTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		a := r.ack
		a.Latency = r.at.Sub(sent)
		s.mu.Lock()
		s.acks = append(s.acks, a)
		s.mu.Unlock()
		return a, nil
	case <-t.C:
		s.mu.Lock()
		delete(s.waiters, env.EnvelopeID)
		s.mu.Unlock()
		s.violate("Socket Mode: envelope %s (%s) not acknowledged within %s", env.EnvelopeID, env.Type, s.o.AckTimeout)
		return Ack{}, ErrNotAcked
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
}

// Disconnect asks the app to reconnect, as Slack does before it rotates a
// connection ("disconnect" with reason "refresh_requested").
func (s *Server) Disconnect() {
	s.mu.Lock()
	conns := append([]*sockConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.write(map[string]any{"type": "disconnect", "reason": "refresh_requested",
			"debug_info": map[string]any{"host": "slackfake"}})
	}
}

// Drop closes every Socket Mode connection abruptly.
func (s *Server) Drop() {
	s.mu.Lock()
	conns := append([]*sockConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
}

// SlashCommand is what a person typed.
type SlashCommand struct {
	Command   string // default "/experts"
	Text      string // as Slack sends it: entities encoded, mentions as <@U123|name>
	UserID    string
	UserName  string
	ChannelID string
	TeamID    string // default the fake's team
}

// CommandPayload builds a slash command payload with a fresh trigger_id
// and response URL (field names and values as Slack sends them).
func (s *Server) CommandPayload(c SlashCommand) map[string]string {
	ch := s.channel(c.ChannelID)
	team := or(c.TeamID, s.TeamOf(c.ChannelID))
	return map[string]string{
		"token": "deprecated-verification-token", "team_id": team, "team_domain": "fake",
		"channel_id": c.ChannelID, "channel_name": or(ch.Name, "privategroup"), "user_id": c.UserID,
		"user_name": or(c.UserName, strings.ToLower(c.UserID)), "command": or(c.Command, "/experts"), "text": c.Text,
		"api_app_id": "A0FAKE", "is_enterprise_install": "false",
		"response_url": s.responseURL(origin{channel: c.ChannelID, user: c.UserID}), "trigger_id": s.newTrigger(team),
	}
}

func (s *Server) channel(id string) Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[id]
}

// Command sends a slash command over Socket Mode and waits for its ack.
func (s *Server) Command(ctx context.Context, c SlashCommand) (Ack, error) {
	return s.Send(ctx, Envelope{Type: "slash_commands", Payload: s.CommandPayload(c), AcceptsResponsePayload: true}, nil)
}

// Interactive sends an interaction payload over Socket Mode.
func (s *Server) Interactive(ctx context.Context, payload map[string]any) (Ack, error) {
	accepts := payload["type"] == "view_submission"
	return s.Send(ctx, Envelope{Type: "interactive", Payload: payload, AcceptsResponsePayload: accepts}, nil)
}

// Event sends an Events API callback over Socket Mode; retry > 0 marks a
// redelivery of the same event.
func (s *Server) Event(ctx context.Context, callback map[string]any, retry int) (Ack, error) {
	env := Envelope{Type: "events_api", Payload: callback, RetryAttempt: retry}
	if retry > 0 {
		env.RetryReason = "timeout"
	}
	return s.Send(ctx, env, nil)
}

// UserMessage stores a message a person posts (in a thread when threadTS is
// set) and returns its Events API callback, as Slack would deliver it.
func (s *Server) UserMessage(channel, threadTS, user, text string) (Message, map[string]any) {
	s.mu.Lock()
	c := s.channels[channel]
	team := s.teamOf(channel)
	author := team
	if u, ok := s.users[user]; ok && c.ExtShared && u.Team != "" {
		author = u.Team // a guest from another workspace
	}
	m := &Message{Channel: channel, TS: s.nextTS(), ThreadTS: threadTS, User: user, Text: text, PostedAt: time.Now(), Team: author}
	s.messages = append(s.messages, m)
	evID := s.nextID("Ev")
	s.mu.Unlock()
	ctype := "channel"
	if c.Private {
		ctype = "group"
	}
	ev := map[string]any{"type": "message", "channel": channel, "user": user, "text": text, "ts": m.TS,
		"event_ts": m.TS, "channel_type": ctype, "team": author}
	if c.ExtShared {
		ev["user_team"] = author
	}
	if threadTS != "" {
		ev["thread_ts"] = threadTS
		if p, ok := s.Message(channel, threadTS); ok {
			ev["parent_user_id"] = p.User
		}
	}
	cb := s.CallbackFor(team, evID, ev) // delivered through the channel's workspace's install
	if c.ExtShared {
		cb["is_ext_shared_channel"] = true
	}
	return *m, cb
}

// Callback wraps an inner event in an Events API event_callback, of the
// team of the event's channel (the primary team without one).
func (s *Server) Callback(eventID string, inner map[string]any) map[string]any {
	ch, _ := inner["channel"].(string)
	return s.CallbackFor(s.TeamOf(ch), eventID, inner)
}

// Press builds the block_actions payload of user pressing the button whose
// action_id is action (or action/N) on a stored message.
func (s *Server) Press(channel, ts, user, action string) (map[string]any, error) {
	m, ok := s.Message(channel, ts)
	if !ok {
		return nil, fmt.Errorf("no message %s in %s", ts, channel)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		return nil, fmt.Errorf("message blocks: %w", err)
	}
	for _, b := range blocks {
		if b["type"] != "actions" {
			continue
		}
		els, _ := b["elements"].([]any)
		for _, e := range els {
			el, _ := e.(map[string]any)
			id, _ := el["action_id"].(string)
			if id != action && !strings.HasPrefix(id, action+"/") {
				continue
			}
			act := map[string]any{"type": "button", "action_id": id, "block_id": b["block_id"], "text": el["text"],
				"value": el["value"], "action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), 1)}
			container := map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false}
			if m.ThreadTS != "" {
				container["thread_ts"] = m.ThreadTS
			}
			c := s.channel(channel)
			team := s.TeamOf(channel)
			return map[string]any{
				"type": "block_actions", "token": "deprecated-verification-token", "api_app_id": "A0FAKE",
				// user.team_id is the presser's own workspace: a Slack
				// Connect guest's differs from team.id.
				"user":      map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": s.userTeam(user, team)},
				"team":      map[string]any{"id": team, "domain": "fake"},
				"channel":   map[string]any{"id": channel, "name": c.Name},
				"container": container, "trigger_id": s.newTrigger(team), "response_url": s.responseURL(origin{channel: channel, user: user, source: ts}),
				"message": msgJSON(&m, false), "actions": []any{act}, "state": map[string]any{"values": map[string]any{}},
			}, nil
		}
	}
	return nil, fmt.Errorf("no button %q on message %s", action, ts)
}

// Submit builds the view_submission payload of user submitting the view
// opened by views.open with values by block id.
func (s *Server) Submit(v View, user string, values map[string]string) (map[string]any, error) {
	var view map[string]any
	if err := json.Unmarshal(v.View, &view); err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	state := map[string]any{}
	blocks, _ := view["blocks"].([]any)
	for _, b := range blocks {
		blk, _ := b.(map[string]any)
		if blk["type"] != "input" {
			continue
		}
		id, _ := blk["block_id"].(string)
		el, _ := blk["element"].(map[string]any)
		aid, _ := el["action_id"].(string)
		in := map[string]any{"type": el["type"]}
		val, ok := values[id]
		switch {
		case el["type"] == "static_select" && ok:
			// One chooses among the options; the payload carries the one chosen.
			o, found := optionByValue(el, val)
			if !found {
				return nil, fmt.Errorf("select %q has no option with value %q", id, val)
			}
			in["selected_option"] = o
		case el["type"] == "static_select":
			// Left alone: its initial option, or null.
			in["selected_option"] = nil
			if io, _ := el["initial_option"].(map[string]any); io != nil {
				in["selected_option"] = io
			}
		case ok:
			in["value"] = val
		default:
			in["value"] = nil
		}
		state[id] = map[string]any{aid: in}
	}
	team := or(v.Team, s.o.TeamID)
	view["id"] = v.ID
	view["team_id"] = team
	view["state"] = map[string]any{"values": state}
	view["hash"] = "156663117.cd33ad1f"
	return map[string]any{
		"type": "view_submission", "token": "deprecated-verification-token", "api_app_id": "A0FAKE",
		"team":       map[string]any{"id": team, "domain": "fake"},
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": s.userTeam(user, team)},
		"trigger_id": s.newTrigger(team), "view": view, "response_urls": []any{},
	}, nil
}

// userTeam is the workspace of user, else team.
func (s *Server) userTeam(user, team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[user]; ok && u.Team != "" {
		return u.Team
	}
	return team
}

// ---- HTTP mode ----

// Signer signs requests as Slack does: X-Slack-Signature is "v0=" and the
// hex HMAC-SHA256 of "v0:{timestamp}:{body}" under the signing secret.
type Signer struct {
	Secret string
}

// Signer returns a signer with the fake's signing secret.
func (s *Server) Signer() Signer { return Signer{Secret: s.o.SigningSecret} }

// Sign returns the X-Slack-Signature for body sent at timestamp ts.
func (g Signer) Sign(ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(g.Secret))
	_, _ = fmt.Fprintf(h, "v0:%s:", ts)
	_, _ = h.Write(body)
	return "v0=" + hex.EncodeToString(h.Sum(nil))
}

// Request builds a signed POST of body to target, stamped at.
func (g Signer) Request(ctx context.Context, target, contentType string, body []byte, at time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", g.Sign(ts, body))
	return req, nil
}

// FormBody encodes a slash command payload as Slack's HTTP form body.
func FormBody(fields map[string]string) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v := url.Values{}
	for _, k := range keys {
		v.Set(k, fields[k])
	}
	return []byte(v.Encode())
}

// InteractionBody encodes an interaction payload as Slack's HTTP form body
// (payload=<json>).
func InteractionBody(payload map[string]any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return []byte(url.Values{"payload": {string(b)}}.Encode()), nil
}
