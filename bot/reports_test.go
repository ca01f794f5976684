package bot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/casework/caseworktest"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// managersChannel is the weekly digest's channel in these tests.
const managersChannel = "C0MANAGERS"

func scenarioCasework(clock *testclock.Clock) casework.Config {
	return casework.Config{Now: clock.Now, Orgs: []casework.Org{{ID: caseworktest.Contoso}, {ID: caseworktest.Fabrikam}}}
}

func scenarioPeople() caseworktest.People {
	return caseworktest.People{Platform: "slack",
		Workspace: map[string]string{caseworktest.Contoso: slackTeam, caseworktest.Fabrikam: fabGuild, "": slackTeam},
		Requester: map[string]string{caseworktest.Contoso: analyst, caseworktest.Fabrikam: fabAnalyst},
		Expert:    expert1}
}

// setupScenario starts a bot whose casework holds caseworktest's scenario,
// with the clock at caseworktest.Now.
func setupScenario(t *testing.T, opts ...option) (*fixture, *caseworktest.Scenario) {
	t.Helper()
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.T)
	f := setupWith(t, db, true, nil, scenarioCasework(clock), opts...)
	return f, caseworktest.Run(t, f.cw, clock, db, scenarioPeople())
}

func withDigest(c *Config) {
	c.Reports.Digest = &Digest{Slack: &DigestSlack{Channel: managersChannel}}
}

