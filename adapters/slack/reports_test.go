package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/casework/caseworktest"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// The workspace of the reports tests: two orgs, the desk and the managers'
// channel, all in one team.
const (
	rTeam       = "T0CONTOSO"
	rContoso    = "C0CONTOSOSOC"
	rFabrikam   = "C0FABRIKAMSOC"
	rDesk       = "C0EXPERTDESK"
	rManagers   = "C0MANAGERS"
	rAlice      = "U0ANALYST1" // contoso
	rFrank      = "U0FABANALYST"
	rEve        = "U0EXPERT1"
	rMax        = "U0MANAGER1"
	rNoteSecret = "APT29 tooling, do not tell the customer yet"
)

func reportsFake(t *testing.T) *slackfake.Server {
	return slackfake.New(t, slackfake.Options{
		TeamID: rTeam,
		Channels: []slackfake.Channel{{ID: rContoso, Name: "contoso-soc"}, {ID: rFabrikam, Name: "fabrikam-soc"},
			{ID: rDesk, Name: "expert-desk"}, {ID: rManagers, Name: "soc-managers"}},
		Users: []slackfake.User{{ID: rAlice, Name: "alice", DisplayName: "Alice"}, {ID: rFrank, Name: "frank", DisplayName: "Frank"},
			{ID: rEve, Name: "eve", RealName: "Eve Expert"}, {ID: rMax, Name: "max", DisplayName: "Max"}},
	})
}

func reportsConfig() bot.Config {
	return bot.Config{
		Orgs: []bot.Org{
			{ID: caseworktest.Contoso, Name: "Contoso", Slack: &bot.SlackPlace{Team: rTeam, Channels: []string{rContoso}}},
			{ID: caseworktest.Fabrikam, Name: "Fabrikam", Slack: &bot.SlackPlace{Team: rTeam, Channels: []string{rFabrikam}}},
		},
		Desk:     bot.Desk{Slack: &bot.SlackDesk{Team: rTeam, Channel: rDesk}},
		Experts:  bot.UserIDs{Slack: []string{rEve}},
		Managers: bot.UserIDs{Slack: []string{rMax}},
		Reports:  bot.Reports{Digest: &bot.Digest{Slack: &bot.DigestSlack{Channel: rManagers}}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
	}
}

// reportsBot is one process: the real bot, casework on the test clock, and
// the adapter in Socket Mode against fake.
type reportsBot struct {
	bot *bot.Bot
	cw  *casework.Service
}

// startReportsBot starts one process; credits is each org's quarterly
// allowance (0: the default, 10, as caseworktest's figures assume).
func startReportsBot(t *testing.T, ctx context.Context, fake *slackfake.Server, db *pgxpool.Pool, clock *testclock.Clock, credits int) reportsBot {
	t.Helper()
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key, Now: clock.Now, CreditsPerQuarter: credits, CreditsCap: max(2*credits, 20),
		Orgs: []casework.Org{{ID: caseworktest.Contoso}, {ID: caseworktest.Fabrikam}}}, nil, nil)
	require.NoError(t, err)
	b, err := bot.New(reportsConfig(), db, bot.NewCaseworkCases(cw), nil, log, prometheus.NewRegistry())
	require.NoError(t, err)
	opts := fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), AppToken: secrets.String(opts.AppToken),
		APIURL: fake.APIURL(), Replays: b}, log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(a))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, fake.WaitConnected(ctx))
	return reportsBot{bot: b, cw: cw}
}

func scenarioOnSlack() caseworktest.People {
	return caseworktest.People{Platform: "slack", Workspace: map[string]string{caseworktest.Contoso: rTeam, caseworktest.Fabrikam: rTeam, "": rTeam},
		Requester: map[string]string{caseworktest.Contoso: rAlice, caseworktest.Fabrikam: rFrank}, Expert: rEve}
}

// slackUser runs slash commands as one person in one channel and returns
// the answer that reached them.
type slackUser struct {
	t       *testing.T
	ctx     context.Context
	fake    *slackfake.Server
	user    string
	channel string
}

// answer is what came back to the person, as they read it.
func answerText(t *testing.T, r slackfake.Response) string { return r.Text + "\n" + texts(t, r.Blocks) }

