package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Sign-in and sessions. "/experts web" asks SignInLink for a link; opening
// it (GET /web/login/{token}) shows whom it signs in and a Sign in button,
// whose POST (from threatdesk's own page, see serveSignIn) uses it up,
// opens a session stored in web_sessions and sets its id in a cookie. Tokens and session ids are 32
// random bytes (base64url); the database keeps their SHA-256 only. Every
// request re-reads the session and asks the Directory who its person is
// now: the session grants the roles it was opened with that the running
// config still gives (a member's org must still be their channel's), and
// ends when none that sees cases is left.

// Lifetimes.
const (
	// PresenceEvery is how often a session's person is looked up in chat
	// (WebPresent): someone deactivated, or a member who left the org's
	// channel, loses the tracker within this time rather than at the
	// session's end.
	PresenceEvery = 5 * time.Minute
	// presenceWait bounds one look-up; presenceRetry is when a failed one
	// is tried again (the session goes on meanwhile).
	presenceWait  = 2 * time.Second
	presenceRetry = time.Minute
	// PresenceUnconfirmed is how long look-ups may keep failing before the
	// session ends: the platform refusing for good (the workspace removed
	// the app, the bot was removed from the server) would otherwise keep
	// someone who left the org's channel signed in until the session's end.
	PresenceUnconfirmed = 30 * time.Minute
	// presenceFailures is how many look-ups in a row must have failed too
	// (an idle session is looked up seldom: two blips an hour apart are no
	// half hour of failures).
	presenceFailures = 6
	// SignInLinkTTL is how long a sign-in link works (once).
	SignInLinkTTL = 10 * time.Minute
	// SessionTTL is how long a session lasts from sign-in.
	SessionTTL = 12 * time.Hour
	// keepEnded is how long expired links and sessions stay in the
	// database (the record of who signed in when) before they are deleted.
	keepEnded = 30 * 24 * time.Hour
)

// sessionCookie names the session cookie.
const sessionCookie = "threatdesk_session"

// csrfField is the form field that carries a form's CSRF token.
const csrfField = "csrf"

// Directory says who a chat user is by the running config, with the same
// rules as chat: experts, managers and admins by user id, members by the
// org channel given. *bot.Bot implements it.
type Directory interface {
	WebAccess(u bot.User, channel string) bot.WebUser
	WebOrgs() []bot.WebOrg
	// WebPresent reports whether u is still in chat: an active account
	// and, given a channel, still in it (true when the platform cannot
	// tell).
	WebPresent(ctx context.Context, u bot.User, channel string) (bool, error)
}

var _ Directory = (*bot.Bot)(nil)

// SetDirectory hands the handler who is who (the bot, built after the
// handler). Until then nobody can sign in or use a session.
func (h *Handler) SetDirectory(d Directory) {
	h.dirMu.Lock()
	defer h.dirMu.Unlock()
	h.dir = d
}

func (h *Handler) directory() Directory {
	h.dirMu.RLock()
	defer h.dirMu.RUnlock()
	return h.dir
}

