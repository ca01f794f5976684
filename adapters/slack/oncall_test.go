package slack_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
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
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/internal/testwait"
	"github.com/threatdesk/threatdesk/oncall"
)

// The people and places of the on-call flows.
const (
	ocTeam    = "T0CONTOSO"
	ocSOC     = "C0CONTOSOSOC"
	ocDesk    = "C0EXPERTDESK"
	ocAnalyst = "U0ANALYST1"
	ocEve     = "U0EXPERT1"
	ocEd      = "U0EXPERT2"
	ocMax     = "U0MANAGER1"
)

// ocT0 is a Tuesday in March, before London's clocks go forward.
var ocT0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

// oncallFlow is the real bot, casework and the on-call rotation behind the
// Slack adapter, against the fake, with one settable clock.
type oncallFlow struct {
	t     *testing.T
	ctx   context.Context
	fake  *slackfake.Server
	db    *pgxpool.Pool
	cw    *casework.Service
	rota  *oncall.Service
	clock *testclock.Clock
	reg   *prometheus.Registry
	// on holds the pager at ocT0 (daily hand-over at 09:00 London); next
	// is the other expert.
	on, next string
}

type oncallFlowOpts struct {
	rotation []string // default Eve, Ed
	managers []string // default Max
	users    func([]slackfake.User) []slackfake.User
	// before runs before the bot starts; it may return the rotation to use.
	before func(f *oncallFlow) *oncall.Service
}

func ocRota(t testing.TB, db *pgxpool.Pool, ids ...string) *oncall.Service {
	t.Helper()
	var ms []oncall.Member
	for _, id := range ids {
		ms = append(ms, oncall.Member{Platform: oncall.PlatformSlack, UserID: id})
	}
	loc, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	svc, err := oncall.New(db, oncall.Config{Handover: oncall.Handover{Period: oncall.Daily, Hour: 9}, Rotation: ms}, loc, nil)
	require.NoError(t, err)
	return svc
}

func startOncallFlow(t *testing.T, o oncallFlowOpts) *oncallFlow {
	t.Helper()
	if o.rotation == nil {
		o.rotation = []string{ocEve, ocEd}
	}
	if o.managers == nil {
		o.managers = []string{ocMax}
	}
	users := []slackfake.User{
		{ID: ocAnalyst, Name: "alice", DisplayName: "Alice"}, {ID: ocEve, Name: "eve", DisplayName: "Eve"},
		{ID: ocEd, Name: "ed", DisplayName: "Ed"}, {ID: ocMax, Name: "max", DisplayName: "Max"},
	}
	if o.users != nil {
		users = o.users(users)
	}
	fake := slackfake.New(t, slackfake.Options{TeamID: ocTeam,
		Channels: []slackfake.Channel{{ID: ocSOC, Name: "soc"}, {ID: ocDesk, Name: "expert-desk"}}, Users: users})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	clock := testclock.New(ocT0)
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key, Now: clock.Now, PageAfter: 15 * time.Minute}, nil, nil)
	require.NoError(t, err)
	f := &oncallFlow{t: t, ctx: ctx, fake: fake, db: db, cw: cw, rota: ocRota(t, db, o.rotation...), clock: clock, reg: prometheus.NewRegistry()}
	cur, err := f.rota.Current(ctx, clock.Now())
	require.NoError(t, err)
	f.on = cur.Member.UserID
	for _, id := range o.rotation {
		if id != f.on {
			f.next = id
			break
		}
	}
	rota := f.rota
	if o.before != nil {
		if r := o.before(f); r != nil {
			rota = r
		}
	}
	loc, _ := time.LoadLocation("Europe/London")
	b, err := bot.New(bot.Config{
		Orgs:     []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: ocTeam, Channels: []string{ocSOC}}}},
		Desk:     bot.Desk{Slack: &bot.SlackDesk{Team: ocTeam, Channel: ocDesk}},
		Experts:  bot.UserIDs{Slack: []string{ocEve, ocEd}},
		Managers: bot.UserIDs{Slack: o.managers},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
		Location: loc, Now: clock.Now,
	}, db, bot.NewCaseworkCases(f.cw), nil, log, f.reg)
	require.NoError(t, err)
	b.UseOnCall(bot.NewOncallRota(rota))
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
	t.Cleanup(func() { require.Empty(t, fake.Violations()) })
	return f
}