// run sends "/experts text" and waits for the answer through the command's
// own response URL.
func (u slackUser) run(text string) slackfake.Response {
	u.t.Helper()
	p := u.fake.CommandPayload(slackfake.SlashCommand{UserID: u.user, ChannelID: u.channel, TeamID: rTeam, Text: text})
	_, id, _ := strings.Cut(p["response_url"], "/response/")
	_, err := u.fake.Send(u.ctx, slackfake.Envelope{Type: "slash_commands", Payload: p, AcceptsResponsePayload: true}, nil)
	require.NoError(u.t, err)
	return u.response(id, "/experts "+text)
}

func (u slackUser) response(id, what string) slackfake.Response {
	u.t.Helper()
	var got slackfake.Response
	testwait.For(u.t, 20*time.Second, "the answer to "+what, func() bool {
		for _, r := range u.fake.Responses() {
			if r.ID == id {
				got = r
				return true
			}
		}
		return false
	}, u.fake)
	return got
}

// press presses a button on an ephemeral answer and returns the new answer.
func (u slackUser) press(r slackfake.Response, action string) slackfake.Response {
	u.t.Helper()
	p, err := u.fake.PressEphemeral(r, u.channel, u.user, action)
	require.NoError(u.t, err)
	_, id, _ := strings.Cut(p["response_url"].(string), "/response/")
	_, err = u.fake.Interactive(u.ctx, p)
	require.NoError(u.t, err)
	return u.response(id, action)
}

// buttonValue is the value of the answer's button action, if any.
func buttonValue(t *testing.T, r slackfake.Response, action string) string {
	t.Helper()
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	require.NoError(t, json.Unmarshal(r.Blocks, &blocks))
	for _, b := range blocks {
		for _, e := range b.Elements {
			if b.Type == "actions" && e.ActionID == action {
				return e.Value
			}
		}
	}
	return ""
}

