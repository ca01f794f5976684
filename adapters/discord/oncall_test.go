package discord_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/oncall"
)

// The second expert of the on-call flows (expertID, Eve, is the first).
const edID = "1000000000000000019"

// ocT0 is a Tuesday in March, before London's clocks go forward.
var ocT0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

// oncallFlow is the real bot, casework and the on-call rotation behind the
// Discord adapter, against the fake, with one settable clock; the desk is
// on Discord.
type oncallFlow struct {
	*flow
	ctx   context.Context
	db    *pgxpool.Pool
	cw    *casework.Service
	rota  *oncall.Service
	clock *testclock.Clock
	reg   *prometheus.Registry
	// on holds the pager at ocT0 (daily hand-over at 09:00 London); next is
	// the other expert.
	on, next string
}

type oncallFlowOpts struct {
	managers  []string // default managerID
	pageAfter time.Duration
	noDMs     string // a user who turned direct messages off
	// before runs before the bot starts; it may return the rotation to use.
	before func(f *oncallFlow) *oncall.Service
}

func ocRota(t testing.TB, db *pgxpool.Pool, ids ...string) *oncall.Service {
	t.Helper()
	var ms []oncall.Member
	for _, id := range ids {
		ms = append(ms, oncall.Member{Platform: oncall.PlatformDiscord, UserID: id})
	}
	loc, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	svc, err := oncall.New(db, oncall.Config{Handover: oncall.Handover{Period: oncall.Daily, Hour: 9}, Rotation: ms}, loc, nil)
	require.NoError(t, err)
	return svc
}

func startOncallFlow(t *testing.T, o oncallFlowOpts) *oncallFlow {
	t.Helper()
	if o.managers == nil {
		o.managers = []string{managerID}
	}
	if o.pageAfter == 0 {
		o.pageAfter = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	clock := testclock.New(ocT0)
	key, err := secrets.Generate()
	require.NoError(t, err)
	pageAfter := o.pageAfter
	if pageAfter < 0 {
		pageAfter = 0
	}
	cw, err := casework.New(db, casework.Config{Key: key, Now: clock.Now, PageAfter: pageAfter}, nil, nil)
	require.NoError(t, err)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID}}}})
	for _, u := range []discordfake.User{{ID: analystID, Username: "alice", GlobalName: "Alice"}, {ID: expertID, Username: "eve", GlobalName: "Eve"},
		{ID: edID, Username: "ed", GlobalName: "Ed"}, {ID: managerID, Username: "max", GlobalName: "Max"}} {
		u.NoDMs = u.ID == o.noDMs
		dfake.AddUser(u)
	}
	f := &oncallFlow{ctx: ctx, db: db, cw: cw, rota: ocRota(t, db, expertID, edID), clock: clock, reg: prometheus.NewRegistry()}
	cur, err := f.rota.Current(ctx, clock.Now())
	require.NoError(t, err)
	f.on, f.next = cur.Member.UserID, expertID
	if f.on == expertID {
		f.next = edID
	}
	rota := f.rota
	if o.before != nil {
		if r := o.before(f); r != nil {
			rota = r
		}
	}
	log := testLogger(t)
	loc, _ := time.LoadLocation("Europe/London")
	b, err := bot.New(bot.Config{
		Orgs:     []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}}},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID, edID}},
		Managers: bot.UserIDs{Discord: o.managers},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}},
		Location: loc, Now: clock.Now,
	}, db, bot.NewCaseworkCases(cw), nil, log, f.reg)
	require.NoError(t, err)
	b.UseOnCall(bot.NewOncallRota(rota))
	da, err := discord.New(discord.Config{Token: secrets.String(dfake.Token()), AppID: dfake.AppID(), APIURL: dfake.APIURL(), Guilds: []string{guildID}},
		log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(da))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, da.Start(ctx))
	t.Cleanup(func() { require.NoError(t, da.Stop()) })
	require.True(t, dfake.WaitSessions(1, 10*time.Second))
	t.Cleanup(func() {
		require.Empty(t, dfake.Violations())
		require.Empty(t, dfake.Pings(), "nothing pinged by parse")
	})
	f.flow = &flow{t: t, dfake: dfake, bot: b}
	return f
}

