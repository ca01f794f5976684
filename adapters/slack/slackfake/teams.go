package slackfake

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Several workspaces, Add to Slack and uninstalls.
//
// The fake knows its primary team (Options.TeamID, with Options.BotToken)
// and the teams of Options.Teams. Each team has its own bot token and bot
// user; a channel (Channel.Team) and a user (User.Team) belong to one team.
// Every Web API call is made with a token, which names its team: a call
// about another team's channel answers channel_not_found, as Slack does for
// a conversation the token cannot see.
//
// A team without a preset BotToken gets one by installing the app through
// OAuth v2 (https://docs.slack.dev/authentication/installing-with-oauth):
// the app sends the person to GET /oauth/v2/authorize (client_id, scope,
// redirect_uri, state) on the fake's host; the fake shows the approval page,
// and the person's approval (Approve, or a POST of the page's form) sends the
// browser back to redirect_uri with a single-use code and the state; the app
// exchanges the code with oauth.v2.access
// (https://docs.slack.dev/reference/methods/oauth.v2.access) for the team's
// bot token. A workspace that uninstalls the app (Uninstall) has every token
// revoked (calls answer token_revoked) and the app is sent app_uninstalled
// and tokens_revoked (https://docs.slack.dev/reference/events/app_uninstalled,
// https://docs.slack.dev/reference/events/tokens_revoked). pins.add
// (https://docs.slack.dev/reference/methods/pins.add) pins a message.

// Team is a workspace the fake knows besides its primary one.
type Team struct {
	ID   string
	Name string
	// BotToken, when set, is the team's bot token from the start (the app
	// is installed); otherwise the team gets one by installing through OAuth.
	BotToken string
	// BotUserID and BotID are the app's bot user in the team (defaults
	// derived from the team id).
	BotUserID string
	BotID     string
	// Enterprise makes the team an Enterprise Grid organisation (ID an
	// E… id): an install approved there is org-wide, and oauth.v2.access
	// answers it as Slack does, with no team and is_enterprise_install.
	Enterprise bool
}

// Authorize is one visit of the authorize page.
type Authorize struct {
	ClientID    string
	Scope       string
	RedirectURI string
	State       string
	At          time.Time
}

// Install is one install through oauth.v2.access.
type Install struct {
	Team  string
	Token string
	Scope string
	By    string
	At    time.Time
}

// codeLife is how long an authorization code may be exchanged (Slack: 10
// minutes).
const codeLife = 10 * time.Minute

// teamState is a team the fake knows.
type teamState struct {
	Team
	installed bool
}

// tokenState is a bot token the fake issued.
type tokenState struct {
	team    string
	revoked bool
}

// oauthCode is an authorization code handed to the app's redirect URI.
type oauthCode struct {
	team, scope, redirectURI, user string
	issued                         time.Time
	used                           bool
}

// addTeam registers t (s.mu held or during New).
func (s *Server) addTeam(t Team, installed bool) {
	suffix := strings.TrimPrefix(t.ID, "T")
	t.Name = or(t.Name, t.ID)
	t.BotUserID = or(t.BotUserID, "U0BOT"+suffix)
	t.BotID = or(t.BotID, "B0BOT"+suffix)
	st := &teamState{Team: t, installed: installed || t.BotToken != ""}
	s.teams[t.ID] = st
	if t.BotToken != "" {
		s.tokens[t.BotToken] = &tokenState{team: t.ID}
	}
}

// team returns a team (the primary one for ""); s.mu held.
func (s *Server) team(id string) *teamState {
	if id == "" {
		id = s.o.TeamID
	}
	return s.teams[id]
}

// bot returns the app's bot user and bot id in team; s.mu held.
func (s *Server) bot(team string) (userID, botID string) {
	if t := s.team(team); t != nil {
		return t.BotUserID, t.BotID
	}
	return s.o.BotUserID, s.o.BotID
}

// teamOf returns the team of a channel (the primary team for one the fake
// does not know); s.mu held.
func (s *Server) teamOf(channel string) string {
	if c, ok := s.channels[channel]; ok && c.Team != "" {
		return c.Team
	}
	return s.o.TeamID
}

// TeamOf returns the team a channel belongs to.
func (s *Server) TeamOf(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.teamOf(channel)
}