// TestReportsOverSlack runs /experts report, cases search, export and
// verify with the real bot over Socket Mode, on caseworktest's scenario:
// what each person reads is checked against the figures worked out by hand.
func TestReportsOverSlack(t *testing.T) {
	t.Parallel()
	fake := reportsFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.T)
	rb := startReportsBot(t, ctx, fake, db, clock, 0)
	sc := caseworktest.Run(t, rb.cw, clock, db, scenarioOnSlack())
	_, err := rb.cw.AddMessage(ctx, casework.MessageRequest{Ref: sc.Refs["C1"], Internal: true, Text: rNoteSecret,
		Actor: casework.Actor{Role: casework.RoleExpert, Person: casework.Person{Platform: "slack", Workspace: rTeam, UserID: rEve}}})
	require.NoError(t, err)
	maxOnDesk := slackUser{t: t, ctx: ctx, fake: fake, user: rMax, channel: rDesk}
	alice := slackUser{t: t, ctx: ctx, fake: fake, user: rAlice, channel: rContoso}
	frank := slackUser{t: t, ctx: ctx, fake: fake, user: rFrank, channel: rFabrikam}
	eve := slackUser{t: t, ctx: ctx, fake: fake, user: rEve, channel: rDesk}

	// The report, in blocks: a header and fields of figures in words.
	r := maxOnDesk.run("report contoso")
	require.Equal(t, "ephemeral", r.ResponseType)
	got := answerText(t, r)
	for _, want := range []string{
		"Service report · Contoso · Q1 2026 so far",
		"*First response*\nmedian 1 hour 15 minutes · 90th percentile 2 hours 42 minutes (4 cases)",
		"*Conclusion*\nmedian 5 hours · 90th percentile 5 hours 48 minutes (3 cases)",
		"*Within SLA*\n67% (2 of 3 decided) · 1 open on time · 2 withdrawn",
		"*Credits*\n4 used · 6 left",
		"*Notifications*\n3 posted · 2 acknowledged · median 20 minutes to acknowledge",
		"`" + sc.Refs["C3"] + "` first response (high priority): 3 hours against a target of 1 hour",
	} {
		require.Contains(t, got, want)
	}
	got = answerText(t, frank.run("report"))
	require.Contains(t, got, "Service report · Fabrikam · Q1 2026 so far")
	require.Contains(t, got, "*Conclusion*\nmedian 2 days 2 hours · 90th percentile 2 days 2 hours (1 case)", "its 20h pause left out")
	require.NotContains(t, got, "Contoso")
	got = answerText(t, maxOnDesk.run("report"))
	require.Contains(t, got, "*Conclusion*\nmedian 5 hours 30 minutes · 90th percentile 1 day 13 hours (4 cases)")
	require.Contains(t, got, "*Contoso*: 6 cases opened")

	// A member asking for another org reads what an unknown org gets.
	foreign, unknown := texts(t, alice.run("report fabrikam").Blocks), texts(t, alice.run("report initech").Blocks)
	require.Equal(t, strings.ReplaceAll(unknown, "initech", "X"), strings.ReplaceAll(foreign, "fabrikam", "X"))

	// Search, by a mention as Slack sends it.
	got = answerText(t, alice.run("cases search <@"+rAlice+"|alice>"))
	require.Contains(t, got, sc.Refs["C1"])
	require.NotContains(t, got, sc.Refs["F1"])
	got = answerText(t, maxOnDesk.run("cases search c1-subject"))
	require.Contains(t, got, sc.Refs["C1"])
	require.Contains(t, got, "Cases matching c1-subject")

	// Export: two files in a direct message with the caller alone.
	ref := sc.Refs["C1"]
	r = alice.run("export " + ref)
	require.Contains(t, answerText(t, r), "Sent you the record of "+ref+" in a direct message from threatdesk: "+ref+".md and "+ref+".json.")
	files := fake.Files()
	require.Len(t, files, 2)
	dm := ""
	for _, f := range files {
		require.Len(t, f.Shares, 1, "shared once, to one channel")
		dm = f.Shares[0].Channel
		user, ok := fake.DMUser(dm)
		require.True(t, ok, "shared in a direct message, not a channel: %s", dm)
		require.Equal(t, rAlice, user)
		require.Equal(t, f.Length, len(f.Data))
	}
	require.Equal(t, ref+".md", files[0].Name)
	require.Contains(t, string(files[0].Data), "# "+ref+" — case record")
	require.Contains(t, string(files[0].Data), "Is this lateral movement on ws-017?")
	require.NotContains(t, string(files[0].Data), rNoteSecret)
	require.Equal(t, ref+".json", files[1].Name)
	require.Contains(t, string(files[1].Data), `"ref": "`+ref+`"`)
	require.NotContains(t, string(files[1].Data), rNoteSecret)
	note := fake.Messages(dm)
	require.Len(t, note, 1)
	require.Contains(t, texts(t, note[0].Blocks), ref+" · case record")
	require.Contains(t, texts(t, note[0].Blocks), "not included")
	// An expert's export has the internal note.
	r = eve.run("export " + ref)
	require.Contains(t, answerText(t, r), "in a direct message from threatdesk")
	files = fake.Files()
	require.Len(t, files, 4)
	require.Contains(t, string(files[2].Data), rNoteSecret)
	user, _ := fake.DMUser(files[2].Shares[0].Channel)
	require.Equal(t, rEve, user)
	// Another org's member: "not found", as for a case that does not exist; no file.
	foreign, unknown = answerText(t, frank.run("export "+ref)), answerText(t, frank.run("export EOD-999"))
	require.Equal(t, unknown, foreign)
	require.Contains(t, foreign, "Not found")
	require.Len(t, fake.Files(), 4)

	// Verify.
	got = answerText(t, alice.run("verify "+ref))
	require.Regexp(t, `Timeline intact.*`+ref+`: intact, \d+ entries, head [0-9a-f]{16}…`, got)
	foreign, unknown = answerText(t, frank.run("verify "+ref)), answerText(t, frank.run("verify EOD-999"))
	require.Equal(t, unknown, foreign)
	require.Empty(t, fake.Violations())
}