// newSecret returns a random token (base64url of 32 bytes) and its SHA-256.
func newSecret() (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("web: random token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(tok))
	return tok, sum[:], nil
}

// secretHash is the stored form of a token or session id; ok is false for
// a string that cannot be one (so it is not looked up).
func secretHash(s string) ([]byte, bool) {
	if len(s) != 43 {
		return nil, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(s); err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(s))
	return sum[:], true
}

func rolesText(rs []bot.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func rolesOf(ss []string) []bot.Role {
	out := make([]bot.Role, len(ss))
	for i, s := range ss {
		out[i] = bot.Role(s)
	}
	return out
}

// seesCases reports whether roles (with org for a member) may see any case.
func seesCases(roles []bot.Role, org string) bool {
	return slices.Contains(roles, bot.RoleExpert) || slices.Contains(roles, bot.RoleManager) ||
		(slices.Contains(roles, bot.RoleMember) && org != "")
}

// SignInLink implements bot.WebSignIn: a single-use link, valid for
// SignInLinkTTL, that opens a session for u with u's roles.
func (h *Handler) SignInLink(ctx context.Context, u bot.WebUser) (bot.WebLink, error) {
	if !seesCases(u.Roles, u.Org) {
		return bot.WebLink{}, errors.New("web: sign-in link: the user has no role that sees cases")
	}
	token, hash, err := newSecret()
	if err != nil {
		return bot.WebLink{}, err
	}
	now := h.cfg.Now().UTC()
	exp := now.Add(SignInLinkTTL)
	if _, err := h.cfg.Pool.Exec(ctx, `INSERT INTO web_login_links (token_hash, platform, workspace, user_id, display_name,
 channel, roles, org, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		hash, string(u.User.Platform), u.User.Workspace, u.User.ID, u.User.DisplayName, u.Channel, rolesText(u.Roles), u.Org, now, exp); err != nil {
		return bot.WebLink{}, fmt.Errorf("web: store sign-in link: %w", err)
	}
	h.prune(ctx, now)
	return bot.WebLink{URL: h.cfg.Links.SignIn(token), ExpiresAt: exp, Note: h.cfg.Links.LocalNote()}, nil
}

// prune deletes links and sessions that ended long ago. A failure only
// leaves them for the next time.
func (h *Handler) prune(ctx context.Context, now time.Time) {
	before := now.Add(-keepEnded)
	if _, err := h.cfg.Pool.Exec(ctx, `DELETE FROM web_login_links WHERE expires_at < $1`, before); err != nil {
		h.log.WarnContext(ctx, "could not delete old sign-in links", "err", err)
	}
	if _, err := h.cfg.Pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at < $1`, before); err != nil {
		h.log.WarnContext(ctx, "could not delete old sessions", "err", err)
	}
}

// person is who a link or session was made for.
type person struct {
	user    bot.User
	channel string
	roles   []bot.Role
	org     string
}

// access is what p may do now: the roles p was given that the running
// config still gives them (a member's only while the channel is still
// their org's), and the org's name.
func (h *Handler) access(p person) (roles []bot.Role, orgName string) {
	d := h.directory()
	if d == nil {
		return nil, ""
	}
	now := d.WebAccess(p.user, p.channel)
	for _, r := range p.roles {
		if !now.Has(r) || (r == bot.RoleMember && (p.org == "" || now.Org != p.org)) {
			continue
		}
		roles = append(roles, r)
	}
	if slices.Contains(roles, bot.RoleMember) {
		orgName = now.OrgName
	}
	return roles, orgName
}

// session is a signed-in request's session.
type session struct {
	idHash  []byte
	csrf    string
	user    bot.User
	roles   []bot.Role
	org     string // a member's org ("" when not a member)
	orgName string
	expires time.Time
}

func (s *session) has(r bot.Role) bool { return slices.Contains(s.roles, r) }

// expert: sees internal notes and downloads samples.
func (s *session) expert() bool { return s.has(bot.RoleExpert) }

// allOrgs: experts and managers see every org, as in chat.
func (s *session) allOrgs() bool { return s.has(bot.RoleExpert) || s.has(bot.RoleManager) }

// viewer is casework's read scope of the session.
func (s *session) viewer() casework.Viewer {
	if s.allOrgs() {
		return casework.AllOrgs()
	}
	return casework.OrgViewer(s.org)
}

// actor is the session's person acting as an expert (sample downloads).
func (s *session) actor() casework.Actor {
	return casework.Actor{Role: casework.RoleExpert, Person: casework.Person{Platform: string(s.user.Platform),
		Workspace: s.user.Workspace, UserID: s.user.ID, DisplayName: s.user.DisplayName}}
}

// name is how the page names the person signed in.
func (s *session) name() string {
	if s.user.DisplayName != "" {
		return s.user.DisplayName
	}
	return s.user.ID
}

// roleText says what the session sees, for the page header.
func (s *session) roleText() string {
	switch {
	case s.expert():
		return "expert · every org"
	case s.has(bot.RoleManager):
		return "manager · every org"
	}
	return "member · " + s.orgName
}

// csrfToken is the CSRF token of the session with id sid: a MAC of the id
// under the session subkey, so it needs no storage and no other session's
// token passes.
func csrfToken(key *secrets.Key, sid string) string {
	return base64.RawURLEncoding.EncodeToString(key.MAC(secrets.PurposeSessionSigning, []byte("csrf"), []byte(sid)))
}

// Why a request has no session.
var (
	errSignedOut = errors.New("not signed in")
	errNoAccess  = errors.New("no access any more")
	errLeftChat  = fmt.Errorf("%w: no longer in chat", errNoAccess)
	// errUnconfirmed: chat could not say for PresenceUnconfirmed.
	errUnconfirmed = fmt.Errorf("%w: presence unconfirmed", errNoAccess)
)

// session reads the request's session: errSignedOut without a live one,
// errNoAccess when the config no longer gives its person a role that sees
// cases (the session is ended then).
func (h *Handler) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, errSignedOut
	}
	hash, ok := secretHash(c.Value)
	if !ok {
		return nil, errSignedOut
	}
	ctx := r.Context()
	var p person
	var platform string
	var roles []string
	var exp time.Time
	err = h.cfg.Pool.QueryRow(ctx, `SELECT platform, workspace, user_id, display_name, channel, roles, org, expires_at
 FROM web_sessions WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2`, hash, h.cfg.Now().UTC()).
		Scan(&platform, &p.user.Workspace, &p.user.ID, &p.user.DisplayName, &p.channel, &roles, &p.org, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errSignedOut
	}
	if err != nil {
		return nil, fmt.Errorf("web: read session: %w", err)
	}
	p.user.Platform, p.roles = bot.Platform(platform), rolesOf(roles)
	now, orgName := h.access(p)
	org := p.org
	if !slices.Contains(now, bot.RoleMember) {
		org = ""
	}
	if !seesCases(now, org) {
		if err := h.endSession(ctx, hash, "access removed"); err != nil {
			return nil, err
		}
		h.log.InfoContext(ctx, "ended a web session: the config no longer gives its person a role that sees cases",
			"platform", platform, "user", p.user.ID)
		return nil, errNoAccess
	}
	channel := ""
	if org != "" && !slices.Contains(now, bot.RoleExpert) && !slices.Contains(now, bot.RoleManager) {
		channel = p.channel // only a member: still in the org's channel
	}
	switch h.present(ctx, hash, p.user, channel) {
	case presenceGone:
		if err := h.endSession(ctx, hash, "left chat"); err != nil {
			return nil, err
		}
		h.log.InfoContext(ctx, "ended a web session: its person is no longer in chat (deactivated, or left the org's channel)",
			"platform", platform, "user", p.user.ID)
		return nil, errLeftChat
	case presenceUnconfirmed:
		if err := h.endSession(ctx, hash, "presence unconfirmed"); err != nil {
			return nil, err
		}
		h.log.WarnContext(ctx, "ended a web session: that its person is still in chat could not be confirmed for "+PresenceUnconfirmed.String(),
			"platform", platform, "user", p.user.ID)
		return nil, errUnconfirmed
	}
	return &session{idHash: hash, csrf: csrfToken(h.cfg.Key, c.Value), user: p.user, roles: now, org: org, orgName: orgName, expires: exp}, nil
}