// TestReportFigures checks what managers and members read in "/experts
// report" against the figures worked out by hand (caseworktest.Run's
// comment), SLA pauses included.
func TestReportFigures(t *testing.T) {
	t.Parallel()
	f, sc := setupScenario(t)

	_, m := f.run(t, Slack, manager, deskChannel, "report contoso")
	got := plain(m)
	for _, want := range []string{
		"Service report · Contoso · Q1 2026 so far",
		"From 1 January to 10 February 2026 (so far), calendar days in UTC.",
		"Cases opened: 6",
		"By subject: alert 3 · file 1 · incident 1 · general 1",
		"By priority: high 3 · medium 1 · low 2",
		"First response: median 1 hour 15 minutes · 90th percentile 2 hours 42 minutes (4 cases)",
		"Conclusion: median 5 hours · 90th percentile 5 hours 48 minutes (3 cases)",
		"Within SLA: 67% (2 of 3 decided) · 1 open on time · 2 withdrawn",
		"SLA breaches: 1 target missed by 1 case",
		sc.Refs["C3"] + " first response (high priority): 3 hours against a target of 1 hour · now concluded",
		"Credits: 4 used · 6 left",
		"Notifications: 3 posted · 2 acknowledged · median 20 minutes to acknowledge",
	} {
		require.Contains(t, got, want)
	}

	_, m = f.run(t, Slack, manager, deskChannel, "report fabrikam quarter")
	got = plain(m)
	for _, want := range []string{
		"Service report · Fabrikam · Q1 2026 so far",
		"Cases opened: 3",
		"By subject: alert 1 · device 1 · general 1",
		"First response: median 3 hours · 90th percentile 3 hours (1 case)",
		// 70 hours of wall time, 20 of them waiting on the requester.
		"Conclusion: median 2 days 2 hours · 90th percentile 2 days 2 hours (1 case)",
		"Within SLA: 0% (0 of 2 decided) · 1 withdrawn",
		"SLA breaches: 3 targets missed by 2 cases",
		sc.Refs["F2"] + " first response (high priority): 6 days 23 hours against a target of 1 hour · now new",
		sc.Refs["F2"] + " conclusion (high priority): 6 days 23 hours against a target of 1 day · now new",
		sc.Refs["F1"] + " conclusion (medium priority): 2 days 2 hours against a target of 2 days · now concluded",
		"Credits: 2 used · 8 left",
		"Notifications: 1 posted · 0 acknowledged",
	} {
		require.Contains(t, got, want)
	}

	_, m = f.run(t, Slack, manager, deskChannel, "report")
	got = plain(m)
	for _, want := range []string{
		"Service report · all orgs · Q1 2026 so far",
		"Cases opened: 9",
		"First response: median 2 hours · 90th percentile 3 hours (5 cases)",
		"Conclusion: median 5 hours 30 minutes · 90th percentile 1 day 13 hours (4 cases)",
		"Within SLA: 40% (2 of 5 decided) · 1 open on time · 3 withdrawn",
		"Credits: 6 used · 14 left",
		"Contoso: 6 cases opened · first response 1 hour 15 minutes (median) · 67% within SLA · 1 breach · credits 4 used, 6 left · 3 notifications",
		"Fabrikam: 3 cases opened · first response 3 hours (median) · 0% within SLA · 3 breaches · credits 2 used, 8 left · 1 notification",
		sc.Refs["C3"] + " Contoso · first response",
	} {
		require.Contains(t, got, want)
	}

	// A member sees their own org, by any period.
	_, m = f.run(t, Slack, analyst, contosoSOC, "report")
	require.Contains(t, plain(m), "Service report · Contoso · Q1 2026 so far")
	require.Contains(t, plain(m), "First response: median 1 hour 15 minutes")
	require.NotContains(t, plain(m), "Fabrikam")
	_, m = f.run(t, Slack, analyst, contosoSOC, "report week")
	require.Contains(t, plain(m), "Service report · Contoso · week of 9 February 2026 so far")
	require.Contains(t, plain(m), "Cases opened: 1")
	// "weekly" is the week, not an org of that name (it was refused as one).
	_, weekly := f.run(t, Slack, analyst, contosoSOC, "report weekly")
	require.Equal(t, plain(m), plain(weekly))
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "report month")
	require.Contains(t, plain(m), "Service report · Fabrikam · February 2026 so far")
	require.Contains(t, plain(m), "Conclusion: median 2 days 2 hours")

	// Another org's report is refused exactly as an org that does not exist.
	_, foreign := f.run(t, Slack, analyst, contosoSOC, "report fabrikam")
	_, unknown := f.run(t, Slack, analyst, contosoSOC, "report initech")
	require.Equal(t, strings.ReplaceAll(plain(unknown), `"initech"`, `"X"`), strings.ReplaceAll(plain(foreign), `"fabrikam"`, `"X"`))
	require.NotContains(t, plain(foreign), "6 used")

	_, m = f.run(t, Slack, manager, deskChannel, "report initech")
	require.Contains(t, plain(m), `"initech" is not an org: the org ids are contoso, fabrikam`)
	_, m = f.run(t, Slack, manager, deskChannel, "report week contoso fortnight")
	require.Contains(t, plain(m), `"fortnight" is neither a period`)
}

func TestDurationWords(t *testing.T) {
	t.Parallel()
	h, m, s := time.Hour, time.Minute, time.Second
	for d, want := range map[time.Duration]string{
		0:                    "0 seconds",
		45 * s:               "45 seconds",
		m:                    "1 minute",
		12*m + 30*s:          "12 minutes 30 seconds",
		59*m + 59*s + 600e6:  "1 hour",
		h + m:                "1 hour 1 minute",
		2*h + 42*m + 20*s:    "2 hours 42 minutes",
		24 * h:               "1 day",
		36*h + 48*m:          "1 day 13 hours",
		167 * h:              "6 days 23 hours",
		23*h + 59*m + 20*s:   "23 hours 59 minutes",
		23*h + 59*m + 40*s:   "1 day",
		23*h + 59*m + 59*s:   "1 day",
		50*h + 29*m + 59*s:   "2 days 2 hours",
		2*24*h + 30*m + 10*s: "2 days 1 hour",
	} {
		require.Equal(t, want, DurationWords(d), "%s", d)
	}
}