// BotUser returns the app's bot user id in team.
func (s *Server) BotUser(team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _ := s.bot(team)
	return u
}

// TeamToken returns team's current bot token ("" before it installs).
func (s *Server) TeamToken(team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last string
	for tok, ts := range s.tokens {
		if ts.team == team && !ts.revoked && (last == "" || tok > last) {
			last = tok
		}
	}
	return last
}

// Installs returns the installs through oauth.v2.access so far.
func (s *Server) Installs() []Install {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Install(nil), s.installs...)
}

// Authorizes returns the visits of the authorize page so far.
func (s *Server) Authorizes() []Authorize {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Authorize(nil), s.authorizes...)
}

// Pinned returns the pinned messages of channel, oldest first.
func (s *Server) Pinned(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channel && m.Pinned {
			out = append(out, *m)
		}
	}
	return out
}

// AuthorizeURL is the authorize page's address on the fake
// (https://slack.com/oauth/v2/authorize on Slack).
func (s *Server) AuthorizeURL() string { return s.http.URL + "/oauth/v2/authorize" }

// authorizePage is the approval page: what the app asks for, and the
// workspace to install it in.
var authorizePage = template.Must(template.New("authorize").Parse(`<!doctype html>
<html><head><title>Slack: install {{.App}}</title></head><body>
<h1>{{.App}} is requesting permission to access a Slack workspace</h1>
<p>Scopes: {{.Scope}}</p>
<form method="post" action="/oauth/v2/authorize/approve">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<label>Workspace <select name="team">{{range .Teams}}<option value="{{.}}">{{.}}</option>{{end}}</select></label>
<input type="hidden" name="user" value="">
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny">Cancel</button>
</form></body></html>`))

// serveAuthorize is GET /oauth/v2/authorize: it checks the app's request
// and shows the approval page. A wrong client id or redirect URI gets
// Slack's error page, not a redirect (the redirect could not be trusted).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a := Authorize{ClientID: q.Get("client_id"), Scope: q.Get("scope"), RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), At: time.Now()}
	s.mu.Lock()
	s.authorizes = append(s.authorizes, a)
	teams := make([]string, 0, len(s.teams))
	for id := range s.teams {
		teams = append(teams, id)
	}
	s.mu.Unlock()
	slices.Sort(teams)
	switch {
	case a.ClientID != s.o.ClientID:
		s.violate("authorize: client_id %q is not the app's", a.ClientID)
		http.Error(w, "invalid_client_id", http.StatusBadRequest)
		return
	case a.Scope == "":
		s.violate("authorize: no scope: an app asks for its bot scopes")
		http.Error(w, "invalid_scope", http.StatusBadRequest)
		return
	case !s.redirectOK(a.RedirectURI):
		s.violate("authorize: redirect_uri %q is not one of the app's redirect URLs (%q)", a.RedirectURI, s.o.RedirectURI)
		http.Error(w, "bad_redirect_uri", http.StatusBadRequest)
		return
	case a.State == "":
		s.violate("authorize: no state: the app cannot tell its own installs from forged ones")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = authorizePage.Execute(w, map[string]any{"App": "threatdesk", "ClientID": a.ClientID, "Scope": a.Scope,
		"RedirectURI": a.RedirectURI, "State": a.State, "Teams": teams})
}

// redirectOK reports whether u is an allowed redirect URI: an http(s) URL,
// and the configured one when the fake has one.
func (s *Server) redirectOK(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return false
	}
	return s.o.RedirectURI == "" || u == s.o.RedirectURI
}