// presence is what present found.
type presence int

const (
	presenceHere presence = iota
	presenceGone
	// presenceUnconfirmed: look-ups kept failing for PresenceUnconfirmed.
	presenceUnconfirmed
)

// present reports whether u is still in chat (and in channel, when given),
// asking the Directory at most every PresenceEvery per session; concurrent
// requests of one session ask once. A failed look-up keeps the session: one
// the platform refused for good (a missing scope, the bot removed) is asked
// again after PresenceEvery, any other after presenceRetry.
func (h *Handler) present(ctx context.Context, hash []byte, u bot.User, channel string) presence {
	d := h.directory()
	if d == nil {
		return presenceHere
	}
	key, now := string(hash), h.cfg.Now()
	h.presMu.Lock()
	if next, ok := h.presNext[key]; ok && now.Before(next) {
		h.presMu.Unlock()
		return presenceHere
	}
	h.presNext[key] = now.Add(presenceRetry) // in flight: the session's other requests go on
	if now.Sub(h.presPruned) > SessionTTL {
		for k, t := range h.presNext { // forget sessions long gone
			if now.Sub(t) > SessionTTL {
				delete(h.presNext, k)
				delete(h.presFailing, k)
			}
		}
		h.presPruned = now
	}
	h.presMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, presenceWait)
	here, err := d.WebPresent(pctx, u, channel)
	cancel()
	h.presMu.Lock()
	defer h.presMu.Unlock()
	switch {
	case err != nil:
		f := h.presFailing[key]
		if f.n == 0 {
			f.first = now
		}
		f.n++
		h.presFailing[key] = f
		if f.n >= presenceFailures && now.Sub(f.first) >= PresenceUnconfirmed {
			delete(h.presNext, key)
			delete(h.presFailing, key)
			return presenceUnconfirmed
		}
		first := f.first
		again := presenceRetry
		if kind, _ := bot.Classify(err); kind == bot.Permanent {
			again = PresenceEvery
		}
		h.log.WarnContext(ctx, "could not check that a web session's person is still in chat; the session goes on",
			"platform", u.Platform, "user", u.ID, "retry_in", again, "failing_for", now.Sub(first), "err", err)
		h.presNext[key] = now.Add(again)
		return presenceHere
	case !here:
		delete(h.presNext, key)
		delete(h.presFailing, key)
		return presenceGone
	}
	delete(h.presFailing, key)
	h.presNext[key] = now.Add(PresenceEvery)
	return presenceHere
}

