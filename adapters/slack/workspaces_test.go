package slack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// The provider's workspace (the desk's) and two customers'.
const (
	wsProvider = "T0PROVIDER"
	wsContoso  = "T0CONTOSO"
	wsFabrikam = "T0FABRIKAM"
	chDesk     = "C0DESK"
	chContoso  = "C0CONTOSOSOC"
	chFabrikam = "C0FABRIKAMSOC"
	uExpert    = "U0EXPERT1"
	uAdmin     = "U0ADMIN1"
	uContoso   = "U0CONTOSO1"
	uFabrikam  = "U0FABRIKAM1"
)

// logBook keeps every log line of a test, for checks (no token is ever in
// one), and passes them to the test log.
type logBook struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   *testWriter
}

func (l *logBook) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	return l.w.Write(p)
}

func (l *logBook) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// workspacesBot is the real bot and adapter with Add to Slack set up, the
// install pages served at app's URL.
type workspacesBot struct {
	key  *secrets.Key
	db   *pgxpool.Pool
	app  *httptest.Server
	logs *logBook
	reg  *prometheus.Registry
}

func startWorkspacesBot(t *testing.T, ctx context.Context, fake *slackfake.Server, app *httptest.Server, handler *atomic.Pointer[http.Handler], cfg bot.Config) workspacesBot {
	t.Helper()
	db := pgtest.New(t)
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	logs := &logBook{w: tw}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)
	b, err := bot.New(cfg, db, bot.NewCaseworkCases(cw), nil, log, prometheus.NewRegistry())
	require.NoError(t, err)
	opts := fake.Options()
	reg := prometheus.NewRegistry()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), AppToken: secrets.String(opts.AppToken),
		SigningSecret: secrets.String(opts.SigningSecret),
		APIURL:        fake.APIURL(), Replays: b, ClientID: opts.ClientID, ClientSecret: secrets.String(opts.ClientSecret),
		Pool: db, Key: key, Orgs: b, PublicURL: app.URL}, log, reg, b)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /slack/", a.InstallHandler())
	mux.Handle("POST /slack/", a.Handler()) // HTTP mode beside Socket Mode: events carry their team either way
	var h http.Handler = mux
	handler.Store(&h)
	b.UseInstaller(a)
	require.NoError(t, b.Register(a))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, fake.WaitConnected(ctx))
	return workspacesBot{key: key, db: db, app: app, logs: logs, reg: reg}
}

var installLinkRE = regexp.MustCompile(`https?://[^|>\s"\\]+/slack/install\?state=[A-Za-z0-9._-]+`)

func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(raw)
}

