package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// Who is who in the tracker's tests (the bot's config below).
const (
	slackTeam   = "T0CONTOSO"
	contosoSOC  = "C0CONTOSOSOC"
	deskChannel = "C0EXPERTDESK"
	analyst     = "U0ANALYST1"
	expertID    = "U0EXPERT1"
	managerID   = "U0MANAGER1"
	fabGuild    = "1000000000000000001"
	fabSOC      = "1000000000000000002"
	fabAnalyst  = "1000000000000000077"
)

func trackerBotConfig() bot.Config {
	return bot.Config{
		Orgs: []bot.Org{
			{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: slackTeam, Channels: []string{contosoSOC}}},
			{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: fabGuild, Channels: []string{fabSOC}}},
		},
		Desk:     bot.Desk{Slack: &bot.SlackDesk{Team: slackTeam, Channel: deskChannel}},
		Experts:  bot.UserIDs{Slack: []string{expertID}},
		Managers: bot.UserIDs{Slack: []string{managerID}},
	}
}

// swapDirectory is the tracker's Directory: a bot whose config a test can
// replace, as a config reload would.
type swapDirectory struct{ b atomic.Pointer[bot.Bot] }

func (d *swapDirectory) WebAccess(u bot.User, channel string) bot.WebUser {
	return d.b.Load().WebAccess(u, channel)
}
func (d *swapDirectory) WebOrgs() []bot.WebOrg { return d.b.Load().WebOrgs() }
func (d *swapDirectory) WebPresent(ctx context.Context, u bot.User, channel string) (bool, error) {
	return d.b.Load().WebPresent(ctx, u, channel)
}

// tracker is the case tracker on a real database behind the real HTTP
// server, with the real bot answering "/experts web" (its chat side a
// recording fake) and casework on a test clock.
type tracker struct {
	svc   *casework.Service
	pool  *pgxpool.Pool
	clock *testclock.Clock
	h     *web.Handler
	bot   *bot.Bot
	dir   *swapDirectory
	// slackOf is each bot's recording Slack side (newBot).
	slackOf map[*bot.Bot]*bottest.Adapter
	base    string
	reg     *prometheus.Registry
	keys    atomic.Int64

	// The seeded cases (seed): a Contoso file case with a conversation, an
	// internal note and a sample; a Contoso case whose question is markup;
	// a Fabrikam case.
	showcase, hostile, fabCase string
	sample                     []byte
	hostileQuestion            string
}

// Seeded moments: the quarter's cases from the first Monday of 2026; the
// tests' "now" a Wednesday of March.
var (
	quarterStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	trackerNow   = time.Date(2026, 3, 18, 9, 30, 0, 0, time.UTC)
)

func setupTracker(t *testing.T, base func(addr string) string) *tracker {
	t.Helper()
	pool := pgtest.New(t)
	clock := testclock.New(quarterStart)
	key, err := secrets.Generate()
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	svc, err := casework.New(pool, casework.Config{Key: key, Now: clock.Now, CreditsPerQuarter: 20, CreditsCap: 20,
		Orgs: []casework.Org{{ID: "contoso"}, {ID: "fabrikam"}}}, nil, reg)
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	addr := "http://" + ln.Addr().String()
	pub := addr
	if base != nil {
		pub = base(addr)
	}
	links, err := web.NewLinks(pub, base == nil)
	require.NoError(t, err)
	h, err := web.New(web.Config{Links: links, Samples: svc, MaxSampleBytes: svc.Config().SampleMaxBytes,
		Pool: pool, Key: key, Cases: svc, Now: clock.Now}, nil, reg)
	require.NoError(t, err)
	for _, r := range h.Routes() {
		srv.HandleLimited(r.Pattern, r.MaxBody, r.Handler)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-done)
	})
	f := &tracker{svc: svc, pool: pool, clock: clock, h: h, base: addr, reg: reg, dir: &swapDirectory{}, slackOf: map[*bot.Bot]*bottest.Adapter{}}
	f.bot = f.newBot(t, trackerBotConfig())
	f.dir.b.Store(f.bot)
	h.SetDirectory(f.dir)
	f.bot.SetWebSignIn(h)
	return f
}

