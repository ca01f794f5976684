package web_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
)

// fetch sends a request with c and returns the answer and its body.
func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	return fetchWith(t, c, method, u, form, nil)
}

// fetchWith is fetch with more request headers (Origin, Referer).
func fetchWith(t *testing.T, c *http.Client, method, u string, form url.Values, hdr http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	req.Header.Set("Accept", browser)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of a page's forms.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(page)
	require.NotNil(t, m, "the page has a form with a CSRF token")
	return m[1]
}

// signIn opens a sign-in link with c, presses Sign in on the page it
// shows, as a browser would (Origin: the tracker's), and checks that it
// lands on the list.
func (f *tracker) signIn(t *testing.T, c *http.Client, link string) {
	t.Helper()
	resp, page := fetch(t, c, http.MethodGet, link, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Contains(t, page, "Sign in to threatdesk's case tracker as ")
	resp, page = f.pressSignIn(t, c, link, csrfOf(t, page), f.base)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
	require.Equal(t, web.TrackerPath, resp.Header.Get("Location"))
}

// pressSignIn posts a sign-in page's form (token tok) to link with c, with
// Origin origin (none when "").
func (f *tracker) pressSignIn(t *testing.T, c *http.Client, link, tok, origin string) (*http.Response, string) {
	t.Helper()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	return fetchWith(t, c, http.MethodPost, link, url.Values{"csrf": {tok}}, hdr)
}

// linkUsed reports whether the sign-in link is used up.
func (f *tracker) linkUsed(t *testing.T, link string) bool {
	t.Helper()
	token := link[strings.LastIndex(link, "/")+1:]
	var used bool
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT used_at IS NOT NULL FROM web_login_links
 WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token).Scan(&used))
	return used
}

// TestSignInLinkAndSession: "/experts web" answers privately with a link
// that signs in once; its cookie is HttpOnly, SameSite=Lax and lasts 12
// hours; the tokens are stored hashed; an expired, unknown or used link is
// refused with a sentence saying what to do, and a chat app's link preview
// does not use the link up.
func TestSignInLinkAndSession(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	ack, m := f.command(t, bot.Slack, expertID, deskChannel)
	require.True(t, ack.Private)
	text := bottest.Plain(m)
	require.Contains(t, text, "Open the case tracker: every org's cases")
	require.Contains(t, text, "press Sign in there. It signs in once, until 09:10 UTC (10 minutes)")
	require.Contains(t, text, "only works on the machine threatdesk runs on", "THREATDESK_PUBLIC_URL unset: the link says so")
	link := f.web(t, bot.Slack, expertID, deskChannel)
	token := strings.TrimPrefix(link, f.base+web.SignInPath)
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_login_links WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token).Scan(&n))
	require.Equal(t, 1, n, "the link is stored by its SHA-256")
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_login_links WHERE token_hash = convert_to($1, 'UTF8')`, token).Scan(&n))
	require.Zero(t, n, "never the token itself")

	// A link preview is refused and does not use the link up.
	req, err := http.NewRequest(http.MethodGet, link, nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	c := client(t)
	signedAt := f.clock.Now()
	// Opening the link (twice, as a prefetcher and then the person would)
	// signs nobody in and uses nothing up: it asks.
	var page string
	for range 2 {
		resp, page = fetch(t, c, http.MethodGet, link, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, page)
		require.Contains(t, page, "Sign in to threatdesk's case tracker as <span id=\"signin-name\">Eve Expert</span> (<span id=\"signin-where\">the expert desk</span>)?")
		require.Equal(t, "same-origin", resp.Header.Get("Referrer-Policy"), "the form's POST carries its Origin")
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self'")
		require.False(t, f.linkUsed(t, link))
	}
	require.Contains(t, page, `<form method="post" action="/web/login/`+token+`">`)
	resp, _ = fetch(t, c, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "not signed in by opening the link")
	resp, _ = fetch(t, client(t), http.MethodGet, link, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "another browser opening it uses nothing up either")
	tok := csrfOf(t, page)
	resp, _ = f.pressSignIn(t, c, link, tok, f.base)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, web.TrackerPath, resp.Header.Get("Location"))
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "threatdesk_session" {
			cookie = ck
		}
	}
	require.NotNil(t, cookie)
	require.True(t, cookie.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, cookie.SameSite)
	require.False(t, cookie.Secure, "plain http: not Secure")
	require.Equal(t, "/web/", cookie.Path)
	require.Equal(t, int((12 * time.Hour).Seconds()), cookie.MaxAge)
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_sessions WHERE id_hash = sha256(convert_to($1, 'UTF8'))
 AND user_id = $2 AND roles = '{expert}' AND expires_at = $3`, cookie.Value, expertID, signedAt.Add(web.SessionTTL)).Scan(&n))
	require.Equal(t, 1, n, "the session is stored by the SHA-256 of its id, for the expert, 12 hours")

	resp, page = fetch(t, c, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "Eve Expert · expert · every org")

	// Used: refused, opened or posted again.
	resp, page = fetch(t, client(t), http.MethodGet, link, nil)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, page, "This sign-in link was already used")
	resp, page = f.pressSignIn(t, c, link, tok, f.base)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, page, "This sign-in link was already used")
	require.Contains(t, page, "/experts web")

	// Expired: refused, and not used up by the refusal.
	late := f.web(t, bot.Slack, expertID, deskChannel)
	f.clock.Advance(web.SignInLinkTTL + time.Second)
	lc := client(t)
	resp, page = fetch(t, lc, http.MethodGet, late, nil)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, page, "This sign-in link has expired")
	// Also when its page was opened in time and the button pressed late.
	late2 := f.web(t, bot.Slack, expertID, deskChannel)
	resp, page = fetch(t, lc, http.MethodGet, late2, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	f.clock.Advance(web.SignInLinkTTL + time.Second)
	resp, page = f.pressSignIn(t, lc, late2, csrfOf(t, page), f.base)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, page, "This sign-in link has expired")

	// Unknown or malformed: not found.
	for _, bad := range []string{strings.Repeat("A", 43), "x", "..%2f..%2fetc"} {
		resp, page = fetch(t, client(t), http.MethodGet, f.base+web.SignInPath+bad, nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, bad)
		require.Contains(t, page, "This sign-in link is not valid")
	}
	resp, page = f.pressSignIn(t, client(t), f.base+web.SignInPath+strings.Repeat("A", 43), "x", "https://evil.example")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "posted, from anywhere: the same page")
	require.Contains(t, page, "This sign-in link is not valid")
	require.Equal(t, 1.0, f.counter(t, "threatdesk_web_signins_total", "signed_in"))
	require.Equal(t, 4.0, f.counter(t, "threatdesk_web_signins_total", "asked"))
	require.Equal(t, 2.0, f.counter(t, "threatdesk_web_signins_total", "link_used"))
	require.Equal(t, 2.0, f.counter(t, "threatdesk_web_signins_total", "link_expired"))
	require.Equal(t, 1.0, f.counter(t, "threatdesk_web_signins_total", "preview_refused"))
	require.Equal(t, 4.0, f.counter(t, "threatdesk_web_signins_total", "link_unknown"))
}