// TestCasesMorePagesThrough25: "cases" shows ten and a More button; More
// continues through all 25 with each case once, on another replica too,
// and a token is refused to another scope exactly as an unknown one.
func TestCasesMorePagesThrough25(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	f := setupWith(t, db, true, nil, casework.Config{CreditsPerQuarter: 50, CreditsCap: 100})
	for i := range 25 {
		_, _, err := f.cw.Open(context.Background(), casework.OpenRequest{Key: fmt.Sprintf("more-%d", i), Org: "contoso",
			Subject: casework.Subject{Kind: casework.SubjectNone}, Question: fmt.Sprintf("question %d", i),
			Requester: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: analyst}})
		require.NoError(t, err)
	}
	// A second replica of the bot on the same database answers the presses.
	other := setupWith(t, db, true, nil, casework.Config{CreditsPerQuarter: 50, CreditsCap: 100})

	seen := map[string]bool{}
	collect := func(m Message) {
		t.Helper()
		for _, l := range m.Sections[0].Lines {
			ref := l[0].Text
			require.False(t, seen[ref], "%s shown twice", ref)
			seen[ref] = true
		}
	}
	more := func(m Message) string {
		for _, b := range m.Buttons {
			if b.Action == ActMore {
				return b.Value
			}
		}
		return ""
	}
	_, m := f.run(t, Slack, analyst, contosoSOC, "cases")
	require.Contains(t, plain(m), "Cases 1–10 of 25")
	collect(m)
	tok := more(m)
	require.Len(t, tok, 22, "an opaque token: 16 random bytes")
	require.NotContains(t, tok, "EOD")

	// Pressed by a member of another org: refused as an unknown token is.
	_, rs := other.press(t, Discord, fabAnalyst, ActMore, tok, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "m1"})
	foreign, ok := rs.Wait(tenSeconds)
	require.True(t, ok)
	_, rs = other.press(t, Slack, analyst, ActMore, "AAAAAAAAAAAAAAAAAAAAAA", Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "m1"})
	unknown, ok := rs.Wait(tenSeconds)
	require.True(t, ok)
	require.Equal(t, plain(unknown.Message), plain(foreign.Message))
	require.Contains(t, plain(foreign.Message), "can no longer be continued")
	require.NotContains(t, plain(foreign.Message), "EOD-")

	for page := 2; tok != ""; page++ {
		_, rs := other.press(t, Slack, analyst, ActMore, tok, Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "m1"})
		got, ok := rs.Wait(tenSeconds)
		require.True(t, ok, "page %d", page)
		require.True(t, got.Private)
		collect(got.Message)
		switch page {
		case 2:
			require.Contains(t, plain(got.Message), "Cases 11–20 of 25")
		case 3:
			require.Contains(t, plain(got.Message), "Cases 21–25 of 25")
		}
		tok = more(got.Message)
		require.LessOrEqual(t, page, 3, "three pages of 10, 10 and 5")
	}
	require.Len(t, seen, 25)
	for i := 1; i <= 25; i++ {
		require.True(t, seen[fmt.Sprintf("EOD-%d", i)], "EOD-%d", i)
	}
}