// newBot is a bot with cfg on the fixture's database, its chat a
// recording fake (not started: "/experts web" is answered in the
// acknowledgement).
func (f *tracker) newBot(t *testing.T, cfg bot.Config) *bot.Bot {
	t.Helper()
	b, err := bot.New(cfg, f.pool, bot.NewCaseworkCases(f.svc), nil, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	slack := bottest.New(bot.Slack, slackTeam)
	slack.SetName(expertID, "Eve Expert")
	slack.SetName(analyst, "Ana Lyst")
	slack.SetName(managerID, "Max Manager")
	require.NoError(t, b.Register(slack))
	discord := bottest.New(bot.Discord, fabGuild)
	discord.SetName(fabAnalyst, "Fab Analyst")
	require.NoError(t, b.Register(discord))
	f.slackOf[b] = slack
	return b
}

// web runs "/experts web" as userID in channel and returns the private
// answer's link.
func (f *tracker) web(t *testing.T, p bot.Platform, userID, channel string) string {
	t.Helper()
	ack, m := f.command(t, p, userID, channel)
	require.True(t, ack.Private, "the link is answered privately")
	for _, l := range m.Text {
		for _, s := range l {
			if s.Link != "" {
				require.True(t, strings.HasPrefix(s.Link, f.base+web.SignInPath), "link %q", s.Link)
				return s.Link
			}
		}
	}
	t.Fatalf("no link in the answer: %s", bottest.Plain(m))
	return ""
}

// command runs "/experts web" and returns the acknowledgement.
func (f *tracker) command(t *testing.T, p bot.Platform, userID, channel string) (bot.Ack, bot.Message) {
	t.Helper()
	ws := slackTeam
	if p == bot.Discord {
		ws = fabGuild
	}
	c := bot.Command{User: bot.User{Platform: p, Workspace: ws, ID: userID}, Channel: channel, Name: "web",
		Key: fmt.Sprint("web-", f.keys.Add(1)), Received: time.Now()}
	ack := f.bot.HandleCommand(context.Background(), c)
	require.NotNil(t, ack.Message, "an answer in the acknowledgement")
	return ack, *ack.Message
}

// People of the seeded cases.
var (
	contosoAnalyst = casework.Person{Platform: "slack", Workspace: slackTeam, UserID: analyst, DisplayName: "Ana Lyst"}
	fabrikamPerson = casework.Person{Platform: "discord", Workspace: fabGuild, UserID: fabAnalyst, DisplayName: "Fab Analyst"}
	eve            = casework.Actor{Role: casework.RoleExpert, Person: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: expertID, DisplayName: "Eve Expert"}}
)

func member(org string) casework.Actor {
	if org == "fabrikam" {
		return casework.Actor{Role: casework.RoleRequester, Org: org, Person: fabrikamPerson}
	}
	return casework.Actor{Role: casework.RoleRequester, Org: org, Person: contosoAnalyst}
}

// open opens a case at the clock's time.
func (f *tracker) open(t *testing.T, org string, subj casework.Subject, prio casework.Priority, q string) string {
	t.Helper()
	c, _, err := f.svc.Open(context.Background(), casework.OpenRequest{Key: fmt.Sprint("seed-", f.keys.Add(1)), Org: org,
		Subject: subj, Priority: prio, Question: q, Requester: member(org).Person})
	require.NoError(t, err)
	return c.Ref
}

func (f *tracker) say(t *testing.T, ref string, by casework.Actor, text string, internal bool) {
	t.Helper()
	_, err := f.svc.AddMessage(context.Background(), casework.MessageRequest{Ref: ref, Actor: by, Text: text, Internal: internal})
	require.NoError(t, err)
}

func (f *tracker) to(t *testing.T, ref string, st casework.Status, summary string) {
	t.Helper()
	_, err := f.svc.Transition(context.Background(), casework.TransitionRequest{Ref: ref, To: st, Actor: eve, Summary: summary})
	require.NoError(t, err)
}