// endSession ends a session server-side, for reason (its end_reason;
// with underscores, its label in threatdesk_web_sessions_ended_total).
func (h *Handler) endSession(ctx context.Context, hash []byte, reason string) error {
	tag, err := h.cfg.Pool.Exec(ctx, `UPDATE web_sessions SET ended_at = $2, end_reason = $3 WHERE id_hash = $1 AND ended_at IS NULL`,
		hash, h.cfg.Now().UTC(), reason)
	if err != nil {
		return fmt.Errorf("web: end session: %w", err)
	}
	if tag.RowsAffected() > 0 {
		// Counted once, by whichever request ended it.
		h.m.ended.WithLabelValues(strings.ReplaceAll(reason, " ", "_")).Inc()
	}
	return nil
}

// cookie is the session cookie with value v that lasts until exp (a zero
// exp deletes it).
func (h *Handler) cookie(v string, exp time.Time) *http.Cookie {
	c := &http.Cookie{Name: sessionCookie, Value: v, Path: h.cfg.Links.page(TrackerPath), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.cfg.Links.secure}
	if exp.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires, c.MaxAge = exp, int(time.Until(exp).Seconds())
		if c.MaxAge <= 0 || c.MaxAge > int(SessionTTL.Seconds()) {
			c.MaxAge = int(SessionTTL.Seconds())
		}
	}
	return c
}

// again is the sentence on how to get in.
const again = "To sign in, type /experts web in your SOC channel or the expert desk: threatdesk answers you privately with a sign-in link."

// signInCookie names the cookie that binds a sign-in page's form to the
// browser that loaded it: a random nonce, scoped to the sign-in links.
const signInCookie = "threatdesk_signin"

// signInForm is the data of signin.html.
type signInForm struct {
	Name   string // whom the link signs in
	Where  string // their org's name, or "the expert desk"
	Action string // the form's target: the link itself
	CSRF   string
}

// serveSignIn is /web/login/{token}. A GET (a browser opening the link, a
// link expander, a prefetcher) changes nothing: it shows whom the link
// signs in and a Sign in button. The button's POST, from threatdesk's own
// page (Origin, or Referer without one, is THREATDESK_PUBLIC_URL's origin)
// and carrying the page's form token, uses the link up, opens a session
// and lands on the case list. So a link cannot sign a victim's browser in
// as the link's owner by being opened, embedded or posted from elsewhere
// (login CSRF).
func (h *Handler) serveSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, "GET, POST")
		return
	}
	if isPreviewAgent(r.UserAgent()) {
		// A chat app's link preview must not see whose link it is.
		h.m.signIns.WithLabelValues("preview_refused").Inc()
		h.say(w, r, http.StatusForbidden, message{Title: "No previews of sign-in links",
			Lines: []string{"Open the link in a browser."}})
		return
	}
	token := r.PathValue("token")
	hash, ok := secretHash(token)
	if !ok {
		h.refuseSignIn(w, r, "link_unknown")
		return
	}
	if r.Method == http.MethodGet {
		h.askSignIn(w, r, token, hash)
		return
	}
	// A link that does not sign in gets its page, whoever posts it.
	if _, outcome, err := h.lookUpLink(r.Context(), hash); err != nil {
		h.failSignIn(w, r, err)
		return
	} else if outcome != "" {
		h.refuseSignIn(w, r, outcome)
		return
	}
	if !h.sameOrigin(r) {
		h.m.signIns.WithLabelValues("cross_site_refused").Inc()
		h.log.WarnContext(r.Context(), "refused a sign-in posted from another site",
			"origin", r.Header.Get("Origin"), "referer_present", r.Header.Get("Referer") != "")
		h.say(w, r, http.StatusForbidden, message{Title: "This sign-in did not come from threatdesk's page",
			Lines: []string{"Signing in is only accepted from the page the sign-in link opens; nothing was used up.",
				"If you meant to sign in, open your link again and press Sign in. If another site sent you here, close this page."}})
		return
	}
	if err := r.ParseForm(); err != nil {
		h.say(w, r, http.StatusBadRequest, message{Title: "The form could not be read", Lines: []string{"Open your link again and press Sign in."}})
		return
	}
	c, err := r.Cookie(signInCookie)
	if err != nil || !validNonce(c.Value) ||
		!hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(signInToken(h.cfg.Key, token, c.Value))) {
		h.m.signIns.WithLabelValues("form_refused").Inc()
		h.say(w, r, http.StatusForbidden, message{Title: "This sign-in form has expired",
			Lines: []string{"It was not sent from the sign-in page this browser loaded; nothing was used up. Open your link again and press Sign in."}})
		return
	}
	h.signIn(w, r, hash)
}