// TestMoreOverSlack: "cases" and "cases search" page through 25 cases with
// More on ephemeral answers; each press answers privately, once per case.
func TestMoreOverSlack(t *testing.T) {
	t.Parallel()
	fake := reportsFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.Now)
	rb := startReportsBot(t, ctx, fake, db, clock, 40)
	for i := range 25 {
		_, _, err := rb.cw.Open(ctx, casework.OpenRequest{Key: fmt.Sprintf("m%d", i), Org: caseworktest.Contoso,
			Subject: casework.Subject{Kind: casework.SubjectNone}, Question: fmt.Sprintf("beacon number %d", i),
			Requester: casework.Person{Platform: "slack", Workspace: rTeam, UserID: rAlice}})
		require.NoError(t, err)
	}
	alice := slackUser{t: t, ctx: ctx, fake: fake, user: rAlice, channel: rContoso}
	frank := slackUser{t: t, ctx: ctx, fake: fake, user: rFrank, channel: rFabrikam}
	for _, cmd := range []string{"cases all", "cases search beacon"} {
		seen := map[string]bool{}
		r := alice.run(cmd)
		for page := 1; ; page++ {
			got := answerText(t, r)
			for i := 1; i <= 25; i++ {
				if strings.Contains(got, fmt.Sprintf("`EOD-%d`", i)) {
					require.False(t, seen[fmt.Sprintf("EOD-%d", i)], "%s: EOD-%d on two pages", cmd, i)
					seen[fmt.Sprintf("EOD-%d", i)] = true
				}
			}
			tok := buttonValue(t, r, "more")
			if tok == "" {
				require.Equal(t, 3, page, "%s: pages of 10, 10 and 5", cmd)
				break
			}
			require.Len(t, tok, 22)
			if page == 1 {
				// Another org's member pressing it reads what a made-up token gets.
				fr := frank.press(withButton(t, r, tok), "more")
				made := frank.press(withButton(t, r, "AAAAAAAAAAAAAAAAAAAAAA"), "more")
				require.Equal(t, answerText(t, made), answerText(t, fr))
				require.Contains(t, answerText(t, fr), "can no longer be continued")
			}
			r = alice.press(r, "more")
			require.Equal(t, "ephemeral", r.ResponseType)
		}
		require.Len(t, seen, 25, cmd)
	}
	require.Empty(t, fake.Violations())
}

// withButton is r with its More button's value replaced.
func withButton(t *testing.T, r slackfake.Response, value string) slackfake.Response {
	t.Helper()
	old := buttonValue(t, r, "more")
	r.Blocks = []byte(strings.ReplaceAll(string(r.Blocks), `"value":"`+old+`"`, `"value":"`+value+`"`))
	return r
}

// TestDigestOverSlackWithTwoBots: two processes on one database, both
// running the digest's job at its time: the managers' channel gets each
// org's report once.
func TestDigestOverSlackWithTwoBots(t *testing.T) {
	t.Parallel()
	fake := reportsFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.T)
	first := startReportsBot(t, ctx, fake, db, clock, 0)
	caseworktest.Run(t, first.cw, clock, db, scenarioOnSlack())
	second := startReportsBot(t, ctx, fake, db, clock, 0)

	var wg sync.WaitGroup
	queued := make(chan bool, 2)
	for _, rb := range []reportsBot{first, second} {
		d, err := bot.NewDigestScheduler(reportsConfig().Reports, bot.NewCaseworkCases(rb.cw), db, nil, nil)
		require.NoError(t, err)
		wg.Go(func() {
			q, err := d.RunOnce(ctx)
			require.NoError(t, err)
			queued <- q
		})
	}
	wg.Wait()
	close(queued)
	n := 0
	for q := range queued {
		if q {
			n++
		}
	}
	require.Equal(t, 1, n, "queued by one of the two")
	testwait.For(t, 20*time.Second, "two digests in the managers' channel", func() bool { return len(fake.Messages(rManagers)) >= 2 }, fake)
	eventually(t, func() bool {
		var pending int
		err := db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE kind = 'report.digest' AND delivered_at IS NULL`).Scan(&pending)
		return err == nil && pending == 0
	}, "the digest row settled")
	msgs := fake.Messages(rManagers)
	require.Len(t, msgs, 2, "each org's report once")
	all := texts(t, msgs[0].Blocks) + "\n" + texts(t, msgs[1].Blocks)
	for _, want := range []string{
		"Weekly digest · Contoso · week of 2 February 2026",
		"From 2 to 8 February 2026, calendar days in UTC.",
		"*First response*\nmedian 2 hours · 90th percentile 2 hours 48 minutes (3 cases)",
		"*Within SLA*\n67% (2 of 3 decided) · 1 withdrawn",
		"*Credits*\n3 used · 6 left",
		"Weekly digest · Fabrikam · week of 2 February 2026",
		"*Conclusion*\nmedian 2 days 2 hours · 90th percentile 2 days 2 hours (1 case)",
	} {
		require.Contains(t, all, want)
	}
	require.Empty(t, fake.Violations())
}