// seed fills a quarter: cases every week for both orgs (answered, some
// late, most concluded), then the three cases the tests look at.
func (f *tracker) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	alert := func(n int) casework.Subject {
		return casework.Subject{Kind: casework.SubjectAlert, ID: fmt.Sprintf("da63755122767756%04d_-96144", n), Name: "Suspicious PowerShell download cradle"}
	}
	device := func(n int) casework.Subject {
		return casework.Subject{Kind: casework.SubjectDevice, ID: fmt.Sprintf("ws-%03d.corp.local", n)}
	}
	prios := []casework.Priority{casework.PriorityHigh, casework.PriorityMedium, casework.PriorityLow}
	for w := range 10 {
		f.clock.Set(quarterStart.AddDate(0, 0, 7*w))
		for i, org := range []string{"contoso", "fabrikam"} {
			if org == "fabrikam" && w%3 == 1 {
				continue
			}
			subj := alert(w*2 + i)
			if (w+i)%3 == 0 {
				subj = device(w*2 + i)
			}
			ref := f.open(t, org, subj, prios[(w+i)%3], "Is this activity malicious? We saw it on several hosts this week.")
			f.clock.Advance(time.Duration(10+15*((w+i)%5)) * time.Minute)
			_, err := f.svc.Take(ctx, ref, eve)
			require.NoError(t, err)
			if w%4 == 3 && i == 0 {
				f.clock.Advance(90 * time.Minute) // this one answers late
			}
			f.say(t, ref, eve, "Looking at it now: which user ran the script?", false)
			if w < 9 {
				f.clock.Advance(time.Duration(2+(w*3+i*5)%20) * time.Hour)
				f.to(t, ref, casework.StatusConcluded, "Benign: an administrator's inventory script.")
			}
		}
	}
	// The showcase: a Contoso file case with a conversation, an internal
	// note and a sample.
	f.clock.Set(time.Date(2026, 3, 17, 10, 0, 0, 0, time.UTC))
	f.sample = bytes.Repeat([]byte("MZ\x90\x00 not a real beacon, a test file. "), 300)
	sum := sha256.Sum256(f.sample)
	hash := hex.EncodeToString(sum[:])
	f.showcase = f.open(t, "contoso", casework.Subject{Kind: casework.SubjectFile, ID: hash, Name: "beacon.dll"}, casework.PriorityHigh,
		"Is this DLL the Cobalt Strike beacon from last week? A scheduled task dropped it on ws-017.")
	f.clock.Advance(20 * time.Minute)
	_, err := f.svc.Take(ctx, f.showcase, eve)
	require.NoError(t, err)
	f.say(t, f.showcase, eve, "Please send the DLL itself: I want to read its configuration.", false)
	f.clock.Advance(5 * time.Minute)
	f.to(t, f.showcase, casework.StatusFileSampleNeeded, "")
	link, err := f.svc.IssueUploadLink(ctx, f.showcase, casework.System())
	require.NoError(t, err)
	f.clock.Advance(40 * time.Minute)
	_, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Source: casework.SourceUpload, Name: "beacon.dll",
		Body: bytes.NewReader(f.sample), Address: "192.0.2.10"})
	require.NoError(t, err)
	f.clock.Advance(10 * time.Minute)
	f.say(t, f.showcase, member("contoso"), "Sent. The task runs as SYSTEM every 30 minutes.", false)
	f.clock.Advance(30 * time.Minute)
	f.say(t, f.showcase, eve, "Its C2 is 203.0.113.7, which we saw at another customer last month.", true)
	f.say(t, f.showcase, eve, "It is a Cobalt Strike beacon. Isolate ws-017 now; I am checking for lateral movement.", false)

	// Markup in a question and a reply must show as text.
	f.clock.Advance(time.Hour)
	f.hostileQuestion = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> is "this" & that <b>bad</b>?`
	f.hostile = f.open(t, "contoso", casework.Subject{Kind: casework.SubjectAlert, ID: "da637551227677560813_-961444813",
		Name: `<i onmouseover="alert(1)">alert</i>`, Link: "javascript:alert(1)"}, casework.PriorityMedium, f.hostileQuestion)
	f.say(t, f.hostile, member("contoso"), `</div><script>window.__pwned = 3</script>`, false)

	f.clock.Advance(time.Hour)
	f.fabCase = f.open(t, "fabrikam", device(99), casework.PriorityMedium, "Is ws-099 compromised? Defender isolated it overnight.")
	f.clock.Advance(15 * time.Minute)
	_, err = f.svc.Take(ctx, f.fabCase, eve)
	require.NoError(t, err)
	f.clock.Set(trackerNow)
}

// client is an HTTP client with its own cookie jar that does not follow
// redirects (tests look at them).
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout: 30 * time.Second}
}