func (f *oncallFlow) name(id string) string {
	return map[string]string{expertID: "Eve", edID: "Ed", managerID: "Max", analystID: "Alice"}[id]
}

// run runs /experts sub as user in channel and waits for an answer
// containing want.
func (f *oncallFlow) run(user, channel, sub string, opts map[string]any, want string) {
	f.t.Helper()
	in, _ := f.command(user, channel, sub, opts)
	f.wait("an answer to /experts "+sub+" containing "+want, f.answered(in, want))
}

// open asks from the org channel and returns the reference, the receipt
// and the desk card.
func (f *oncallFlow) open(sub string, opts map[string]any) (string, discordfake.Message, discordfake.Message) {
	f.t.Helper()
	in, _ := f.command(analystID, channelID, sub, opts)
	var ref string
	f.wait("the case opens", func() bool {
		msgs := f.dfake.FollowupMessages(in)
		if m, ok := f.dfake.OriginalResponse(in); ok {
			msgs = append(msgs, m)
		}
		for _, m := range msgs {
			if i := strings.Index(text(m), "EOD-"); i >= 0 {
				ref = strings.Fields(text(m)[i:])[0]
				return true
			}
		}
		return false
	})
	var receipt, desk discordfake.Message
	f.wait("receipt and desk card of "+ref, func() bool {
		var ok1, ok2 bool
		receipt, ok1 = f.find(channelID, ref+" ·")
		desk, ok2 = f.find(deskID, ref+" · Fabrikam")
		return ok1 && ok2
	})
	return ref, receipt, desk
}

// in waits for a message in a thread (or channel) containing want.
func (f *oncallFlow) in(channel, want string) discordfake.Message {
	f.t.Helper()
	f.wait(want+" in "+channel, f.has(channel, want))
	m, _ := f.find(channel, want)
	return m
}