func (f *oncallFlow) wait(what string, cond func() bool) {
	f.t.Helper()
	if !testwait.Until(20*time.Second, cond, f.fake) {
		for _, m := range f.fake.Messages("") {
			f.t.Logf("message %s %s thread=%q notified=%v: %s | %s", m.Channel, m.TS, m.ThreadTS, m.Notified, m.Text, texts(f.t, m.Blocks))
		}
		for _, r := range f.fake.Responses() {
			f.t.Logf("response: %s %s", r.Text, texts(f.t, r.Blocks))
		}
		f.t.Fatalf("timed out waiting for %s", what)
	}
}

// command runs /experts text as user in channel and returns the answer.
func (f *oncallFlow) command(user, channel, text string) string {
	f.t.Helper()
	before := len(f.fake.Responses())
	ack, err := f.fake.Command(f.ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, TeamID: ocTeam, Text: text})
	require.NoError(f.t, err)
	if s := string(ack.Payload); strings.Contains(s, "text") && len(ack.Payload) > 2 {
		return s
	}
	var got string
	f.wait("an answer to /experts "+text, func() bool {
		rs := f.fake.Responses()
		if len(rs) > before {
			got = rs[before].Text + "\n" + texts(f.t, rs[before].Blocks)
			return true
		}
		return false
	})
	return got
}

// all is a message's text and blocks.
func (f *oncallFlow) all(m slackfake.Message) string { return m.Text + "\n" + texts(f.t, m.Blocks) }