// askSignIn answers GET /web/login/{token} of a live link with the page
// that asks whether to sign in; it uses nothing up.
func (h *Handler) askSignIn(w http.ResponseWriter, r *http.Request, token string, hash []byte) {
	p, outcome, err := h.lookUpLink(r.Context(), hash)
	if err != nil {
		h.failSignIn(w, r, err)
		return
	}
	if outcome != "" {
		h.refuseSignIn(w, r, outcome)
		return
	}
	now, orgName := h.access(p)
	org := p.org
	if !slices.Contains(now, bot.RoleMember) {
		org = ""
	}
	if !seesCases(now, org) {
		h.refuseSignIn(w, r, "no_access")
		return
	}
	form := signInForm{Name: p.user.DisplayName, Where: "the expert desk",
		Action: h.cfg.Links.page(SignInPath) + url.PathEscape(token)}
	if form.Name == "" {
		form.Name = p.user.ID
	}
	if org != "" && !slices.Contains(now, bot.RoleExpert) && !slices.Contains(now, bot.RoleManager) {
		form.Where = orgName
	}
	var nonce string
	if c, err := r.Cookie(signInCookie); err == nil && validNonce(c.Value) {
		nonce = c.Value // another link opened in this browser keeps its form
	} else if nonce, _, err = newSecret(); err != nil {
		h.failSignIn(w, r, err)
		return
	}
	form.CSRF = signInToken(h.cfg.Key, token, nonce)
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: nonce, Path: h.cfg.Links.page(SignInPath), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.cfg.Links.secure, MaxAge: int(SignInLinkTTL.Seconds())})
	h.m.signIns.WithLabelValues("asked").Inc()
	if !wantsHTML(r) {
		h.say(w, r, http.StatusOK, message{Title: fmt.Sprintf("Sign in to threatdesk's case tracker as %s (%s)?", form.Name, form.Where),
			Lines: []string{"Open the link in a browser and press Sign in."}})
		return
	}
	// The form's POST must carry this page's origin (Origin: null is
	// refused), which no-referrer would hide; same-origin sends it to
	// threatdesk only.
	h.renderView(w, http.StatusOK, "signin", view{CSS: h.pages.css, Referrer: "same-origin", Page: form})
}

// lookUpLink reads the sign-in link with hash without using it up: whom it
// signs in, or why it does not (outcome link_unknown, link_used or
// link_expired).
func (h *Handler) lookUpLink(ctx context.Context, hash []byte) (p person, outcome string, err error) {
	var platform string
	var roles []string
	var used *time.Time
	var expires time.Time
	err = h.cfg.Pool.QueryRow(ctx, `SELECT platform, workspace, user_id, display_name, channel, roles, org, used_at, expires_at
 FROM web_login_links WHERE token_hash = $1`, hash).
		Scan(&platform, &p.user.Workspace, &p.user.ID, &p.user.DisplayName, &p.channel, &roles, &p.org, &used, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return p, "link_unknown", nil
	case err != nil:
		return p, "", fmt.Errorf("read sign-in link: %w", err)
	case used != nil:
		return p, "link_used", nil
	case !expires.After(h.cfg.Now().UTC()):
		return p, "link_expired", nil
	}
	p.user.Platform, p.roles = bot.Platform(platform), rolesOf(roles)
	return p, "", nil
}