// TestCasesSearch: search by words, hash, host, @user and reference,
// scoped like cases, with More.
func TestCasesSearch(t *testing.T) {
	t.Parallel()
	f := setupWith(t, pgtest.New(t), true, nil, casework.Config{CreditsPerQuarter: 50, CreditsCap: 100})
	open := func(org, user, kind, id, question string) string {
		c, _, err := f.cw.Open(context.Background(), casework.OpenRequest{Key: "s-" + question, Org: org,
			Subject: casework.Subject{Kind: casework.SubjectKind(kind), ID: id}, Question: question,
			Requester: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: user}})
		require.NoError(t, err)
		return c.Ref
	}
	hash := "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6"
	c1 := open("contoso", analyst, "none", "", "Mimikatz dumped credentials on the jump host")
	c2 := open("contoso", analyst, "file", hash, "Is this binary signed?")
	c3 := open("contoso", "U0OTHER", "device", "ws-017", "Beaconing from ws-017")
	f1 := open("fabrikam", fabAnalyst, "none", "", "Mimikatz on our domain controller")
	_, err := f.cw.AddMessage(context.Background(), casework.MessageRequest{Ref: c3, Actor: casework.Actor{Role: casework.RoleExpert,
		Person: casework.Person{Platform: "slack", UserID: expert1}}, Text: "cobaltstrike beacon found", Internal: true})
	require.NoError(t, err)

	search := func(user, channel, text string) string {
		_, m := f.run(t, Slack, user, channel, "cases search "+text)
		return plain(m)
	}
	got := search(analyst, contosoSOC, "mimikatz credentials")
	require.Contains(t, got, c1)
	require.NotContains(t, got, f1, "another org's case")
	got = search(manager, deskChannel, "mimikatz")
	require.Contains(t, got, c1)
	require.Contains(t, got, f1)
	require.Contains(t, search(analyst, contosoSOC, strings.ToUpper(hash)), c2)
	require.Contains(t, search(analyst, contosoSOC, "ws-017"), c3)
	got = search(analyst, contosoSOC, "<@U0OTHER|other>")
	require.Contains(t, got, c3)
	require.NotContains(t, got, c1)
	require.Contains(t, search(analyst, contosoSOC, c2), c2)
	// Internal notes: experts find them, managers and members do not.
	require.Contains(t, search(expert1, deskChannel, "cobaltstrike"), c3)
	require.Contains(t, search(manager, deskChannel, "cobaltstrike"), "No case you can see matches")
	// Another org's case by reference reads as one that does not exist.
	foreign := search(analyst, contosoSOC, f1)
	unknown := search(analyst, contosoSOC, "EOD-999")
	require.Equal(t, strings.ReplaceAll(unknown, "EOD-999", "X"), strings.ReplaceAll(foreign, f1, "X"))
	require.Contains(t, search(analyst, contosoSOC, ""), "What should I look for?")
	require.Contains(t, search(analyst, contosoSOC, "the is"), "only common words")
	// User text is shown as typed, never as markup.
	_, m := f.run(t, Slack, analyst, contosoSOC, "cases search <!channel> mimikatz")
	require.True(t, m.Text[0][1].Untrusted)
}