// TestTwoCustomerWorkspaces installs two customer workspaces through Add to
// Slack against the fake, runs a consult from each to the provider's desk
// and the expert's answer back, each with its own workspace's token; checks
// forged, reused and stolen install links are refused, that a workspace's
// events act only for its own org, and that an uninstalled workspace gets
// nothing more.
func TestTwoCustomerWorkspaces(t *testing.T) {
	t.Parallel()
	var handler atomic.Pointer[http.Handler]
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(app.Close)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:      wsProvider,
		RedirectURI: app.URL + "/slack/oauth/callback",
		Teams:       []slackfake.Team{{ID: wsContoso, Name: "Contoso"}, {ID: wsFabrikam, Name: "Fabrikam"}, {ID: "E0GRID", Name: "Grid", Enterprise: true}},
		Channels: []slackfake.Channel{{ID: chDesk, Name: "expert-desk"},
			{ID: chContoso, Name: "soc", Team: wsContoso}, {ID: chFabrikam, Name: "soc", Team: wsFabrikam}},
		Users: []slackfake.User{{ID: uExpert, Name: "eve"}, {ID: uAdmin, Name: "ada"},
			{ID: uContoso, Name: "carol", Team: wsContoso}, {ID: uFabrikam, Name: "fred", Team: wsFabrikam}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	w := startWorkspacesBot(t, ctx, fake, app, &handler, bot.Config{
		Orgs: []bot.Org{
			{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: wsContoso, Channels: []string{chContoso}}},
			{ID: "fabrikam", Name: "Fabrikam", Slack: &bot.SlackPlace{Team: wsFabrikam, Channels: []string{chFabrikam}}},
		},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: wsProvider, Channel: chDesk}},
		Experts: bot.UserIDs{Slack: []string{uExpert}},
		Admins:  bot.UserIDs{Slack: []string{uAdmin}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {Every: 10 * time.Millisecond, Burst: 10}}},
	})
	wait := func(what string, cond func() bool) {
		t.Helper()
		// Generous: the whole suite may run under -race on a loaded machine.
		if !testwait.Until(time.Minute, cond, fake) {
			for _, m := range fake.Messages("") {
				t.Logf("message %s %s thread=%q eph=%v team=%s: %s %s", m.Channel, m.TS, m.ThreadTS, m.Ephemeral, m.Team, m.Text, texts(t, m.Blocks))
			}
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	find := func(ch, thread, want string) (slackfake.Message, bool) {
		for _, m := range fake.Messages(ch) {
			if m.ThreadTS == thread && !m.Ephemeral && strings.Contains(m.Text+"\n"+texts(t, m.Blocks), want) {
				return m, true
			}
		}
		return slackfake.Message{}, false
	}
	installLink := func(org string) string {
		t.Helper()
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: uAdmin, ChannelID: chDesk, TeamID: wsProvider, Text: "install-link " + org})
		require.NoError(t, err)
		var payload struct {
			ResponseType string `json:"response_type"`
		}
		require.NoError(t, json.Unmarshal(ack.Payload, &payload))
		require.Equal(t, "ephemeral", payload.ResponseType, "the link is shown to the admin only")
		link := installLinkRE.FindString(strings.ReplaceAll(string(ack.Payload), `\u0026`, "&"))
		require.NotEmpty(t, link, "an install link in %s", ack.Payload)
		require.True(t, strings.HasPrefix(link, app.URL+"/slack/install?state="), link)
		// The state is sealed: whoever holds the link reads neither the
		// org nor who asked for it (it was only signed).
		u, err := url.Parse(link)
		require.NoError(t, err)
		bodyPart, _, _ := strings.Cut(u.Query().Get("state"), ".")
		clear, err := base64.RawURLEncoding.DecodeString(bodyPart)
		require.NoError(t, err)
		require.NotContains(t, string(clear), uAdmin)
		require.NotContains(t, string(clear), org)
		return link
	}

	// 1. A member of a customer cannot ask for install links.
	ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: uExpert, ChannelID: chDesk, TeamID: wsProvider, Text: "install-link contoso"})
	require.NoError(t, err)
	require.NotRegexp(t, installLinkRE, string(ack.Payload))

	// 2. Forged states are refused on both pages.
	other, err := secrets.Generate()
	require.NoError(t, err)
	forged := other.SignToken(secrets.PurposeSlackInstall, []byte(`{"org":"contoso","by":"slack:U0ADMIN1","n":"00"}`), time.Now().Add(time.Hour))
	for _, path := range []string{"/slack/install?state=", "/slack/oauth/callback?code=x&state="} {
		resp, err := http.Get(app.URL + path + forged)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
		require.Contains(t, body(t, resp), "not one threatdesk made")
		// Never framed, nothing loaded, not sniffed.
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'", path)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
	}

	// An expired link is refused too.
	expired := w.key.SignToken(secrets.PurposeSlackInstall, []byte(`{"org":"contoso","by":"slack:U0ADMIN1","n":"01"}`), time.Now().Add(-time.Second))
	resp, err := http.Get(app.URL + "/slack/install?state=" + expired)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body(t, resp), "has expired")

	// 3. Contoso's admin installs from the link.
	contosoLink := installLink("contoso")
	browser := newBrowser(t)
	resp, err = fake.Approve(browser, contosoLink, wsContoso, uContoso)
	require.NoError(t, err)
	page := body(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Contains(t, page, "threatdesk is installed")
	require.Contains(t, page, "invite @threatdesk")
	require.Contains(t, page, "/experts help")
	callback := resp.Request.URL.String()
	auth := fake.Authorizes()
	require.NotEmpty(t, auth)
	require.Equal(t, app.URL+"/slack/oauth/callback", auth[len(auth)-1].RedirectURI)
	require.ElementsMatch(t, adapter.BotScopes, strings.Split(auth[len(auth)-1].Scope, ","))

	// 4. The used link, and its callback, are refused the second time.
	resp, err = browser.Get(contosoLink)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body(t, resp), "used already")
	resp, err = browser.Get(callback)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body(t, resp), "used already")

	// 5. A link approved in another workspace than the org's is refused and
	// its token given back; a link opened in one browser cannot be
	// finished in another.
	resp, err = fake.Approve(newBrowser(t), installLink("contoso"), wsFabrikam, uFabrikam)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body(t, resp), "approved in "+wsFabrikam)
	require.Empty(t, fake.TeamToken(wsFabrikam), "the token of the refused install is revoked")
	resp, err = fake.Approve(&http.Client{}, installLink("fabrikam"), wsFabrikam, uFabrikam) // no cookies: another browser
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body(t, resp), "same browser")

	// 6. Fabrikam installs.
	resp, err = fake.Approve(newBrowser(t), installLink("fabrikam"), wsFabrikam, uFabrikam)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	installs := fake.Installs()
	require.Len(t, installs, 3) // contoso, the refused one, fabrikam
	contosoToken, fabrikamToken := fake.TeamToken(wsContoso), fake.TeamToken(wsFabrikam)
	require.NotEmpty(t, contosoToken)
	require.NotEmpty(t, fabrikamToken)

	// A link approved where the app is installed already is refused
	// without revoking the token in use (Slack answers a reinstall with
	// it): in the provider's own workspace, and in another customer's.
	resp, err = fake.Approve(newBrowser(t), installLink("contoso"), wsProvider, uAdmin)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body(t, resp), "approved in "+wsProvider)
	resp, err = fake.Approve(newBrowser(t), installLink("fabrikam"), wsContoso, uContoso)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body(t, resp), "approved in "+wsContoso)
	require.Equal(t, contosoToken, fake.TeamToken(wsContoso), "Contoso's token still works")
	require.Equal(t, fake.Options().BotToken, fake.TeamToken(wsProvider), "SLACK_BOT_TOKEN still works")
	for _, call := range fake.Calls("auth.revoke") {
		require.NotEqual(t, wsContoso, call.Team)
		require.NotEqual(t, wsProvider, call.Team)
	}

	// A link approved across an Enterprise Grid organisation (an
	// org-wide install) is refused, and its token given back. (It was
	// kept at Slack: the app stayed installed across the enterprise.)
	resp, err = fake.Approve(newBrowser(t), installLink("contoso"), "E0GRID", uContoso)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body(t, resp), "not across an Enterprise Grid organisation")
	gridRevoked := false
	for _, call := range fake.Calls("auth.revoke") {
		gridRevoked = gridRevoked || call.Team == "E0GRID"
	}
	require.True(t, gridRevoked, "the org-wide token is given back")

	// The desk is told, the admin mentioned.
	wait("the desk hears of both installs", func() bool {
		_, ok1 := find(chDesk, "", "Contoso")
		_, ok2 := find(chDesk, "", "Fabrikam")
		return ok1 && ok2
	})
	m, _ := find(chDesk, "", "added threatdesk for")
	require.Contains(t, m.Notified, uAdmin)

	// Tokens are sealed in the database, never in clear.
	rows, err := w.db.Query(ctx, `SELECT team_id, org_id, token_sealed, active FROM slack_installations ORDER BY team_id`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var team, org string
		var sealed []byte
		var active bool
		require.NoError(t, rows.Scan(&team, &org, &sealed, &active))
		require.True(t, active)
		require.Equal(t, map[string]string{wsContoso: "contoso", wsFabrikam: "fabrikam"}[team], org)
		for _, in := range installs {
			require.NotContains(t, string(sealed), in.Token)
		}
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 2, n)

	// 7. A consult from each workspace reaches the desk; the expert's
	// answer goes back to the right workspace, with its token.
	type consult struct {
		team, channel, user, question, answer string
		receipt, card                         slackfake.Message
	}
	consults := []*consult{
		{team: wsContoso, channel: chContoso, user: uContoso, question: "Is contoso-dc1 beaconing?", answer: "Contoso: yes, isolate it."},
		{team: wsFabrikam, channel: chFabrikam, user: uFabrikam, question: "Is fabrikam-web2 phishing?", answer: "Fabrikam: a false positive."},
	}
	for _, c := range consults {
		_, err := fake.Command(ctx, slackfake.SlashCommand{UserID: c.user, ChannelID: c.channel, TeamID: c.team, Text: "ask " + c.question})
		require.NoError(t, err)
		wait("receipt and desk card of "+c.team, func() bool {
			var ok1, ok2 bool
			c.receipt, ok1 = find(c.channel, "", "EOD-")
			c.card, ok2 = find(chDesk, "", c.question)
			return ok1 && ok2
		})
		// A reply counts once the card is recorded as the case's, a moment
		// after it is posted (a reply before that is not the case's).
		eventually(t, func() bool {
			var n int
			require.NoError(t, w.db.QueryRow(ctx, `SELECT count(*) FROM bot_anchor WHERE channel = $1 AND message = $2`, chDesk, c.card.TS).Scan(&n))
			return n == 1
		}, "the desk card of "+c.team+" recorded")
	}
	for _, c := range consults {
		_, cb := fake.UserMessage(chDesk, c.card.TS, uExpert, c.answer)
		_, err := fake.Event(ctx, cb, 0)
		require.NoError(t, err)
		wait("the answer reaches "+c.team, func() bool { _, ok := find(c.channel, c.receipt.TS, c.answer); return ok })
		got, _ := find(c.channel, c.receipt.TS, c.answer)
		require.Equal(t, c.team, got.Team)
		require.Equal(t, fake.BotUser(c.team), got.User, "posted with %s's token", c.team)
	}
	// Every call about a customer channel was made with that workspace's
	// token; nothing crossed.
	for _, call := range fake.Calls("") {
		switch call.Form.Get("channel") {
		case chContoso:
			require.Equal(t, wsContoso, call.Team, call.Method)
		case chFabrikam:
			require.Equal(t, wsFabrikam, call.Team, call.Method)
		case chDesk:
			require.Equal(t, wsProvider, call.Team, call.Method)
		}
		require.Empty(t, call.Error, "%s %s", call.Method, call.Form.Get("channel"))
	}
	for _, c := range consults {
		other := consults[0]
		if other == c {
			other = consults[1]
		}
		require.NotContains(t, texts(t, fake.Messages(c.channel)[0].Blocks)+fake.Messages(c.channel)[0].Text, other.question)
	}

	// 7b. Contoso's channel is shared by Slack Connect with Fabrikam's
	// workspace: Fabrikam's Fred writes in Contoso's case thread, and
	// Slack delivers it through Contoso's install (the envelope's team).
	// He is a guest, no member of Contoso: not relayed to the desk. (The
	// envelope's team made him Contoso's requester.)
	guest, cb := fake.UserMessage(chContoso, consults[0].receipt.TS, uFabrikam, "a guest writes in Contoso's case")
	ev := cb["event"].(map[string]any)
	ev["team"], ev["user_team"] = wsFabrikam, wsFabrikam
	cb["is_ext_shared_channel"] = true
	_, err = fake.Event(ctx, cb, 0)
	require.NoError(t, err)
	// The database signals nothing: look every 20 ms.
	tick := &testwait.Signal{}
	tctx, stopTick := context.WithCancel(ctx)
	go func() {
		for tctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			tick.Notify()
		}
	}()
	testwait.For(t, time.Minute, "the guest's reply is worked", func() bool {
		var done bool
		err := w.db.QueryRow(ctx, `SELECT done_at IS NOT NULL FROM bot_inbound WHERE key LIKE '%' || $1`, guest.TS).Scan(&done)
		return err == nil && done
	}, tick)
	stopTick()
	_, relayed := find(chDesk, consults[0].card.TS, "a guest writes")
	require.False(t, relayed, "a guest of another workspace is no member of the org")

	// 7c. The guest presses Add details on Contoso's receipt, then Contoso's
	// requester does: the presses come through Contoso's install (team),
	// the guest's from his own workspace (user.team_id). He is no member of
	// Contoso: no form opens for him. (The press's team made him a member.)
	// Slack Connect: Contoso's app hears the channel is now shared (it
	// asked conversations.info for the consults of 7 already).
	_, err = fake.Event(ctx, fake.Share(chContoso, wsFabrikam), 0)
	require.NoError(t, err)
	opened := func(trigger string) bool {
		for _, v := range fake.Views() {
			if v.TriggerID == trigger {
				return true
			}
		}
		return false
	}
	press := func(user string) string {
		p, err := fake.Press(chContoso, consults[0].receipt.TS, user, "add_details")
		require.NoError(t, err)
		require.Equal(t, wsContoso, p["team"].(map[string]any)["id"])
		_, err = fake.Interactive(ctx, p)
		require.NoError(t, err)
		return p["trigger_id"].(string)
	}
	guestTrigger, memberTrigger := press(uFabrikam), press(uContoso)
	require.Eventually(t, func() bool {
		var n int
		err := w.db.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE kind IN ('action', 'form') AND done_at IS NULL AND dead_at IS NULL`).Scan(&n)
		return err == nil && n == 0 && opened(memberTrigger)
	}, time.Minute, 20*time.Millisecond, "Contoso's requester gets the form")
	require.False(t, opened(guestTrigger), "a guest of another workspace is no member of the org")

	// 7d. The guest types /experts in Contoso's shared channel. A command's
	// payload names only the install it came through: here, at worst,
	// Contoso's. users.info says he is Fabrikam's: nothing opens for him.
	// Contoso's own member opens a case there as before. (The payload's
	// team made him Contoso's requester.)
	ack, err = fake.Command(ctx, slackfake.SlashCommand{UserID: uFabrikam, ChannelID: chContoso, TeamID: wsContoso, Text: "ask a guest's question?"})
	require.NoError(t, err)
	require.NotContains(t, string(ack.Payload), "EOD-")
	_, err = fake.Command(ctx, slackfake.SlashCommand{UserID: uContoso, ChannelID: chContoso, TeamID: wsContoso, Text: "ask a member's question?"})
	require.NoError(t, err)
	wait("the member's case reaches the desk", func() bool { _, ok := find(chDesk, "", "a member's question?"); return ok })
	_, guestCard := find(chDesk, "", "a guest's question?")
	require.False(t, guestCard, "a guest of another workspace is no member of the org")

	// 8. A workspace's events act only for its own orgs: Contoso's user in
	// a channel id of Fabrikam's, from Contoso's workspace, opens nothing.
	before := len(fake.Messages(chFabrikam))
	ack, err = fake.Command(ctx, slackfake.SlashCommand{UserID: uContoso, ChannelID: chFabrikam, TeamID: wsContoso, Text: "ask cross tenant?"})
	require.NoError(t, err)
	require.NotContains(t, string(ack.Payload), "Opened")
	_, crossCard := find(chDesk, "", "cross tenant?")
	require.False(t, crossCard)
	require.Len(t, fake.Messages(chFabrikam), before)

	// 9. Fabrikam removes the app: the desk is told once, and nothing more
	// is sent there (the relay is dead, with the reason).
	// app_uninstalled arrives over HTTP (signed), tokens_revoked over
	// Socket Mode.
	uninstalled, revoked := fake.Uninstall(wsFabrikam)
	raw, err := json.Marshal(uninstalled)
	require.NoError(t, err)
	req, err := fake.Signer().Request(ctx, app.URL+"/slack/events", "application/json", raw, time.Now())
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = fake.Event(ctx, revoked, 0)
	require.NoError(t, err)
	wait("the desk hears Fabrikam removed threatdesk", func() bool { _, ok := find(chDesk, "", "removed threatdesk"); return ok })
	var removedNotes int
	for _, m := range fake.Messages(chDesk) {
		if strings.Contains(m.Text+texts(t, m.Blocks), "removed threatdesk") {
			removedNotes++
		}
	}
	require.Equal(t, 1, removedNotes, "told once for both events")
	fab := consults[1]
	sentBefore := len(fake.Messages(chFabrikam))
	_, cb = fake.UserMessage(chDesk, fab.card.TS, uExpert, "one more thing for Fabrikam")
	_, err = fake.Event(ctx, cb, 0)
	require.NoError(t, err)
	eventually(t, func() bool {
		var dead int
		_ = w.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL AND last_error LIKE '%app_uninstalled%'`).Scan(&dead)
		return dead > 0
	}, "the relay to the uninstalled workspace is dead, with the reason")
	require.Len(t, fake.Messages(chFabrikam), sentBefore)
	for _, call := range fake.Calls("") {
		if call.Form.Get("channel") == chFabrikam {
			require.Empty(t, call.Error, "no call to the uninstalled workspace was even tried: %s", call.Method)
		}
	}
	mfs, err := w.reg.Gather()
	require.NoError(t, err)
	var refused float64
	for _, mf := range mfs {
		if mf.GetName() == "threatdesk_slack_workspace_refused_total" {
			for _, m := range mf.GetMetric() {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	require.Positive(t, refused)
	var active bool
	require.NoError(t, w.db.QueryRow(ctx, `SELECT active FROM slack_installations WHERE team_id = $1`, wsFabrikam).Scan(&active))
	require.False(t, active)

	// No token was ever logged.
	logs := w.logs.String()
	for _, in := range installs {
		require.NotContains(t, logs, in.Token)
	}
	require.NotContains(t, logs, fake.Options().ClientSecret)

	// 10. A fresh link installs Fabrikam again: it is reached again, with
	// its new token.
	resp, err = fake.Approve(newBrowser(t), installLink("fabrikam"), wsFabrikam, uFabrikam)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	require.NoError(t, w.db.QueryRow(ctx, `SELECT active FROM slack_installations WHERE team_id = $1`, wsFabrikam).Scan(&active))
	require.True(t, active)
	_, cb = fake.UserMessage(chDesk, fab.card.TS, uExpert, "welcome back, Fabrikam")
	_, err = fake.Event(ctx, cb, 0)
	require.NoError(t, err)
	wait("the answer reaches the reinstalled workspace", func() bool { _, ok := find(chFabrikam, fab.receipt.TS, "welcome back, Fabrikam"); return ok })
	require.NotEqual(t, fabrikamToken, fake.TeamToken(wsFabrikam))

	// 11. Slack delivers the app_uninstalled of step 9 again (its first
	// delivery had failed, say), after the new install: it happened
	// before it, and switches nothing off. (It did: the new install went
	// inactive, and every later message to Fabrikam was dead.)
	uninstalled["event_time"] = time.Now().Add(-3 * time.Minute).Unix()
	raw, err = json.Marshal(uninstalled)
	require.NoError(t, err)
	req, err = fake.Signer().Request(ctx, app.URL+"/slack/events", "application/json", raw, time.Now())
	require.NoError(t, err)
	req.Header.Set("X-Slack-Retry-Num", "1")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, w.db.QueryRow(ctx, `SELECT active FROM slack_installations WHERE team_id = $1`, wsFabrikam).Scan(&active))
	require.True(t, active, "a late uninstall leaves the install that followed it")
	for _, call := range fake.Calls("chat.postMessage") {
		if call.Form.Get("channel") == chFabrikam {
			require.Equal(t, wsFabrikam, call.Team)
			require.Empty(t, call.Error)
		}
	}
}

// TestInstallRefusedWhenLinkedToAnotherOrg: two orgs share Contoso's
// workspace; once it is installed for one, a link for the other approved
// there is refused and changes nothing: the workspace stays linked to the
// first org, with its token.
func TestInstallRefusedWhenLinkedToAnotherOrg(t *testing.T) {
	t.Parallel()
	const chLabs = "C0CONTOSOLABS"
	var handler atomic.Pointer[http.Handler]
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(app.Close)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:      wsProvider,
		RedirectURI: app.URL + "/slack/oauth/callback",
		Teams:       []slackfake.Team{{ID: wsContoso, Name: "Contoso"}},
		Channels: []slackfake.Channel{{ID: chDesk, Name: "expert-desk"},
			{ID: chContoso, Name: "soc", Team: wsContoso}, {ID: chLabs, Name: "labs-soc", Team: wsContoso}},
		Users: []slackfake.User{{ID: uExpert, Name: "eve"}, {ID: uAdmin, Name: "ada"}, {ID: uContoso, Name: "carol", Team: wsContoso}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w := startWorkspacesBot(t, ctx, fake, app, &handler, bot.Config{
		Orgs: []bot.Org{
			{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: wsContoso, Channels: []string{chContoso}}},
			{ID: "contoso-labs", Name: "Contoso Labs", Slack: &bot.SlackPlace{Team: wsContoso, Channels: []string{chLabs}}},
		},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: wsProvider, Channel: chDesk}},
		Experts: bot.UserIDs{Slack: []string{uExpert}},
		Admins:  bot.UserIDs{Slack: []string{uAdmin}},
	})
	installLink := func(org string) string {
		t.Helper()
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: uAdmin, ChannelID: chDesk, TeamID: wsProvider, Text: "install-link " + org})
		require.NoError(t, err)
		link := installLinkRE.FindString(strings.ReplaceAll(string(ack.Payload), `\u0026`, "&"))
		require.NotEmpty(t, link, "an install link in %s", ack.Payload)
		return link
	}
	resp, err := fake.Approve(newBrowser(t), installLink("contoso"), wsContoso, uContoso)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	token := fake.TeamToken(wsContoso)
	require.NotEmpty(t, token)

	resp, err = fake.Approve(newBrowser(t), installLink("contoso-labs"), wsContoso, uContoso)
	require.NoError(t, err)
	page := body(t, resp)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, page)
	require.Contains(t, page, "already linked to another organisation")
	require.NotContains(t, page, "Contoso Labs", "the page names no org")
	var org string
	var active bool
	require.NoError(t, w.db.QueryRow(ctx, `SELECT org_id, active FROM slack_installations WHERE team_id = $1`, wsContoso).Scan(&org, &active))
	require.Equal(t, "contoso", org, "still linked to the first org")
	require.True(t, active)
	require.Equal(t, token, fake.TeamToken(wsContoso), "the token in use is not revoked")
	require.Contains(t, w.logs.String(), "linked to another org; refused")

	// The admin's list shows the install and the org left without one.
	_, err = fake.Command(ctx, slackfake.SlashCommand{UserID: uAdmin, ChannelID: chDesk, TeamID: wsProvider, Text: "workspaces"})
	require.NoError(t, err)
	var got string
	require.True(t, testwait.Until(time.Minute, func() bool {
		for _, r := range fake.Responses() {
			if all := r.Text + texts(t, r.Blocks); strings.Contains(all, "Installed") {
				got = all
				return true
			}
		}
		return false
	}, fake), "the workspaces list is answered")
	require.Contains(t, got, "Contoso ("+wsContoso+")")
	require.Contains(t, got, "*Contoso Labs* (contoso-labs): its workspace "+wsContoso+" is linked to Contoso (contoso)")
}