// top waits for a top-level message in channel containing want.
func (f *oncallFlow) top(channel, want string) slackfake.Message {
	f.t.Helper()
	var got slackfake.Message
	f.wait(want+" in "+channel, func() bool {
		for _, m := range f.fake.Messages(channel) {
			if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(f.all(m), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// reply waits for a reply in a thread containing want.
func (f *oncallFlow) reply(channel, ts, want string) slackfake.Message {
	f.t.Helper()
	var got slackfake.Message
	f.wait(want+" in the thread of "+ts, func() bool {
		for _, m := range f.fake.Replies(channel, ts) {
			if strings.Contains(f.all(m), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// direct waits for a direct message to user containing want.
func (f *oncallFlow) direct(user, want string) slackfake.Message {
	f.t.Helper()
	var got slackfake.Message
	f.wait("a direct message to "+user+" containing "+want, func() bool {
		for _, m := range f.fake.DirectMessages(user) {
			if strings.Contains(f.all(m), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// settled waits until the outbox is empty.
func (f *oncallFlow) settled() {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		var n int
		err := f.db.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n)
		return err == nil && n == 0
	}, 20*time.Second, 10*time.Millisecond, "the outbox drains")
}

func (f *oncallFlow) sweep() casework.SweepResult {
	f.t.Helper()
	res, err := f.cw.SweepSLA(f.ctx)
	require.NoError(f.t, err)
	return res
}

// open asks from the SOC channel and returns the case's receipt and desk card.
func (f *oncallFlow) open(text string) (ref string, receipt, desk slackfake.Message) {
	f.t.Helper()
	ans := f.command(ocAnalyst, ocSOC, text)
	i := strings.Index(ans, "EOD-")
	require.GreaterOrEqual(f.t, i, 0, ans)
	ref = strings.Fields(ans[i:])[0]
	return ref, f.top(ocSOC, ref+" ·"), f.top(ocDesk, ref+" · Contoso")
}

func (f *oncallFlow) deskLink(desk slackfake.Message) string {
	return slackfake.PermalinkOf(ocDesk, desk.TS, "")
}

// TestNewCaseAndPageOverSlack: the desk card of a new case mentions the
// expert on call and notifies only them; a high-priority case also sends
// them a direct message with a link to the card; still new after
// page_after, it pages the next expert and the managers once, with a link,
// and says so in the desk thread.
func TestNewCaseAndPageOverSlack(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	ref, _, desk := f.open(`device ws-017 "beaconing &lt;!channel&gt; &lt;@` + ocEd + `&gt;"`)
	require.Contains(t, texts(t, desk.Blocks), "*On call*\n<@"+f.on+">")
	require.Equal(t, []string{f.on}, desk.Notified, "the card notifies the on-call expert and nobody else")
	require.Contains(t, desk.Text, "<@"+f.on+">", "the notification names them")
	require.Contains(t, texts(t, desk.Blocks), "&lt;@"+ocEd+"&gt;", "a mention typed by the analyst stays text")

	dm := f.direct(f.on, "New high-priority case "+ref)
	require.Contains(t, f.all(dm), "You are on call.")
	require.Contains(t, f.all(dm), "<"+f.deskLink(desk)+"|Open "+ref+" on the desk>", "a link to the card itself (chat.getPermalink)")
	require.NotEmpty(t, f.fake.Calls("conversations.open"))
	require.NotEmpty(t, f.fake.Calls("chat.getPermalink"))

	ref2, _, desk2 := f.open("ask is this domain known?")
	require.Equal(t, []string{f.on}, desk2.Notified)
	f.settled()
	for _, m := range f.fake.DirectMessages(f.on) {
		require.NotContains(t, f.all(m), ref2, "a medium case sends no direct message")
	}

	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep().Paged, "the high-priority case only")
	require.Zero(t, f.sweep().Paged, "once")
	note := f.reply(ocDesk, desk.TS, "Paged:")
	require.Contains(t, f.all(note), "nobody has taken "+ref+" (high priority) in 16 min")
	require.Contains(t, f.all(note), "Paged "+f.name(f.next)+", next on call, and the managers: Max.")
	require.Empty(t, note.Notified, "the note pings nobody: the pages are direct messages")
	for _, who := range []string{f.next, ocMax} {
		m := f.direct(who, ref+" needs an expert")
		require.Contains(t, f.all(m), "<"+f.deskLink(desk)+"|Open "+ref+" on the desk>")
	}
	f.settled()
	require.Len(t, f.fake.DirectMessages(f.next), 1)
	require.Len(t, f.fake.DirectMessages(ocMax), 1)
	require.Len(t, f.fake.DirectMessages(f.on), 1, "told once, when the case opened")
}

func (f *oncallFlow) name(id string) string {
	return map[string]string{ocEve: "Eve", ocEd: "Ed", ocMax: "Max", ocAnalyst: "Alice"}[id]
}

// TestAssignAndWaitingOverSlack: a manager's assign says who assigned whom
// in both threads and sends the assignee a direct message with the
// question and a link; asking for more information mentions the requester
// in their thread, and after remind_after they are reminded once, with a
// mention, while the SLA clock stays paused.
func TestAssignAndWaitingOverSlack(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	ref, receipt, desk := f.open("ask did this account log in from Lagos?")
	ans := f.command(ocMax, ocDesk, "assign "+ref+" <@"+ocEd+"|ed>")
	require.Contains(t, ans, ref+" is now with Ed")
	want := "Max assigned " + ref + " to Ed (threat expert)."
	f.reply(ocDesk, desk.TS, want)
	f.reply(ocSOC, receipt.TS, want)
	dm := f.direct(ocEd, "Max assigned you "+ref)
	require.Contains(t, f.all(dm), "did this account log in from Lagos?")
	require.Contains(t, f.all(dm), "<"+f.deskLink(desk)+"|Open "+ref+" on the desk>")
	for _, m := range f.fake.Replies(ocDesk, desk.TS) {
		require.NotContains(t, f.all(m), "Ed (threat expert) took", "not announced as a take")
	}

	f.command(ocEd, ocDesk, `more-info `+ref+` "the sign-in logs, please"`)
	r := f.reply(ocSOC, receipt.TS, "More information needed")
	require.Equal(t, []string{ocAnalyst}, r.Notified, "the requester is mentioned")
	require.True(t, strings.HasPrefix(texts(t, r.Blocks), "<@"+ocAnalyst+"> "))
	d := f.reply(ocDesk, desk.TS, "More information needed")
	require.Empty(t, d.Notified, "nobody is pinged on the desk")

	f.clock.Advance(25 * time.Hour)
	require.Equal(t, 1, f.sweep().Reminded)
	require.Zero(t, f.sweep().Reminded, "once")
	rem := f.reply(ocSOC, receipt.TS, "still waiting for more information")
	require.Equal(t, []string{ocAnalyst}, rem.Notified)
	require.Contains(t, f.all(rem), "the SLA clock stays paused")
	f.reply(ocDesk, desk.TS, "Reminded the requester of "+ref)
	f.settled()
	n := 0
	for _, m := range f.fake.Replies(ocSOC, receipt.TS) {
		if strings.Contains(f.all(m), "still waiting") {
			n++
		}
	}
	require.Equal(t, 1, n, "one reminder")
	sla, err := f.cw.SLA(f.ctx, casework.AllOrgs(), ref)
	require.NoError(t, err)
	require.True(t, sla.Paused)
}

// TestSLANoticesOverSlack: the SLA warning mentions the on-call expert
// while nobody has the case, the assignee once someone has it; durations in
// words, the due time as <!date^…> whose fallback names the zone (issue
// 14.6); a breach sends the managers a direct message with a link.
func TestSLANoticesOverSlack(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{before: func(f *oncallFlow) *oncall.Service {
		f.cw = mustCasework(t, f.db, f.clock, 0) // no paging: warnings only
		return nil
	}})
	ref, _, desk := f.open("device ws-017 beaconing")
	ref2, _, desk2 := f.open("device ws-018 beaconing")
	f.command(f.next, ocDesk, "take "+ref2)
	f.reply(ocDesk, desk2.TS, "took "+ref2)

	f.clock.Advance(46 * time.Minute)
	require.Equal(t, 2, f.sweep().Warnings)
	w := f.reply(ocDesk, desk.TS, "SLA warning:")
	date := "<!date^" + strconv.FormatInt(ocT0.Add(time.Hour).Unix(), 10) + "^{date_short_pretty} {time}|Tue 3 Mar 11:00 Europe/London>"
	require.Contains(t, texts(t, w.Blocks), ref+": the first response is due in 14 min, at "+date+" (target 1 h, high priority). <@"+f.on+"> is on call, and nobody has taken the case.")
	require.Equal(t, []string{f.on}, w.Notified)
	require.NotRegexp(t, `[0-9]h[0-9]+m|UTC`, f.all(w), "no Go durations, no unnamed UTC")
	w2 := f.reply(ocDesk, desk2.TS, "SLA warning:")
	require.Contains(t, texts(t, w2.Blocks), "<@"+f.next+"> has the case.")
	require.Equal(t, []string{f.next}, w2.Notified, "the assignee, not the on-call expert")

	f.clock.Advance(15 * time.Minute)
	require.Equal(t, 2, f.sweep().Breaches)
	b := f.reply(ocDesk, desk.TS, "SLA breached:")
	require.Contains(t, f.all(b), "Escalated to the managers: Max.")
	dm := f.direct(ocMax, "SLA breached: ")
	require.Contains(t, f.all(dm), "the first response was due at")
	require.Contains(t, f.all(dm), "|Open ")
	f.settled()
	require.Len(t, f.fake.DirectMessages(ocMax), 2, "one per breached case")
	links := []string{}
	for _, m := range f.fake.DirectMessages(ocMax) {
		links = append(links, f.all(m))
	}
	require.True(t, slices.ContainsFunc(links, func(s string) bool { return strings.Contains(s, f.deskLink(desk)) }))
	require.True(t, slices.ContainsFunc(links, func(s string) bool { return strings.Contains(s, f.deskLink(desk2)) }))
}

func mustCasework(t testing.TB, db *pgxpool.Pool, clock *testclock.Clock, pageAfter time.Duration) *casework.Service {
	t.Helper()
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key, Now: clock.Now, PageAfter: pageAfter}, nil, nil)
	require.NoError(t, err)
	return cw
}

// TestOncallCommandOverSlack: /experts oncall shows who holds the pager,
// until when and who is next; /experts oncall take is recorded and
// announced in the desk; the next case names who took it.
func TestOncallCommandOverSlack(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	ans := f.command(ocMax, ocDesk, "oncall")
	require.Contains(t, ans, f.name(f.on))
	require.Contains(t, ans, "Wed 4 Mar 09:00 Europe/London")
	require.Contains(t, ans, "in 23 h")
	require.Contains(t, ans, "*Next*\n"+f.name(f.next))

	ans = f.command(f.next, ocDesk, "oncall take")
	require.Contains(t, ans, "You hold the pager until")
	a := f.top(ocDesk, "took the pager")
	require.Contains(t, f.all(a), f.name(f.next)+" took the pager until <!date^")
	require.Contains(t, f.all(a), "|Wed 4 Mar 09:00 Europe/London>, from "+f.name(f.on)+".")
	require.Empty(t, a.Notified)

	ans = f.command(ocEve, ocDesk, "oncall")
	require.Contains(t, ans, "*"+f.name(f.next)+"* (took the pager from "+f.name(f.on)+")")
	require.Contains(t, f.command(ocAnalyst, ocSOC, "oncall"), "Only threat experts and managers of the expert service can see who is on call")

	_, _, desk := f.open("ask who has the pager?")
	require.Equal(t, []string{f.next}, desk.Notified)
}

// TestRemovedFromRotationAndUnreachableOverSlack: a case delivered after
// the expert who held the pager left the rotation (and the manager left
// the config) pings only who is there now; a direct message to a
// deactivated account is skipped and counted, and the rest is delivered.
func TestRemovedFromRotationAndUnreachableOverSlack(t *testing.T) {
	t.Parallel()
	var ref string
	f := startOncallFlow(t, oncallFlowOpts{
		managers: []string{},
		users: func(us []slackfake.User) []slackfake.User {
			for i := range us {
				if us[i].ID == ocEd {
					us[i].Deactivated = true // Ed's account is gone: no direct message reaches him
				}
			}
			return us
		},
		before: func(f *oncallFlow) *oncall.Service {
			if _, err := f.rota.Take(f.ctx, oncall.Member{Platform: "slack", UserID: ocEve}, f.clock.Now()); err != nil {
				var already *oncall.AlreadyOnCallError
				require.ErrorAs(t, err, &already)
			}
			c, _, err := f.cw.Open(f.ctx, casework.OpenRequest{Key: "k1", Org: "contoso",
				Subject: casework.Subject{Kind: casework.SubjectDevice, ID: "ws-017"}, Question: "beaconing",
				Requester: casework.Person{Platform: "slack", Workspace: ocTeam, UserID: ocAnalyst, DisplayName: "Alice"},
				Origin:    casework.Place{Platform: "slack", Workspace: ocTeam, Channel: ocSOC}})
			require.NoError(t, err)
			ref = c.Ref
			return ocRota(t, f.db, ocEd) // Eve left the rotation before it was delivered
		},
	})
	desk := f.top(ocDesk, ref+" · Contoso")
	require.Equal(t, []string{ocEd}, desk.Notified, "who is on call now")
	f.settled()
	require.Empty(t, f.fake.NotifiedOf(ocEve), "the expert who left is never pinged")
	require.Empty(t, f.fake.DirectMessages(ocEve))
	require.Empty(t, f.fake.DirectMessages(ocEd), "deactivated: skipped")
	require.Equal(t, 1.0, directMessages(t, f.reg, "unreachable"))
	var dead int
	require.NoError(t, f.db.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`).Scan(&dead))
	require.Zero(t, dead, "the rest of the event was delivered")

	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep().Paged)
	n := f.reply(ocDesk, desk.TS, "Paged:")
	require.Contains(t, f.all(n), "Nobody is configured to page")
	f.settled()
	require.Empty(t, f.fake.NotifiedOf(ocEve))
	require.Empty(t, f.fake.NotifiedOf(ocMax))
	for _, c := range f.fake.Calls("conversations.open") {
		require.NotContains(t, c.Form.Get("users"), ocEve)
		require.NotContains(t, c.Form.Get("users"), ocMax)
	}
}

func directMessages(t testing.TB, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_bot_direct_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}