// signInToken is the form token of the sign-in page of link token in the
// browser holding nonce (its signInCookie): a MAC under the session
// subkey, so a page fetched elsewhere (another browser, another nonce)
// gives no token that passes here.
func signInToken(key *secrets.Key, token, nonce string) string {
	return base64.RawURLEncoding.EncodeToString(key.MAC(secrets.PurposeSessionSigning, []byte("signin"), []byte(token), []byte(nonce)))
}

// validNonce reports whether s can be a signInCookie value.
func validNonce(s string) bool {
	_, ok := secretHash(s)
	return ok
}

// sameOrigin reports whether a POST comes from a page of threatdesk: its
// Origin, or its Referer when it has no Origin, has the origin of
// THREATDESK_PUBLIC_URL. Neither, or Origin: null, is refused: browsers
// send Origin with every POST.
func (h *Handler) sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return false
	}
	u, err := url.Parse(from)
	if err != nil {
		return false
	}
	o := originOf(u)
	return o != "" && o == h.cfg.Links.origin
}

// signIn uses the link with hash up, opens a session and lands on the case
// list; a link that does not sign in gets its page.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, hash []byte) {
	ctx := r.Context()
	now := h.cfg.Now().UTC()
	sid, sidHash, err := newSecret()
	if err != nil {
		h.failSignIn(w, r, err)
		return
	}
	outcome := ""
	var p person
	var exp time.Time
	err = pgx.BeginFunc(ctx, h.cfg.Pool, func(tx pgx.Tx) error {
		var platform string
		var roles []string
		err := tx.QueryRow(ctx, `UPDATE web_login_links SET used_at = $2
 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
 RETURNING platform, workspace, user_id, display_name, channel, roles, org`, hash, now).
			Scan(&platform, &p.user.Workspace, &p.user.ID, &p.user.DisplayName, &p.channel, &roles, &p.org)
		if errors.Is(err, pgx.ErrNoRows) {
			var used *time.Time
			var expires time.Time
			err = tx.QueryRow(ctx, `SELECT used_at, expires_at FROM web_login_links WHERE token_hash = $1`, hash).Scan(&used, &expires)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				outcome = "link_unknown"
				return nil
			case err != nil:
				return fmt.Errorf("read sign-in link: %w", err)
			case used != nil:
				outcome = "link_used"
			default:
				outcome = "link_expired"
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("use sign-in link: %w", err)
		}
		p.user.Platform, p.roles = bot.Platform(platform), rolesOf(roles)
		roles2, _ := h.access(p)
		org := p.org
		if !slices.Contains(roles2, bot.RoleMember) {
			org = ""
		}
		if !seesCases(roles2, org) {
			outcome = "no_access" // the link is used up all the same
			return nil
		}
		exp = now.Add(SessionTTL)
		if _, err := tx.Exec(ctx, `INSERT INTO web_sessions (id_hash, platform, workspace, user_id, display_name, channel, roles, org,
 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			sidHash, platform, p.user.Workspace, p.user.ID, p.user.DisplayName, p.channel, roles, p.org, now, exp); err != nil {
			return fmt.Errorf("open session: %w", err)
		}
		outcome = "signed_in"
		return nil
	})
	if err != nil {
		h.failSignIn(w, r, err)
		return
	}
	if outcome != "signed_in" {
		h.refuseSignIn(w, r, outcome)
		return
	}
	h.m.signIns.WithLabelValues(outcome).Inc()
	h.log.InfoContext(ctx, "signed in to the case tracker", "platform", p.user.Platform, "user", p.user.ID)
	http.SetCookie(w, h.cookie(sid, exp))
	secureHeaders(w.Header(), strictCSP)
	http.Redirect(w, r, h.cfg.Links.page(TrackerPath), http.StatusSeeOther)
}

// refuseSignIn answers a sign-in link that does not sign in.
func (h *Handler) refuseSignIn(w http.ResponseWriter, r *http.Request, outcome string) {
	h.m.signIns.WithLabelValues(outcome).Inc()
	switch outcome {
	case "link_used":
		h.say(w, r, http.StatusGone, message{Title: "This sign-in link was already used",
			Lines: []string{"Each link signs in once.", again}})
	case "link_expired":
		h.say(w, r, http.StatusGone, message{Title: "This sign-in link has expired",
			Lines: []string{fmt.Sprintf("Sign-in links work for %d minutes.", int(SignInLinkTTL.Minutes())), again}})
	case "no_access":
		h.say(w, r, http.StatusForbidden, message{Title: "You no longer have access to the case tracker",
			Lines: []string{"threatdesk's configuration no longer lists you where this link was made for. Ask your threatdesk admin."}})
	default:
		h.say(w, r, http.StatusNotFound, message{Title: "This sign-in link is not valid",
			Lines: []string{"Check that the whole link was copied.", again}})
	}
}

func (h *Handler) failSignIn(w http.ResponseWriter, r *http.Request, err error) {
	h.m.signIns.WithLabelValues("failed").Inc()
	h.log.ErrorContext(r.Context(), "sign-in failed", "err", err)
	h.say(w, r, http.StatusInternalServerError, message{Title: "Signing in failed",
		Lines: []string{"Something went wrong on threatdesk's side. Try the link again in a minute; it was not used up."}})
}

// signedIn wraps a tracker page: without a live session it answers that
// the person should sign in (401) or has lost access (403); a POST must
// carry the session's CSRF token.
func (h *Handler) signedIn(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := h.session(r)
		switch {
		case errors.Is(err, errSignedOut):
			h.say(w, r, http.StatusUnauthorized, message{Title: "Sign in to the case tracker", Lines: []string{again}})
			return
		case errors.Is(err, errLeftChat):
			http.SetCookie(w, h.cookie("", time.Time{}))
			h.say(w, r, http.StatusForbidden, message{Title: "You no longer have access to the case tracker",
				Lines: []string{"Your chat account is no longer active, or you are no longer in the channel that gave you access, so your session was ended. Ask your threatdesk admin."}})
			return
		case errors.Is(err, errUnconfirmed):
			http.SetCookie(w, h.cookie("", time.Time{}))
			h.say(w, r, http.StatusForbidden, message{Title: "Your case tracker session has ended",
				Lines: []string{"threatdesk could not confirm with your chat platform for a while that you are still in the channel that gave you access, so your session was ended. Sign in again with a new link from chat (/experts web); if that fails, ask your threatdesk admin."}})
			return
		case errors.Is(err, errNoAccess):
			http.SetCookie(w, h.cookie("", time.Time{}))
			h.say(w, r, http.StatusForbidden, message{Title: "You no longer have access to the case tracker",
				Lines: []string{"threatdesk's configuration no longer gives you a role that sees cases, so your session was ended. Ask your threatdesk admin."}})
			return
		case err != nil:
			h.log.ErrorContext(r.Context(), "case tracker: session", "err", err)
			h.say(w, r, http.StatusInternalServerError, message{Title: "Something went wrong",
				Lines: []string{"threatdesk could not read your session. Try again in a minute."}})
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				h.say(w, r, http.StatusBadRequest, message{Title: "The form could not be read", Lines: []string{"Go back and send it again."}})
				return
			}
			if got := r.PostForm.Get(csrfField); !hmac.Equal([]byte(got), []byte(s.csrf)) {
				h.say(w, r, http.StatusForbidden, message{Title: "This form has expired",
					Lines: []string{"It was not sent from the page of your current session. Reload the page and send it again."}})
				return
			}
		}
		next(w, r, s)
	}
}

// serveSignOut is POST /web/logout: the session ends server-side and its
// cookie is deleted.
func (h *Handler) serveSignOut(w http.ResponseWriter, r *http.Request, s *session) {
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, "POST")
		return
	}
	if err := h.endSession(r.Context(), s.idHash, "signed out"); err != nil {
		h.log.ErrorContext(r.Context(), "sign out", "err", err)
		h.say(w, r, http.StatusInternalServerError, message{Title: "Signing out failed",
			Lines: []string{"threatdesk could not end your session. Try again in a minute."}})
		return
	}
	http.SetCookie(w, h.cookie("", time.Time{}))
	h.say(w, r, http.StatusOK, message{Title: "Signed out", Lines: []string{"Your session has ended. " + again}})
}