// direct waits for a direct message to user containing want.
func (f *oncallFlow) direct(user, want string) discordfake.Message {
	f.t.Helper()
	var got discordfake.Message
	f.wait("a direct message to "+user+" containing "+want, func() bool {
		for _, m := range f.dfake.DirectMessages(user) {
			if strings.Contains(text(m), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

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

func deskLink(card discordfake.Message) string {
	return "https://discord.com/channels/" + guildID + "/" + deskID + "/" + card.ID
}

// TestNewCaseAndPageOverDiscord: the desk card of a new case pings the
// expert on call (its content, with allowed_mentions listing exactly them);
// a high-priority case also sends them a direct message with a link to the
// card; still new after page_after, it pages the next expert and the
// managers once, and says so in the desk thread.
func TestNewCaseAndPageOverDiscord(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	ref, _, card := f.open("device", map[string]any{"device": "ws-017", "question": "beaconing <@" + edID + "> @everyone"})
	require.Equal(t, "<@"+f.on+">", card.Content)
	require.Equal(t, []string{f.on}, card.Notified, "the on-call expert, and only them")
	require.Contains(t, text(card), "On call\n<@"+f.on+">")
	require.Contains(t, text(card), `\<@`+edID+`\>`, "a mention typed by the analyst stays text")

	dm := f.direct(f.on, "New high-priority case "+ref)
	require.Contains(t, text(dm), "You are on call.")
	require.Contains(t, text(dm), "[Open "+ref+" on the desk]("+deskLink(card)+")")

	ref2, _, card2 := f.open("ask", map[string]any{"question": "is this domain known?"})
	require.Equal(t, []string{f.on}, card2.Notified)
	f.settled()
	for _, m := range f.dfake.DirectMessages(f.on) {
		require.NotContains(t, text(m), ref2, "a medium case sends no direct message")
	}

	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep().Paged)
	require.Zero(t, f.sweep().Paged, "once")
	note := f.in(card.ID, "Paged:")
	require.Contains(t, text(note), "Paged "+f.name(f.next)+", next on call, and the managers: Max.")
	require.Empty(t, note.Notified)
	for _, who := range []string{f.next, managerID} {
		m := f.direct(who, ref+" needs an expert")
		require.Contains(t, text(m), "("+deskLink(card)+")")
	}
	f.settled()
	require.Len(t, f.dfake.DirectMessages(f.next), 1)
	require.Len(t, f.dfake.DirectMessages(managerID), 1)
	require.Len(t, f.dfake.DirectMessages(f.on), 1)
}

// TestAssignAndWaitingOverDiscord: a manager's assign says who assigned
// whom and DMs the assignee; asking for more information pings the
// requester in their thread; after remind_after they are reminded once.
func TestAssignAndWaitingOverDiscord(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	ref, receipt, card := f.open("ask", map[string]any{"question": "did this account log in from Lagos?"})
	f.run(managerID, deskID, "assign", map[string]any{"case": ref, "expert": edID}, "is now with Ed")
	want := "**Max** assigned " + ref + " to **Ed** (threat expert)."
	f.in(card.ID, want)
	f.in(receipt.ID, want)
	dm := f.direct(edID, "**Max** assigned you "+ref)
	require.Contains(t, text(dm), "did this account log in from Lagos?")
	require.Contains(t, text(dm), "("+deskLink(card)+")")

	f.run(edID, deskID, "more-info", map[string]any{"case": ref, "text": "the sign-in logs, please"}, "more information needed")
	r := f.in(receipt.ID, "More information needed")
	require.True(t, strings.HasPrefix(r.Content, "<@"+analystID+"> "), r.Content)
	require.Equal(t, []string{analystID}, r.Notified)
	d := f.in(card.ID, "More information needed")
	require.Empty(t, d.Notified)

	f.clock.Advance(25 * time.Hour)
	require.Equal(t, 1, f.sweep().Reminded)
	require.Zero(t, f.sweep().Reminded)
	rem := f.in(receipt.ID, "still waiting for more information")
	require.Equal(t, []string{analystID}, rem.Notified)
	require.Contains(t, text(rem), "(Tue 3 Mar 10:00 Europe/London)")
	f.in(card.ID, "Reminded the requester of "+ref)
	f.settled()
	n := 0
	for _, m := range f.dfake.Messages(receipt.ID) {
		if strings.Contains(text(m), "still waiting") {
			n++
		}
	}
	require.Equal(t, 1, n)
}

// TestSLANoticesOverDiscord: the warning pings the on-call expert while
// nobody has the case and the assignee once someone has it, with durations
// in words and times in the configured zone, named (issue 14.6); a breach
// sends the managers a direct message with a link.
func TestSLANoticesOverDiscord(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{pageAfter: -1})
	ref, _, card := f.open("device", map[string]any{"device": "ws-017"})
	ref2, _, card2 := f.open("device", map[string]any{"device": "ws-018"})
	f.run(f.next, deskID, "take", map[string]any{"case": ref2}, "You have "+ref2)
	f.in(card2.ID, "took "+ref2)

	f.clock.Advance(46 * time.Minute)
	require.Equal(t, 2, f.sweep().Warnings)
	w := f.in(card.ID, "SLA warning:")
	require.Contains(t, w.Content, ref+": the first response is due in 14 min, at Tue 3 Mar 11:00 Europe/London (target 1 h, high priority). <@"+f.on+"> is on call, and nobody has taken the case.")
	require.Equal(t, []string{f.on}, w.Notified)
	w2 := f.in(card2.ID, "SLA warning:")
	require.Contains(t, w2.Content, "<@"+f.next+"> has the case.")
	require.Equal(t, []string{f.next}, w2.Notified)

	f.clock.Advance(15 * time.Minute)
	require.Equal(t, 2, f.sweep().Breaches)
	f.in(card.ID, "Escalated to the managers: Max.")
	dm := f.direct(managerID, "**SLA breached:** "+ref+":")
	require.Contains(t, text(dm), "("+deskLink(card)+")")
	f.direct(managerID, "**SLA breached:** "+ref2+":")
}

// TestOncallCommandOverDiscord: /experts oncall shows who holds the pager,
// until when and who is next; /experts oncall take is announced in the
// desk.
func TestOncallCommandOverDiscord(t *testing.T) {
	t.Parallel()
	f := startOncallFlow(t, oncallFlowOpts{})
	in, _ := f.command(managerID, deskID, "oncall", nil)
	f.wait("who is on call", f.answered(in, "Wed 4 Mar 09:00 Europe/London (in 23 h)"))
	f.wait("who is on call", f.answered(in, f.name(f.on)))

	f.run(f.next, deskID, "oncall", map[string]any{"action": "take"}, "You hold the pager until Wed 4 Mar 09:00 Europe/London")
	a := f.in(deskID, "took the pager")
	require.Contains(t, a.Content, f.name(f.next)+" took the pager until Wed 4 Mar 09:00 Europe/London, from "+f.name(f.on)+".")
	require.Empty(t, a.Notified)
	f.run(analystID, channelID, "oncall", nil, "Only threat experts and managers of the expert service can see who is on call")

	_, _, card := f.open("ask", map[string]any{"question": "who has the pager?"})
	require.Equal(t, []string{f.next}, card.Notified)
}

// TestRemovedFromRotationAndUnreachableOverDiscord: a case delivered after
// the expert who held the pager left the rotation (and the manager left
// the config) pings only who is there now; a direct message to someone who
// turned them off is skipped and counted, and the rest is delivered.
func TestRemovedFromRotationAndUnreachableOverDiscord(t *testing.T) {
	t.Parallel()
	var ref string
	f := startOncallFlow(t, oncallFlowOpts{
		managers: []string{},
		noDMs:    edID,
		before: func(f *oncallFlow) *oncall.Service {
			if _, err := f.rota.Take(f.ctx, oncall.Member{Platform: "discord", UserID: expertID}, f.clock.Now()); err != nil {
				var already *oncall.AlreadyOnCallError
				require.ErrorAs(t, err, &already)
			}
			c, _, err := f.cw.Open(f.ctx, casework.OpenRequest{Key: "k1", Org: "fabrikam",
				Subject: casework.Subject{Kind: casework.SubjectDevice, ID: "ws-017"}, Question: "beaconing",
				Requester: casework.Person{Platform: "discord", Workspace: guildID, UserID: analystID, DisplayName: "Alice"},
				Origin:    casework.Place{Platform: "discord", Workspace: guildID, Channel: channelID}})
			require.NoError(t, err)
			ref = c.Ref
			return ocRota(t, f.db, edID) // Eve left the rotation before it was delivered
		},
	})
	card := f.in(deskID, ref+" · Fabrikam")
	require.Equal(t, []string{edID}, card.Notified)
	f.settled()
	require.Empty(t, f.dfake.NotifiedOf(expertID), "the expert who left is never pinged")
	require.Empty(t, f.dfake.DirectMessages(expertID))
	require.Empty(t, f.dfake.DirectMessages(edID), "Ed turned direct messages off: skipped")
	require.Equal(t, 1.0, directMessages(t, f.reg, "unreachable"))
	var dead int
	require.NoError(t, f.db.QueryRow(f.ctx, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`).Scan(&dead))
	require.Zero(t, dead, "the rest of the event was delivered")

	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep().Paged)
	f.in(card.ID, "Nobody is configured to page")
	f.settled()
	require.Empty(t, f.dfake.NotifiedOf(expertID))
	require.Empty(t, f.dfake.NotifiedOf(managerID))
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