// counter is the value of counter name with the one label value given.
func (f *tracker) counter(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// signedIn is a client signed in through "/experts web" as userID in channel.
func (f *tracker) signedIn(t *testing.T, p bot.Platform, userID, channel string) *http.Client {
	t.Helper()
	c := client(t)
	f.signIn(t, c, f.web(t, p, userID, channel))
	return c
}

// TestTrackerRoles: the pages follow chat's roles. A member sees their org
// only: another org's case is "not found" word for word as a case that
// does not exist, and so is a sample download; internal notes and
// downloads are for experts; managers see every org without either.
func TestTrackerRoles(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	caseURL := func(ref string) string { return f.base + "/web/cases/" + ref }
	const note = "203.0.113.7"

	m := f.signedIn(t, bot.Slack, analyst, contosoSOC)
	_, list := fetch(t, m, http.MethodGet, f.base+web.TrackerPath+"?status=all", nil)
	require.Contains(t, list, ">"+f.showcase+"<")
	require.NotContains(t, list, ">"+f.fabCase+"<")
	require.NotContains(t, list, "Fabrikam")
	require.NotContains(t, list, `name="org"`, "a member has no org to choose")
	resp, foreign := fetch(t, m, http.MethodGet, caseURL(f.fabCase), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, missing := fetch(t, m, http.MethodGet, caseURL("EOD-99999"), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, missing, foreign, "another org's case is answered as a missing one")
	resp, bad := fetch(t, m, http.MethodGet, caseURL("not-a-ref"), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, missing, bad)
	resp, page := fetch(t, m, http.MethodGet, caseURL(f.showcase), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "beacon.dll")
	require.Contains(t, page, "Isolate ws-017 now")
	require.NotContains(t, page, note, "internal notes are for experts")
	require.Contains(t, page, "Internal expert notes are not shown.")
	require.Contains(t, page, "Internal expert note (for experts only)", "its timeline entry stays, withheld")
	require.NotContains(t, page, `class="download"`)
	resp, _ = fetch(t, m, http.MethodPost, caseURL(f.showcase)+"/download", url.Values{"csrf": {csrfOf(t, page)}, "sample": {"1"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a member cannot download")
	resp, page = fetch(t, m, http.MethodGet, f.base+web.TrackerPath+"?org=fabrikam", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, page, `there is no org &#34;fabrikam&#34; to choose`)
	resp, page = fetch(t, m, http.MethodGet, f.base+"/web/report?org=fabrikam", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, page, `there is no org &#34;fabrikam&#34; to choose`)

	// A Fabrikam member (on Discord) sees Fabrikam's only.
	fm := f.signedIn(t, bot.Discord, fabAnalyst, fabSOC)
	_, list = fetch(t, fm, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Contains(t, list, ">"+f.fabCase+"<")
	require.NotContains(t, list, ">"+f.showcase+"<")
	resp, _ = fetch(t, fm, http.MethodGet, caseURL(f.showcase), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	mg := f.signedIn(t, bot.Slack, managerID, deskChannel)
	_, list = fetch(t, mg, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Contains(t, list, ">"+f.fabCase+"<")
	require.Contains(t, list, ">"+f.showcase+"<")
	_, page = fetch(t, mg, http.MethodGet, caseURL(f.showcase), nil)
	require.NotContains(t, page, note)
	require.NotContains(t, page, `class="download"`)
	resp, _ = fetch(t, mg, http.MethodPost, caseURL(f.showcase)+"/download", url.Values{"csrf": {csrfOf(t, page)}, "sample": {"1"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "only experts download")

	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	_, page = fetch(t, ex, http.MethodGet, caseURL(f.showcase), nil)
	require.Contains(t, page, note)
	require.Contains(t, page, "Internal note · experts only")
	require.Contains(t, page, `class="download"`)
	resp, _ = fetch(t, ex, http.MethodPost, caseURL(f.showcase)+"/download", url.Values{"sample": {"1"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "no CSRF token")
	resp, _ = fetch(t, ex, http.MethodPost, caseURL(f.showcase)+"/download", url.Values{"csrf": {csrfOf(t, page)}, "sample": {"1"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, web.DownloadPath), loc)
	resp, zip := fetch(t, ex, http.MethodGet, f.base+loc, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	name, plain := unzipAES(t, []byte(zip), web.SamplePassword)
	require.Equal(t, "beacon.dll", name)
	require.Equal(t, f.sample, plain)
	_, page = fetch(t, ex, http.MethodGet, caseURL(f.showcase), nil)
	require.Contains(t, page, "Sample beacon.dll downloaded by Eve Expert", "the download is on the timeline")
	require.Contains(t, page, "Chain intact")
}

// TestTrackerForms: every form needs the session's CSRF token (none, or
// another session's, is refused and changes nothing); signing out ends the
// session in the database, so the same cookie no longer works.
func TestTrackerForms(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	a := f.signedIn(t, bot.Slack, expertID, deskChannel)
	b := f.signedIn(t, bot.Slack, managerID, deskChannel)
	_, pageA := fetch(t, a, http.MethodGet, f.base+web.TrackerPath, nil)
	_, pageB := fetch(t, b, http.MethodGet, f.base+web.TrackerPath, nil)
	tokA, tokB := csrfOf(t, pageA), csrfOf(t, pageB)
	require.NotEqual(t, tokA, tokB)
	require.Equal(t, strings.Count(pageA, "<form"), strings.Count(pageA, `name="csrf" value="`+tokA+`"`), "every form carries the token")
	out := f.base + "/web/logout"
	for _, form := range []url.Values{{}, {"csrf": {tokB}}, {"csrf": {""}}} {
		resp, page := fetch(t, a, http.MethodPost, out, form)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Contains(t, page, "This form has expired")
	}
	resp, _ := fetch(t, a, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "still signed in")
	resp, _ = fetch(t, a, http.MethodGet, out, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "a link cannot sign out")

	// Keep the cookie to replay it after signing out.
	u, err := url.Parse(f.base + web.TrackerPath)
	require.NoError(t, err)
	cookies := a.Jar.Cookies(u)
	require.Len(t, cookies, 1)
	resp, page := fetch(t, a, http.MethodPost, out, url.Values{"csrf": {tokA}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "Signed out")
	var reason string
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT end_reason FROM web_sessions WHERE id_hash = sha256(convert_to($1, 'UTF8'))
 AND ended_at IS NOT NULL`, cookies[0].Value).Scan(&reason))
	require.Equal(t, "signed out", reason)
	replay := client(t)
	replay.Jar.SetCookies(u, cookies)
	resp, page = fetch(t, replay, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the old cookie is worthless")
	require.Contains(t, page, "type /experts web")
	resp, _ = fetch(t, b, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "another session is untouched")
	resp, _ = fetch(t, client(t), http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestTrackerAccessFollowsTheConfig: roles are checked against the running
// config on every request: an expert removed from it, or a member whose
// channel no longer belongs to their org, loses the pages at once and
// their session ends; a sign-in link made before opens nothing.
func TestTrackerAccessFollowsTheConfig(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	mem := f.signedIn(t, bot.Slack, analyst, contosoSOC)
	pending := f.web(t, bot.Slack, expertID, deskChannel)

	cfg := trackerBotConfig()
	cfg.Experts.Slack = []string{"U0EXPERT2"}
	cfg.Orgs[0].Slack.Channels = []string{"C0CONTOSONEW"}
	f.dir.b.Store(f.newBot(t, cfg))

	resp, page := fetch(t, ex, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, page, "You no longer have access")
	resp, _ = fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_sessions WHERE end_reason = 'access removed'`).Scan(&n))
	require.Equal(t, 2, n)
	resp, page = fetch(t, client(t), http.MethodGet, pending, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, page, "You no longer have access")

	// Back in the config: the ended sessions stay ended.
	f.dir.b.Store(f.bot)
	resp, _ = fetch(t, ex, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// A manager who is also listed as an expert keeps what the link gave:
	// a session opened as a member does not become an expert's.
	cfg = trackerBotConfig()
	cfg.Experts.Slack = append(cfg.Experts.Slack, analyst)
	f.dir.b.Store(f.newBot(t, cfg))
	mem = f.signedIn(t, bot.Slack, analyst, contosoSOC)
	f.dir.b.Store(f.bot)
	_, page = fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Contains(t, page, "member · Contoso", "expert role dropped with the config")
}

// TestTrackerEndsWhenThePersonLeavesChat: a member who left the org's
// channel, and an expert whose Slack account was deactivated, still in the
// config, lose the tracker within PresenceEvery (they kept it until the
// session's end, 12 h); a manager who signed in from that channel and left
// it keeps it (a manager's access is not the channel's). A look-up that
// fails keeps the session and is tried again a minute later; one session's
// requests ask once per period.
func TestTrackerEndsWhenThePersonLeavesChat(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	mem := f.signedIn(t, bot.Slack, analyst, contosoSOC)
	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	mgr := f.signedIn(t, bot.Slack, managerID, contosoSOC)
	chat := f.slackOf[f.bot]
	for _, c := range []*http.Client{mem, ex, mgr} {
		resp, _ := fetch(t, c, http.MethodGet, f.base+web.TrackerPath, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	calls := chat.PresentCalls()
	require.Equal(t, 3, calls, "one look-up per session")
	for range 3 {
		resp, _ := fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.Equal(t, calls, chat.PresentCalls(), "not again within the period")

	// A failed look-up keeps the session, and is tried again a minute later.
	chat.FailPresent(errors.New("slack: no answer"))
	f.clock.Advance(web.PresenceEvery)
	resp, _ := fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	chat.FailPresent(nil)

	chat.Leave(contosoSOC, analyst)
	chat.Deactivate(expertID)
	chat.Leave(contosoSOC, managerID)
	resp, _ = fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the failed look-up is retried after a minute, not at once")
	f.clock.Advance(time.Minute)
	resp, page := fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, page, "no longer in the channel that gave you access")
	f.clock.Advance(web.PresenceEvery)
	resp, page = fetch(t, ex, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, page, "You no longer have access")
	resp, _ = fetch(t, mgr, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the manager's access is not the channel's")
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_sessions WHERE end_reason = 'left chat'`).Scan(&n))
	require.Equal(t, 2, n)
	require.Equal(t, 2.0, f.counter(t, "threatdesk_web_sessions_ended_total", "left_chat"))
}

// TestTrackerBehindAPrefix: with THREATDESK_PUBLIC_URL on https under a
// path, links, redirects and the cookie's path carry the prefix, and the
// cookie is Secure.
func TestTrackerBehindAPrefix(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, func(string) string { return "https://threatdesk.example.com/td" })
	ack, m := f.command(t, bot.Slack, expertID, deskChannel)
	require.True(t, ack.Private)
	var link string
	for _, sp := range m.Text[0] {
		if sp.Link != "" {
			link = sp.Link
		}
	}
	require.True(t, strings.HasPrefix(link, "https://threatdesk.example.com/td/web/login/"), link)
	require.NotContains(t, bottest.Plain(m), "only works on the machine")
	// The proxy in front strips /td.
	direct := f.base + strings.TrimPrefix(link, "https://threatdesk.example.com/td")
	c := client(t)
	resp, page := fetch(t, c, http.MethodGet, direct, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `<form method="post" action="/td/web/login/`)
	var nonce *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "threatdesk_signin" {
			nonce = ck
		}
	}
	require.NotNil(t, nonce)
	require.True(t, nonce.Secure)
	require.Equal(t, "/td/web/login/", nonce.Path)
	require.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"), "over https only, from now on")
	// The jar keeps a Secure cookie from plain http; the browser behind
	// the https proxy sends it.
	hdr := http.Header{"Origin": {"https://threatdesk.example.com"}, "Cookie": {nonce.Name + "=" + nonce.Value}}
	resp, _ = fetchWith(t, c, http.MethodPost, direct, url.Values{"csrf": {csrfOf(t, page)}}, http.Header{"Origin": {f.base},
		"Cookie": hdr["Cookie"]})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "the Origin must be THREATDESK_PUBLIC_URL's, not the address reached")
	resp, _ = fetchWith(t, c, http.MethodPost, direct, url.Values{"csrf": {csrfOf(t, page)}}, hdr)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/td/web/", resp.Header.Get("Location"))
	ck := resp.Cookies()
	require.Len(t, ck, 1)
	require.True(t, ck[0].Secure)
	require.Equal(t, "/td/web/", ck[0].Path)
}

// TestSignInRefusesForgery: login CSRF. A sign-in link's owner cannot
// sign someone else's browser in as themselves: the POST that signs in is
// refused from another site (Origin, or Referer without one), without an
// Origin or Referer, without the page's form token, and with a token from
// a page loaded by another browser (the attacker's own GET); each refusal
// uses nothing up, and the link then signs in once. The page names whose
// link it is, escaped.
func TestSignInRefusesForgery(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	link := f.web(t, bot.Slack, expertID, deskChannel)
	victim := client(t)
	resp, page := fetch(t, victim, http.MethodGet, link, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	tok := csrfOf(t, page)
	attacker := client(t)
	resp, attackerPage := fetch(t, attacker, http.MethodGet, link, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEqual(t, tok, csrfOf(t, attackerPage), "the token is bound to the browser that loaded the page")

	post := func(form url.Values, hdr http.Header) (*http.Response, string) {
		t.Helper()
		return fetchWith(t, victim, http.MethodPost, link, form, hdr)
	}
	refused := []struct {
		name  string
		form  url.Values
		hdr   http.Header
		title string
	}{
		{"another site's Origin", url.Values{"csrf": {tok}}, http.Header{"Origin": {"https://evil.example"}}, "did not come from threatdesk&#39;s page"},
		{"same host, another port", url.Values{"csrf": {tok}}, http.Header{"Origin": {"http://127.0.0.1:1"}}, "did not come from threatdesk&#39;s page"},
		{"Origin: null", url.Values{"csrf": {tok}}, http.Header{"Origin": {"null"}, "Referer": {f.base + "/"}}, "did not come from threatdesk&#39;s page"},
		{"another site's Referer", url.Values{"csrf": {tok}}, http.Header{"Referer": {"https://evil.example" + web.SignInPath}}, "did not come from threatdesk&#39;s page"},
		{"neither Origin nor Referer", url.Values{"csrf": {tok}}, nil, "did not come from threatdesk&#39;s page"},
		{"no form token", url.Values{}, http.Header{"Origin": {f.base}}, "This sign-in form has expired"},
		{"another browser's form token", url.Values{"csrf": {csrfOf(t, attackerPage)}}, http.Header{"Origin": {f.base}}, "This sign-in form has expired"},
	}
	for _, tc := range refused {
		resp, page := post(tc.form, tc.hdr)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, tc.name)
		require.Contains(t, page, tc.title, tc.name)
		require.Empty(t, resp.Cookies(), tc.name)
		require.False(t, f.linkUsed(t, link), "%s: nothing used up", tc.name)
	}
	resp, _ = fetch(t, victim, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, 5.0, f.counter(t, "threatdesk_web_signins_total", "cross_site_refused"))
	require.Equal(t, 2.0, f.counter(t, "threatdesk_web_signins_total", "form_refused"))
	require.Zero(t, f.counter(t, "threatdesk_web_signins_total", "signed_in"))

	// The victim's own page, from threatdesk (Referer without Origin is
	// enough), signs in once.
	resp, _ = post(url.Values{"csrf": {tok}}, http.Header{"Referer": {link}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.True(t, f.linkUsed(t, link))
	resp, _ = fetch(t, victim, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Whose link: a hostile display name is text; a member's link names
	// their org.
	hostile := `<img src=x onerror=alert(1)>"&`
	wl, err := f.h.SignInLink(context.Background(), bot.WebUser{User: bot.User{Platform: bot.Slack, Workspace: slackTeam,
		ID: expertID, DisplayName: hostile}, Channel: deskChannel, Roles: []bot.Role{bot.RoleExpert}})
	require.NoError(t, err)
	resp, page = fetch(t, client(t), http.MethodGet, wl.URL, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `as <span id="signin-name">&lt;img src=x onerror=alert(1)&gt;&#34;&amp;</span> (<span id="signin-where">the expert desk</span>)?`)
	require.NotContains(t, page, "<img")
	resp, page = fetch(t, client(t), http.MethodGet, f.web(t, bot.Slack, analyst, contosoSOC), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `as <span id="signin-name">Ana Lyst</span> (<span id="signin-where">Contoso</span>)?`)
	// curl gets the question as text.
	req, err := http.NewRequest(http.MethodGet, f.web(t, bot.Slack, managerID, deskChannel), nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "Sign in to threatdesk's case tracker as Max Manager (the expert desk)?\nOpen the link in a browser and press Sign in.\n", string(body))
}

// TestSignInOriginAsBrowsersSendIt: THREATDESK_PUBLIC_URL written with
// capitals and the default port still matches the Origin a browser sends
// (lower case, no default port); a different port or scheme does not.
func TestSignInOriginAsBrowsersSendIt(t *testing.T) {
	t.Parallel()
	const public = "https://ThreatDesk.Example.com:443/td"
	f := setupTracker(t, func(string) string { return public })
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"http://threatdesk.example.com", http.StatusForbidden},
		{"https://threatdesk.example.com:8443", http.StatusForbidden},
		{"https://threatdesk.example.com.evil.example", http.StatusForbidden},
		{"https://threatdesk.example.com", http.StatusSeeOther},
	} {
		_, m := f.command(t, bot.Slack, expertID, deskChannel)
		var link string
		for _, sp := range m.Text[0] {
			if sp.Link != "" {
				link = sp.Link
			}
		}
		require.True(t, strings.HasPrefix(link, public+web.SignInPath), link)
		direct := f.base + strings.TrimPrefix(link, public)
		c := client(t)
		resp, page := fetch(t, c, http.MethodGet, direct, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var nonce string
		for _, ck := range resp.Cookies() {
			if ck.Name == "threatdesk_signin" {
				nonce = ck.Value
			}
		}
		resp, _ = fetchWith(t, c, http.MethodPost, direct, url.Values{"csrf": {csrfOf(t, page)}},
			http.Header{"Origin": {tc.origin}, "Cookie": {"threatdesk_signin=" + nonce}})
		require.Equal(t, tc.want, resp.StatusCode, tc.origin)
		require.Equal(t, tc.want == http.StatusSeeOther, f.linkUsed(t, link), tc.origin)
	}
}

// TestTrackerPages: the list's filters, search and pages, the case page's
// escaping, the report's figures, and the headers every page carries.
func TestTrackerPages(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	list := func(q string) (int, []string, string) {
		t.Helper()
		resp, page := fetch(t, ex, http.MethodGet, f.base+web.TrackerPath+q, nil)
		var refs []string
		for _, m := range regexp.MustCompile(`class="ref">(EOD-\d+)<`).FindAllStringSubmatch(page, -1) {
			refs = append(refs, m[1])
		}
		return resp.StatusCode, refs, page
	}
	status, refs, page := list("")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, refs, f.showcase)
	require.Contains(t, refs, f.fabCase)
	require.Len(t, refs, 5, "open: the showcase, the hostile one, Fabrikam's and the last week's two")
	_, refs, page = list("?status=all&priority=high")
	require.NotEmpty(t, refs)
	require.Equal(t, len(refs), strings.Count(page, `class="prio prio-high"`))
	require.NotContains(t, page, `class="prio prio-low"`)
	_, refs, page = list("?status=all&org=fabrikam")
	require.Contains(t, refs, f.fabCase)
	require.NotContains(t, refs, f.showcase)
	require.NotContains(t, page, "<td>Contoso</td>")
	_, refs, _ = list("?status=concluded&org=contoso")
	require.Len(t, refs, 9)
	for _, q := range []string{"?status=soon", "?priority=urgent", "?org=initech", "?page=0", "?page=x"} {
		status, _, page = list(q)
		require.Equal(t, http.StatusBadRequest, status, q)
		require.Contains(t, page, "That filter does not work")
	}
	// The filter form redirects to the list with its choices.
	resp, _ := fetch(t, ex, http.MethodPost, f.base+web.TrackerPath, url.Values{"csrf": {csrfOf(t, page)}, "status": {"all"},
		"priority": {"high"}, "org": {"contoso"}, "breaching": {"1"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/web/?breaching=1&org=contoso&priority=high&status=all", resp.Header.Get("Location"))
	_, refs, _ = list("?breaching=1&org=contoso&priority=high&status=all")
	require.Contains(t, refs, f.showcase, "the showcase's conclusion clock is past its warning point")

	// Search, as in chat: an expert's search reads internal notes; the
	// text is in the POST body, never in the URL.
	tok := csrfOf(t, page)
	search := func(c *http.Client, tok, q string) []string {
		t.Helper()
		resp, page := fetch(t, c, http.MethodPost, f.base+"/web/search", url.Values{"csrf": {tok}, "q": {q}})
		require.Equal(t, http.StatusOK, resp.StatusCode, page)
		var refs []string
		for _, m := range regexp.MustCompile(`class="ref">(EOD-\d+)<`).FindAllStringSubmatch(page, -1) {
			refs = append(refs, m[1])
		}
		return refs
	}
	require.Equal(t, []string{f.showcase}, search(ex, tok, "beacon"))
	require.Equal(t, []string{f.showcase}, search(ex, tok, "203.0.113.7"))
	require.Contains(t, search(ex, tok, "@"+analyst), f.showcase)
	mem := f.signedIn(t, bot.Slack, analyst, contosoSOC)
	_, mpage := fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
	require.Empty(t, search(mem, csrfOf(t, mpage), "203.0.113.7"), "a member's search does not read internal notes")
	require.Empty(t, search(mem, csrfOf(t, mpage), "ws-099"), "nor another org's cases")
	resp, page = fetch(t, ex, http.MethodPost, f.base+"/web/search", url.Values{"csrf": {tok}, "q": {"is the"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, page, "has only common words")

	// The case page escapes what people wrote and links only Microsoft's portals.
	resp, page = fetch(t, ex, http.MethodGet, f.base+"/web/cases/"+f.hostile, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, page, "<script>")
	require.NotContains(t, page, "<img")
	require.NotContains(t, page, "<i onmouseover")
	require.NotContains(t, page, `href="javascript`)
	require.Contains(t, page, "&lt;script&gt;window.__pwned = 1&lt;/script&gt;")
	require.Contains(t, page, "<code>javascript:alert(1)</code>", "an alert's other links are shown as text")
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.NotContains(t, csp, "unsafe-inline")
	require.NotContains(t, csp, "script-src")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	// The report: casework's figures, with its charts.
	resp, page = fetch(t, ex, http.MethodGet, f.base+"/web/report", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "Q1 2026 · all orgs")
	require.Equal(t, 4, strings.Count(page, `<svg class="chart"`))
	require.Contains(t, page, `<span class="big" id="opened">20</span>`, "12 Contoso cases and 8 Fabrikam cases this quarter")
	require.Contains(t, page, "high 1h")
	require.Contains(t, page, ", IP address 0, URL or domain 0, actor 0, general question", "every subject kind is counted")
	resp, page = fetch(t, ex, http.MethodGet, f.base+"/web/report?back=1", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "Q4 2025 · all orgs")
	require.Contains(t, page, `id="opened">0<`)
	resp, page = fetch(t, ex, http.MethodGet, f.base+"/web/report?period=month&org=fabrikam", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, "March 2026 · Fabrikam")
	for _, q := range []string{"?period=year", "?back=-1", "?back=41", "?org=initech"} {
		resp, _ = fetch(t, ex, http.MethodGet, f.base+"/web/report"+q, nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}
}

// TestTrackerListPages: the list pages by 25 with Previous and Next links
// that keep the filters, every case once; a search pages with More, its
// text and cursor posted, never in the URL.
func TestTrackerListPages(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	var all []string
	for i := range 30 {
		f.clock.Advance(time.Minute)
		org := []string{"contoso", "fabrikam"}[i%2] // 20 credits a quarter each
		all = append(all, f.open(t, org, casework.Subject{Kind: casework.SubjectNone}, casework.PriorityLow,
			fmt.Sprintf("Question %d about lateral movement", i)))
	}
	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	refsOf := func(page string) []string {
		var refs []string
		for _, m := range regexp.MustCompile(`class="ref">(EOD-\d+)<`).FindAllStringSubmatch(page, -1) {
			refs = append(refs, m[1])
		}
		return refs
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next"`)
	_, page := fetch(t, ex, http.MethodGet, f.base+web.TrackerPath+"?priority=low", nil)
	first := refsOf(page)
	require.Len(t, first, 25)
	require.Contains(t, page, "1–25 of 30 cases")
	m := next.FindStringSubmatch(page)
	require.NotNil(t, m)
	require.True(t, strings.HasPrefix(m[1], "/web/?after="), m[1])
	require.Contains(t, m[1], "&amp;page=2&amp;priority=low")
	// The first case is concluded while page 1 is read: the next page
	// goes on after page 1's last case. (It went by count: the 26th case
	// moved up to page 1, unseen, and page 2 began with the 27th.)
	_, err := f.svc.Take(context.Background(), first[0], eve)
	require.NoError(t, err)
	f.to(t, first[0], casework.StatusConcluded, "Benign admin activity.")
	_, page = fetch(t, ex, http.MethodGet, f.base+html.UnescapeString(m[1]), nil)
	second := refsOf(page)
	require.Len(t, second, 5)
	require.Contains(t, page, "25–29 of 29 cases", "where they stand now")
	require.Contains(t, page, `href="/web/?priority=low" rel="prev"`)
	require.Nil(t, next.FindStringSubmatch(page))
	require.ElementsMatch(t, all, append(first, second...), "every case once")
	_, page = fetch(t, ex, http.MethodGet, f.base+"/web/?page=3&priority=low", nil)
	require.Contains(t, page, "past the end of the list")
	resp, _ := fetch(t, ex, http.MethodGet, f.base+"/web/?page=2&priority=low&after=1.x.y.0.-.2.z", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "a made-up token")

	tok := csrfOf(t, page)
	resp, page = fetch(t, ex, http.MethodPost, f.base+"/web/search", url.Values{"csrf": {tok}, "q": {"lateral movement"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	found := refsOf(page)
	require.Len(t, found, 25)
	require.Equal(t, all[29], found[0], "newest first")
	cursor := regexp.MustCompile(`name="cursor" value="([^"]+)"`).FindStringSubmatch(page)
	require.NotNil(t, cursor, "a More button")
	require.Contains(t, page, `name="q" value="lateral movement"`)
	_, page = fetch(t, ex, http.MethodPost, f.base+"/web/search", url.Values{"csrf": {tok}, "q": {"lateral movement"}, "cursor": {cursor[1]}})
	rest := refsOf(page)
	require.Len(t, rest, 5)
	require.ElementsMatch(t, all, append(found, rest...))
	require.NotContains(t, page, `name="cursor"`)
}

// TestTrackerEndsWhenPresenceStaysUnconfirmed: look-ups that keep failing
// kept the session to its end, 12 h: with the workspace having removed
// the app (every look-up refused for good), a member who left the org's
// channel kept reading its cases (from a review). After
// PresenceUnconfirmed of failures the session ends, saying why; a
// look-up that answers in between starts the count again.
func TestTrackerEndsWhenPresenceStaysUnconfirmed(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	mem := f.signedIn(t, bot.Slack, analyst, contosoSOC)
	chat := f.slackOf[f.bot]
	get := func() (int, string) {
		t.Helper()
		resp, page := fetch(t, mem, http.MethodGet, f.base+web.TrackerPath, nil)
		return resp.StatusCode, page
	}
	code, _ := get()
	require.Equal(t, http.StatusOK, code)

	// Failing, then answering: the count starts again.
	chat.FailPresent(errors.New("slack: no answer"))
	for range 5 {
		f.clock.Advance(web.PresenceEvery)
		code, _ = get()
		require.Equal(t, http.StatusOK, code)
	}
	chat.FailPresent(nil)
	f.clock.Advance(web.PresenceEvery)
	code, _ = get()
	require.Equal(t, http.StatusOK, code)

	// Two blips 40 minutes apart, the session idle between them: no half
	// hour of failures (from a review).
	chat.FailPresent(errors.New("slack: no answer"))
	f.clock.Advance(web.PresenceEvery)
	code, _ = get()
	require.Equal(t, http.StatusOK, code)
	f.clock.Advance(40 * time.Minute)
	code, _ = get()
	require.Equal(t, http.StatusOK, code, "two failed look-ups do not end it")
	chat.FailPresent(nil)
	f.clock.Advance(web.PresenceEvery)
	code, _ = get()
	require.Equal(t, http.StatusOK, code)

	chat.Leave(contosoSOC, analyst)
	chat.FailPresent(bot.PermanentError("app_uninstalled", "", errors.New("workspace T0CONTOSO removed threatdesk")))
	var page string
	for i := 0; ; i++ {
		f.clock.Advance(web.PresenceEvery)
		if code, page = get(); code != http.StatusOK {
			break
		}
		require.Less(t, i, int(web.PresenceUnconfirmed/web.PresenceEvery), "still signed in after %s of refused look-ups", time.Duration(i+1)*web.PresenceEvery)
	}
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, page, "could not confirm with your chat platform")
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM web_sessions WHERE end_reason = 'presence unconfirmed'`).Scan(&n))
	require.Equal(t, 1, n)
}

// TestDownloadLinkNeedsAnExpertStill: a download link is a bearer link for
// 10 minutes. One issued to an expert whom the config then drops still
// served the sample, recorded as that expert's download (from a review).
// It is refused, and stays unused.
func TestDownloadLinkNeedsAnExpertStill(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	ex := f.signedIn(t, bot.Slack, expertID, deskChannel)
	caseURL := f.base + "/web/cases/" + f.showcase
	_, page := fetch(t, ex, http.MethodGet, caseURL, nil)
	resp, _ := fetch(t, ex, http.MethodPost, caseURL+"/download", url.Values{"csrf": {csrfOf(t, page)}, "sample": {"1"}})
	loc := resp.Header.Get("Location")
	require.NotEmpty(t, loc)

	cfg := trackerBotConfig()
	cfg.Experts.Slack = []string{"U0EXPERT2"}
	f.dir.b.Store(f.newBot(t, cfg))
	f.clock.Advance(time.Minute)
	resp, body := fetch(t, client(t), http.MethodGet, f.base+loc, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "no longer lists the expert it was issued to")
	var used int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM case_download_links WHERE used_at IS NOT NULL`).Scan(&used))
	require.Zero(t, used, "the link is not used up")

	f.dir.b.Store(f.bot) // the expert again
	resp, _ = fetch(t, client(t), http.MethodGet, f.base+loc, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