// serveApprove is the approval page's form: the person allows (or
// cancels) the install in a team, and the browser is sent back to the
// app's redirect URI with a code and the state (or error=access_denied).
func (s *Server) serveApprove(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	redirect, state := f.Get("redirect_uri"), f.Get("state")
	if f.Get("client_id") != s.o.ClientID || !s.redirectOK(redirect) {
		http.Error(w, "invalid request", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(redirect)
	q := back.Query()
	q.Set("state", state)
	if f.Get("decision") == "deny" {
		q.Set("error", "access_denied")
		back.RawQuery = q.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
		return
	}
	s.mu.Lock()
	t := s.team(f.Get("team"))
	if t == nil {
		s.mu.Unlock()
		http.Error(w, "no such workspace", http.StatusBadRequest)
		return
	}
	code := fmt.Sprintf("%s.%d.%x", t.ID, time.Now().UnixNano(), s.seq)
	s.seq++
	s.codes[code] = &oauthCode{team: t.ID, scope: f.Get("scope"), redirectURI: redirect, user: or(f.Get("user"), "U0INSTALLER"), issued: time.Now()}
	s.mu.Unlock()
	q.Set("code", code)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// Approve plays a person who opens startURL (an app's install link) in
// browser, which follows the app's redirect to the authorize page, and
// allows the install in team as user (the approval page's form). The
// browser follows the redirect back to the app; the app's last answer is
// returned. browser should keep cookies (a cookie jar), as a browser does.
func (s *Server) Approve(browser *http.Client, startURL, team, user string) (*http.Response, error) {
	return s.decide(browser, startURL, team, user, "allow")
}

// Deny is Approve with Cancel pressed.
func (s *Server) Deny(browser *http.Client, startURL, team string) (*http.Response, error) {
	return s.decide(browser, startURL, team, "", "deny")
}

func (s *Server) decide(browser *http.Client, startURL, team, user, decision string) (*http.Response, error) {
	resp, err := browser.Get(startURL)
	if err != nil {
		return nil, fmt.Errorf("open the install link: %w", err)
	}
	_ = resp.Body.Close()
	at := resp.Request.URL
	if resp.StatusCode != http.StatusOK || at.Path != "/oauth/v2/authorize" || !strings.HasPrefix(at.String(), s.http.URL) {
		return nil, fmt.Errorf("the install link did not lead to the authorize page: %s answered %d", at.Redacted(), resp.StatusCode)
	}
	q := at.Query()
	form := url.Values{"client_id": {q.Get("client_id")}, "scope": {q.Get("scope")}, "redirect_uri": {q.Get("redirect_uri")},
		"state": {q.Get("state")}, "team": {team}, "user": {user}, "decision": {decision}}
	return browser.PostForm(s.http.URL+"/oauth/v2/authorize/approve", form)
}

// oauthAccess is oauth.v2.access: the app's client id and secret (HTTP
// Basic, or form fields), a code and the redirect URI it was issued for.
func (s *Server) oauthAccess(r *http.Request, req apiRequest) map[string]any {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = req.get("client_id"), req.get("client_secret")
	}
	code, redirect := req.get("code"), req.get("redirect_uri")
	switch {
	case id != s.o.ClientID:
		return errResp("invalid_client_id")
	case secret != s.o.ClientSecret:
		return errResp("bad_client_secret")
	case code == "":
		return errResp("invalid_code")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	switch {
	case !ok || c.used || time.Since(c.issued) > codeLife:
		return errResp("invalid_code")
	case redirect != c.redirectURI:
		return errResp("bad_redirect_uri")
	}
	c.used = true
	t := s.team(c.team)
	// An app installed in the team already gets its bot token again, as
	// Slack answers a reinstall (without token rotation); a revoked one is
	// replaced.
	tok := ""
	for k, ts := range s.tokens {
		if ts.team == t.ID && !ts.revoked {
			tok = k
		}
	}
	if tok == "" {
		s.seq++
		tok = fmt.Sprintf("xoxb-%s-%06d-fake", strings.ToLower(t.ID), s.seq)
		s.tokens[tok] = &tokenState{team: t.ID}
	}
	t.installed = true
	s.installs = append(s.installs, Install{Team: t.ID, Token: tok, Scope: c.scope, By: c.user, At: time.Now()})
	if t.Enterprise {
		return map[string]any{
			"ok": true, "access_token": tok, "token_type": "bot", "scope": c.scope,
			"bot_user_id": t.BotUserID, "app_id": "A0FAKE",
			"team": nil, "enterprise": map[string]any{"id": t.ID, "name": t.Name}, "is_enterprise_install": true,
			"authed_user": map[string]any{"id": c.user},
		}
	}
	return map[string]any{
		"ok": true, "access_token": tok, "token_type": "bot", "scope": c.scope,
		"bot_user_id": t.BotUserID, "app_id": "A0FAKE",
		"team":       map[string]any{"id": t.ID, "name": t.Name},
		"enterprise": nil, "is_enterprise_install": false,
		"authed_user": map[string]any{"id": c.user},
	}
}

// authRevoke is auth.revoke: the calling token stops working.
func (s *Server) authRevoke(req apiRequest) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[req.token]; ok {
		t.revoked = true
	}
	return map[string]any{"ok": true, "revoked": true}
}

// Uninstall plays team's admin removing the app: every token of the team
// is revoked, and the app is sent app_uninstalled and tokens_revoked, in
// either order (Slack does not promise one). It returns both callbacks, to
// send with Event.
func (s *Server) Uninstall(team string) (appUninstalled, tokensRevoked map[string]any) {
	tokensRevoked = s.RevokeTokens(team)
	s.mu.Lock()
	if t := s.team(team); t != nil {
		t.installed = false
	}
	evID := s.nextID("Ev")
	s.mu.Unlock()
	return s.CallbackFor(team, evID, map[string]any{"type": "app_uninstalled"}), tokensRevoked
}

// Share shares channel with workspace team by Slack Connect (ExtShared)
// and returns the channel_shared callback its own workspace's app gets
// (https://docs.slack.dev/reference/events/channel_shared).
func (s *Server) Share(channel, team string) map[string]any {
	return s.setShared(channel, team, true)
}

// Unshare ends channel's sharing with team and returns the
// channel_unshared callback
// (https://docs.slack.dev/reference/events/channel_unshared).
func (s *Server) Unshare(channel, team string) map[string]any {
	return s.setShared(channel, team, false)
}

func (s *Server) setShared(channel, team string, shared bool) map[string]any {
	s.mu.Lock()
	c := s.channels[channel]
	c.ID = channel
	c.ExtShared = shared
	s.channels[channel] = c
	own := s.teamOf(channel)
	evID := s.nextID("Ev")
	ts := s.nextTS()
	s.mu.Unlock()
	ev := map[string]any{"type": "channel_shared", "connected_team_id": team, "channel": channel, "event_ts": ts}
	if !shared {
		ev = map[string]any{"type": "channel_unshared", "previously_connected_team_id": team, "channel": channel,
			"is_ext_shared": false, "event_ts": ts}
	}
	return s.CallbackFor(own, evID, ev)
}

// RevokeTokens revokes every bot token of team and returns the
// tokens_revoked callback; its tokens lists user ids, never tokens.
func (s *Server) RevokeTokens(team string) map[string]any {
	s.mu.Lock()
	for _, t := range s.tokens {
		if t.team == team {
			t.revoked = true
		}
	}
	bot, _ := s.bot(team)
	evID := s.nextID("Ev")
	s.mu.Unlock()
	return s.CallbackFor(team, evID, map[string]any{"type": "tokens_revoked",
		"tokens": map[string]any{"oauth": []any{}, "bot": []any{bot}}})
}

// CallbackFor wraps an inner event of team in an Events API event_callback.
func (s *Server) CallbackFor(team, eventID string, inner map[string]any) map[string]any {
	s.mu.Lock()
	bot, _ := s.bot(team)
	s.mu.Unlock()
	return map[string]any{
		"token": "deprecated-verification-token", "team_id": team, "api_app_id": "A0FAKE",
		"event": inner, "type": "event_callback", "event_id": eventID, "event_time": time.Now().Unix(),
		"authorizations": []any{map[string]any{"team_id": team, "user_id": bot, "is_bot": true, "is_enterprise_install": false}},
	}
}

// pinsAdd is pins.add: channel and timestamp name a message, pinned once.
func (s *Server) pinsAdd(req apiRequest) map[string]any {
	ch, ts := req.get("channel"), req.get("timestamp")
	if ts == "" {
		return errResp("no_item_specified")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.channelFor(ch, req.team); code != "" {
		return errResp(code)
	}
	m := s.find(ch, ts)
	switch {
	case m == nil:
		return errResp("message_not_found")
	case m.Pinned:
		return errResp("already_pinned")
	}
	m.Pinned = true
	return map[string]any{"ok": true}
}

// tokenTeam checks a bot token: its team, or the error Slack answers.
// s.mu held.
func (s *Server) tokenTeam(token string) (string, string) {
	t, ok := s.tokens[token]
	switch {
	case !ok:
		return "", "invalid_auth"
	case t.revoked:
		return "", "token_revoked"
	}
	return t.team, ""
}