// TestExportAndVerify: the record goes to the caller alone, with internal
// notes for experts only; verify says intact or names the entry that
// breaks; another org's case is refused as one that does not exist.
func TestExportAndVerify(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, desk := f.openCase(t, `ask "what is this powershell?"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "take "+ref)
	require.Contains(t, plain(m), "You have")
	f.reply(Slack, expert1, desk.Ref, "Looking at the script block logs now.")
	_, m = f.run(t, Slack, expert1, deskChannel, "note "+ref+" secret hunch: APT29 tooling")
	require.Contains(t, plain(m), "Internal note added")
	f.waitFor(t, "the reply is stored", func() bool {
		ms, err := f.cw.Messages(context.Background(), casework.AllOrgs(), ref)
		return err == nil && len(ms) == 2
	})

	export := func(p Platform, user, channel string) bottest.FilesResponse {
		t.Helper()
		c, r := f.command(p, user, channel, "export "+ref)
		ack := f.bot.HandleCommand(context.Background(), c)
		require.Nil(t, ack.Message)
		got, ok := r.WaitFiles(tenSeconds)
		require.True(t, ok, "no files")
		require.Empty(t, r.Responses(), "the files are the answer")
		return got
	}
	byExpert := export(Slack, expert1, deskChannel)
	require.Len(t, byExpert.Files, 2)
	require.Equal(t, ref+".md", byExpert.Files[0].Name)
	require.Equal(t, ref+".json", byExpert.Files[1].Name)
	md := string(byExpert.Files[0].Data)
	require.Contains(t, md, "what is this powershell?")
	require.Contains(t, md, "Looking at the script block logs now.")
	require.Contains(t, md, "APT29 tooling")
	require.Contains(t, string(byExpert.Files[1].Data), `"includes_internal": true`)
	require.Contains(t, plain(byExpert.Message), "Internal expert notes: included")
	require.Contains(t, plain(byExpert.Message), "intact")

	byMember := export(Slack, analyst, contosoSOC)
	require.Contains(t, string(byMember.Files[0].Data), "Looking at the script block logs now.")
	require.NotContains(t, string(byMember.Files[0].Data), "APT29")
	require.NotContains(t, string(byMember.Files[1].Data), "APT29")
	require.Contains(t, plain(byMember.Message), "Internal expert notes: not included")

	// verify: intact, then a changed entry is named.
	_, m = f.run(t, Slack, analyst, contosoSOC, "verify "+ref)
	require.Regexp(t, `Timeline intact: `+ref+`: intact, \d+ entries, head [0-9a-f]{16}…`, plain(m))
	tamper(t, f.db, `UPDATE case_timeline SET detail = replace(detail, 'powershell', 'forged') WHERE case_number = $1 AND seq = 1`,
		strings.TrimPrefix(ref, "EOD-"))
	_, m = f.run(t, Slack, manager, deskChannel, "verify "+ref)
	require.Contains(t, plain(m), "Timeline does NOT verify: "+ref+": entry 1 does not match")

	// Another org's member: the same answer as for a case that does not exist.
	for _, verb := range []string{"export", "verify"} {
		_, foreign := f.run(t, Discord, fabAnalyst, fabSOC, verb+" "+ref)
		_, unknown := f.run(t, Discord, fabAnalyst, fabSOC, verb+" EOD-999")
		require.Equal(t, plain(unknown), plain(foreign), verb)
		require.Contains(t, plain(foreign), "Not found")
	}
}

// tamper changes a timeline entry behind the append-only trigger, as
// someone with the database's superuser could.
func tamper(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL session_replication_role = replica")
	require.NoError(t, err)
	tag, err := tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	require.NoError(t, tx.Commit(ctx))
}

func testKey(t *testing.T) *secrets.Key {
	t.Helper()
	key, err := secrets.Generate()
	require.NoError(t, err)
	return key
}

// TestDigestOnceWithTwoBots: two replicas' schedulers fire together; the
// digest is queued once and each org's report posted once, to the
// managers' channel, with the week's figures worked out by hand.
func TestDigestOnceWithTwoBots(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.T)
	f1 := setupWith(t, db, true, nil, scenarioCasework(clock), withDigest)
	caseworktest.Run(t, f1.cw, clock, db, scenarioPeople())
	// The cases' cards go out before the second replica starts: its fake
	// adapter numbers messages as the first one's does.
	f1.waitFor(t, "the cases' events delivered", func() bool {
		var pending int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&pending)
		return err == nil && pending == 0
	})
	f2 := setupWith(t, db, true, nil, scenarioCasework(clock), withDigest)

	var queued [2]bool
	var wg sync.WaitGroup
	for i, f := range []*fixture{f1, f2} {
		d, err := NewDigestScheduler(f.bot.Config().Reports, NewCaseworkCases(f.cw), db, nil, nil)
		require.NoError(t, err)
		wg.Go(func() {
			var err error
			queued[i], err = d.RunOnce(context.Background())
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.NotEqual(t, queued[0], queued[1], "queued by exactly one: %v", queued)

	digests := func() []bottest.Call {
		var out []bottest.Call
		for _, f := range []*fixture{f1, f2} {
			out = append(out, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == managersChannel })...)
		}
		return out
	}
	f1.waitFor(t, "the digest delivered", func() bool {
		var pending int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE kind = 'report.digest' AND delivered_at IS NULL`).Scan(&pending)
		return err == nil && pending == 0 && len(digests()) >= 2
	})
	// Once more on either replica: nothing new.
	d, err := NewDigestScheduler(f2.bot.Config().Reports, NewCaseworkCases(f2.cw), db, nil, nil)
	require.NoError(t, err)
	again, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	require.False(t, again)
	got := digests()
	require.Len(t, got, 2, "one message per org, once")
	byOrg := map[string]string{}
	for _, c := range got {
		byOrg[c.Message.Title] = plain(c.Message)
	}
	contoso := byOrg["Weekly digest · Contoso · week of 2 February 2026"]
	for _, want := range []string{
		"From 2 to 8 February 2026, calendar days in UTC.",
		"Cases opened: 4",
		"First response: median 2 hours · 90th percentile 2 hours 48 minutes (3 cases)",
		"Conclusion: median 5 hours · 90th percentile 5 hours 48 minutes (3 cases)",
		"Within SLA: 67% (2 of 3 decided) · 1 withdrawn",
		"Credits: 3 used · 6 left",
		"Notifications: 3 posted · 2 acknowledged · median 20 minutes to acknowledge",
	} {
		require.Contains(t, contoso, want)
	}
	fabrikam := byOrg["Weekly digest · Fabrikam · week of 2 February 2026"]
	require.Contains(t, fabrikam, "Conclusion: median 2 days 2 hours")
	require.Contains(t, fabrikam, "SLA breaches: 3 targets missed by 2 cases")
}

// TestDigestSchedule: the job is due at the configured weekday and time in
// the configured zone.
func TestDigestSchedule(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: testKey(t)}, nil, nil)
	require.NoError(t, err)
	d, err := NewDigestScheduler(Reports{Digest: &Digest{Slack: &DigestSlack{Channel: managersChannel}, When: "Wed 07:30"}, Location: london},
		NewCaseworkCases(cw), db, nil, nil)
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, d.Stop()) })
	next, err := d.NextRun()
	require.NoError(t, err)
	next = next.In(london)
	require.Equal(t, time.Wednesday, next.Weekday())
	require.Equal(t, 7, next.Hour())
	require.Equal(t, 30, next.Minute())
	require.True(t, next.After(time.Now()) && next.Before(time.Now().Add(7*24*time.Hour+time.Hour)), "next run %s", next)
}

// TestDigestWaitsForAReplicaThatHasIt: in a rolling deploy that adds
// reports.digest, a replica without it claims the queued digest first: it
// leaves it undelivered (it marked it delivered, with nothing posted), and
// the replica with the digest posts it.
func TestDigestWaitsForAReplicaThatHasIt(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := testclock.New(caseworktest.T)
	old := setupWith(t, db, true, nil, scenarioCasework(clock))
	caseworktest.Run(t, old.cw, clock, db, scenarioPeople())
	pending := func(kind string) int {
		var n int
		require.NoError(t, db.QueryRow(context.Background(),
			`SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL AND ($1 = '' OR kind = $1)`, kind).Scan(&n))
		return n
	}
	old.waitFor(t, "the cases' events delivered", func() bool { return pending("") == 0 })
	cfg := old.bot.Config().Reports
	cfg.Digest = &Digest{Slack: &DigestSlack{Channel: managersChannel}}
	d, err := NewDigestScheduler(cfg, NewCaseworkCases(old.cw), db, nil, nil)
	require.NoError(t, err)
	queued, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	require.True(t, queued)
	old.waitFor(t, "the old replica tried it", func() bool {
		var attempts int
		err := db.QueryRow(context.Background(), `SELECT coalesce(max(attempts), 0) FROM outbox WHERE kind = 'report.digest'`).Scan(&attempts)
		return err == nil && attempts > 0
	})
	require.Equal(t, 1, pending("report.digest"), "not delivered by a replica that cannot render it")

	next := setupWith(t, db, true, nil, scenarioCasework(clock), withDigest)
	next.waitFor(t, "the digest posted", func() bool {
		return len(next.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == managersChannel })) == 2
	})
	require.Empty(t, old.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == managersChannel }))
}
