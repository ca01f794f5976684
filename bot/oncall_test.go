package bot_test

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/oncall"
)

// oncallT0 is a Tuesday in March, before London's clocks go forward: London
// time is UTC.
var oncallT0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

func london(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	return loc
}

// oncallFixture is a bot with the experts' rotation (hand-over daily 09:00
// London), a settable clock shared by casework, the rotation and the bot,
// and times shown in Europe/London.
type oncallFixture struct {
	*fixture
	clock *testclock.Clock
	rota  *oncall.Service
	// on holds the pager at oncallT0; next is the other expert.
	on, next string
	ctx      context.Context
}

type oncallSetup struct {
	rotation  []string      // Slack expert ids; default expert1, expert2
	pageAfter time.Duration // default 15m; negative: off
	cfg       []option
	// before runs after the rotation is made and before the bot starts
	// (its db and clock ready); it may return another rotation to use.
	before func(db *pgxpool.Pool, f *oncallFixture) *oncall.Service
	// wrap, when set, wraps the rotation the bot uses.
	wrap func(OnCall) OnCall
}

func rotationOf(ids ...string) []oncall.Member {
	var ms []oncall.Member
	for _, id := range ids {
		ms = append(ms, oncall.Member{Platform: oncall.PlatformSlack, UserID: id})
	}
	return ms
}

func newRota(t testing.TB, db *pgxpool.Pool, ids ...string) *oncall.Service {
	t.Helper()
	svc, err := oncall.New(db, oncall.Config{Handover: oncall.Handover{Period: oncall.Daily, Hour: 9}, Rotation: rotationOf(ids...)}, london(t), nil)
	require.NoError(t, err)
	return svc
}

func setupOncall(t *testing.T, o oncallSetup) *oncallFixture {
	t.Helper()
	if o.rotation == nil {
		o.rotation = []string{expert1, expert2}
	}
	pageAfter := cmp.Or(o.pageAfter, 15*time.Minute)
	if pageAfter < 0 {
		pageAfter = 0
	}
	db := pgtest.New(t)
	clock := testclock.New(oncallT0)
	loc := london(t)
	opts := append([]option{func(c *Config) { c.Location, c.Now = loc, clock.Now }}, o.cfg...)
	f := setupWith(t, db, false, nil, casework.Config{Now: clock.Now, PageAfter: pageAfter}, opts...)
	f.slack.SetName(manager, "Max Manager")
	of := &oncallFixture{fixture: f, clock: clock, rota: newRota(t, db, o.rotation...), ctx: context.Background()}
	cur, err := of.rota.Current(of.ctx, clock.Now())
	require.NoError(t, err)
	of.on = cur.Member.UserID
	for _, id := range o.rotation {
		if id != of.on {
			of.next = id
			break
		}
	}
	rota := of.rota
	if o.before != nil {
		if r := o.before(db, of); r != nil {
			rota = r
		}
	}
	var oc OnCall = NewOncallRota(rota)
	if o.wrap != nil {
		oc = o.wrap(oc)
	}
	f.bot.UseOnCall(oc)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, f.bot.Start(ctx))
	t.Cleanup(cancel)
	return of
}

func (f *oncallFixture) name(id string) string {
	n, _ := f.slack.UserName(context.Background(), slackTeam, id)
	return n
}

// sweep runs casework's sweep at the fixture's clock.
func (f *oncallFixture) sweep(t testing.TB) casework.SweepResult {
	t.Helper()
	res, err := f.cw.SweepSLA(f.ctx)
	require.NoError(t, err)
	return res
}

// direct waits for a direct message to user containing want.
func (f *oncallFixture) direct(t testing.TB, user, want string) bottest.Call {
	t.Helper()
	var got bottest.Call
	f.waitFor(t, "a direct message to "+user+" containing "+want, func() bool {
		for _, c := range f.slack.Directs(user) {
			if strings.Contains(plain(c.Message), want) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// mentionsOf lists the users a recorded message mentions in spans.
func mentionsOf(m Message) []string {
	var out []string
	add := func(l Line) {
		for _, s := range l {
			if s.Mention != "" {
				out = append(out, s.Mention)
			}
		}
	}
	for _, l := range m.Text {
		add(l)
	}
	for _, fl := range m.Fields {
		add(fl.Value)
	}
	return out
}

// linkOf is the link of a message's last line.
func linkOf(m Message) string {
	if len(m.Text) == 0 {
		return ""
	}
	l := m.Text[len(m.Text)-1]
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1].Link
}

// everyMention lists every user any recorded call mentioned or notified.
func everyMention(a *bottest.Adapter) []string {
	var out []string
	for _, c := range a.Calls() {
		out = append(out, c.Message.Mentions...)
		out = append(out, mentionsOf(c.Message)...)
	}
	return out
}

// TestNewCaseMentionsOnCallAndDMsHighPriority: the desk card of a new case
// mentions the expert on call; a high-priority case also sends them a
// direct message with the question and a link to the card; a medium one
// does not.
func TestNewCaseMentionsOnCallAndDMsHighPriority(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	ref, _, desk := f.openCase(t, `device ws-017 "beaconing <!channel> every 60 s"`)
	card := desk.Message
	require.Contains(t, plain(card), "On call: "+f.name(f.on))
	require.Equal(t, []string{f.on}, card.Mentions, "the card notifies the on-call expert, and only them")
	require.Equal(t, []string{f.on}, mentionsOf(card))

	dm := f.direct(t, f.on, "New high-priority case "+ref)
	require.Contains(t, plain(dm.Message), "You are on call.")
	require.Contains(t, plain(dm.Message), "beaconing <!channel> every 60 s")
	require.Equal(t, "https://chat.example/"+deskChannel+"/"+desk.Ref.Message, linkOf(dm.Message), "a link to the card itself")
	require.Empty(t, dm.Message.Mentions, "a direct message needs no mention")
	for _, l := range dm.Message.Text {
		for _, s := range l {
			if strings.Contains(s.Text, "<!channel>") {
				require.True(t, s.Untrusted, "the question stays the requester's text: never a mention")
			}
		}
	}

	ref2, _, desk2 := f.openCase(t, "ask is this domain known to you?")
	require.Equal(t, "medium", f.caseView(t, ref2).Priority)
	require.Equal(t, []string{f.on}, desk2.Message.Mentions, "every new card names the on-call expert")
	f.waitFor(t, "the second case's events settled", func() bool { return f.pending(t) == 0 })
	for _, c := range f.slack.Directs(f.on) {
		require.NotContains(t, plain(c.Message), ref2, "no direct message for a medium case")
	}
	require.Empty(t, f.slack.Directs(f.next), "the next expert is not told yet")
}

// TestPageNobodyTookItOnce: a high-priority case still new after
// page_after pages the next expert on the rotation and the managers, once,
// with a link, and says so in the desk thread.
func TestPageNobodyTookItOnce(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	ref, _, desk := f.openCase(t, "device ws-017 beaconing")
	f.direct(t, f.on, "New high-priority case")

	f.clock.Advance(14 * time.Minute)
	require.Zero(t, f.sweep(t).Paged)
	f.clock.Advance(2 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Paged)
	require.Zero(t, f.sweep(t).Paged, "once")

	note := posted(t, f.slack, deskChannel, &desk.Ref, "Paged:")
	require.Contains(t, plain(note.Message), "nobody has taken "+ref+" (high priority) in 16 min")
	require.Contains(t, plain(note.Message), "Paged "+f.name(f.next)+", next on call, and the managers: Max Manager.")
	for _, who := range []string{f.next, manager} {
		dm := f.direct(t, who, ref+" needs an expert")
		require.Contains(t, plain(dm.Message), "has waited 16 min and nobody has taken it")
		require.Equal(t, "https://chat.example/"+deskChannel+"/"+desk.Ref.Message, linkOf(dm.Message))
	}
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Len(t, f.slack.Directs(f.next), 1, "paged once")
	require.Len(t, f.slack.Directs(manager), 1, "paged once")
	require.Len(t, f.slack.Directs(f.on), 1, "the on-call expert was told when the case opened, not again")

	// Taken before the sweep: no page.
	ref2, _, _ := f.openCase(t, "device ws-018 beaconing")
	f.run(t, Slack, f.on, deskChannel, "take "+ref2)
	f.clock.Advance(20 * time.Minute)
	require.Zero(t, f.sweep(t).Paged, ref2+" was taken")
}

// TestPageAfterAHandoverGoesToTheNewHolder: a high-priority case opens five
// minutes before the daily 09:00 hand-over; the card and message go to the
// expert then on call. When it is paged, after the hand-over, the expert
// now holding the pager is paged: they were never told. It used to page
// the next expert after them, here the one told already, so the holder
// heard nothing until the SLA warning.
func TestPageAfterAHandoverGoesToTheNewHolder(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	f.clock.Set(time.Date(2026, 3, 4, 8, 55, 0, 0, time.UTC)) // London is UTC in March before the 29th
	ref, _, desk := f.openCase(t, "device ws-020 beaconing")
	f.direct(t, f.on, "New high-priority case")

	f.clock.Advance(16 * time.Minute)
	cur, err := f.rota.Current(f.ctx, f.clock.Now())
	require.NoError(t, err)
	require.Equal(t, f.next, cur.Member.UserID, "the pager changed hands at 09:00")
	require.Equal(t, 1, f.sweep(t).Paged)

	note := posted(t, f.slack, deskChannel, &desk.Ref, "Paged:")
	require.Contains(t, plain(note.Message), "Paged "+f.name(f.next)+", on call now, and the managers: Max Manager.")
	f.direct(t, f.next, ref+" needs an expert")
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Len(t, f.slack.Directs(f.on), 1, "the expert told when it opened is not paged again")
	require.Len(t, f.slack.Directs(f.next), 1, "paged once")
}

// TestOpeningDeliveredAfterAHandoverTellsWhoWasOnCall: a case opened
// just before the hand-over whose announcement went out after it (a retry,
// a backlog) told the new holder "You are on call"; its page then paged
// them again as the one not told, and the next expert heard nothing. The
// expert on call when the case was opened is told, as the page assumes
// (from a review).
func TestOpeningDeliveredAfterAHandoverTellsWhoWasOnCall(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	f.clock.Set(time.Date(2026, 3, 4, 8, 58, 0, 0, time.UTC))
	release := f.slack.HoldPosts(contosoSOC) // the receipt, the announcement's first part
	t.Cleanup(release)
	_, m := f.run(t, Slack, analyst, contosoSOC, "device ws-022 beaconing")
	require.Contains(t, plain(m), "Opened EOD-")
	require.Eventually(t, func() bool { // the database signals nothing: look every 10 ms
		var n int
		return f.db.QueryRow(context.Background(), `SELECT count(*) FROM bot_attempt`).Scan(&n) == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond, "the first attempt under way")
	f.clock.Set(time.Date(2026, 3, 4, 9, 1, 0, 0, time.UTC)) // the pager changed hands at 09:00
	f.slack.Fail(bottest.ServerError())                      // that attempt fails; the next one runs after the hand-over
	release()
	f.direct(t, f.on, "New high-priority case")
	f.waitFor(t, "delivered", func() bool { return f.pending(t) == 0 })
	require.Empty(t, f.slack.Directs(f.next), "the new holder was not on call when it opened")
}

// TestAssignDMsAssigneeAndSaysWhoAssignedWhom: a manager's assign is
// announced as who assigned whom in both threads (issue 14.2), and the
// assignee gets a direct message with the question and a link; taking a
// case sends nobody a message.
func TestAssignDMsAssigneeAndSaysWhoAssignedWhom(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	ref, receipt, desk := f.openCase(t, "ask did this account log in from Lagos?")
	_, m := f.run(t, Slack, manager, deskChannel, "assign "+ref+" <@"+expert2+"|ed>")
	require.Contains(t, plain(m), ref+" is now with Ed Expert")

	want := "Max Manager assigned " + ref + " to Ed Expert (threat expert)."
	d := posted(t, f.slack, deskChannel, &desk.Ref, want)
	posted(t, f.slack, contosoSOC, &receipt.Ref, want)
	require.NotContains(t, plain(d.Message), "took", "not announced as a take")

	dm := f.direct(t, expert2, "Max Manager assigned you "+ref)
	require.Contains(t, plain(dm.Message), "did this account log in from Lagos?")
	require.Equal(t, "https://chat.example/"+deskChannel+"/"+desk.Ref.Message, linkOf(dm.Message))

	// A take tells nobody privately.
	ref2, _, desk2 := f.openCase(t, "ask another one")
	f.run(t, Slack, expert1, deskChannel, "take "+ref2)
	posted(t, f.slack, deskChannel, &desk2.Ref, "took "+ref2)
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	for _, c := range f.slack.Directs(expert1) {
		require.NotContains(t, plain(c.Message), "assigned you")
	}
}

// TestWaitingOnRequesterMentionsAndRemindsOnce: asking for more information
// mentions the requester in their thread (not on the desk); after
// remind_after they are reminded once, with a mention, and the SLA clock
// stays paused.
func TestWaitingOnRequesterMentionsAndRemindsOnce(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1})
	ref, receipt, desk := f.openCase(t, "ask what is this scheduled task?")
	f.run(t, Slack, expert1, deskChannel, "take "+ref)
	f.run(t, Slack, expert1, deskChannel, `more-info `+ref+` "the task's XML, please"`)

	r := posted(t, f.slack, contosoSOC, &receipt.Ref, "More information needed")
	require.Equal(t, []string{analyst}, r.Message.Mentions, "the requester is mentioned in their thread")
	require.Equal(t, analyst, r.Message.Text[0][0].Mention, "first thing in the note")
	d := posted(t, f.slack, deskChannel, &desk.Ref, "More information needed")
	require.Empty(t, d.Message.Mentions, "nobody is pinged on the desk")

	f.clock.Advance(23 * time.Hour)
	require.Zero(t, f.sweep(t).Reminded)
	f.clock.Advance(2 * time.Hour)
	require.Equal(t, 1, f.sweep(t).Reminded)
	require.Zero(t, f.sweep(t).Reminded, "once")

	rem := posted(t, f.slack, contosoSOC, &receipt.Ref, "still waiting for more information")
	require.Equal(t, []string{analyst}, rem.Message.Mentions)
	require.Contains(t, plain(rem.Message), "asked 25 h ago (Tue 3 Mar 10:00 Europe/London).")
	require.Contains(t, plain(rem.Message), "the SLA clock stays paused")
	posted(t, f.slack, deskChannel, &desk.Ref, "Reminded the requester of "+ref+": waiting for more information for 25 h.")
	require.Equal(t, casework.StatusMoreInfoNeeded, f.caseStatus(t, ref))
	sla, err := f.cw.SLA(f.ctx, casework.AllOrgs(), ref)
	require.NoError(t, err)
	require.True(t, sla.Paused)
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Equal(t, 1, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
		return strings.Contains(plain(c.Message), "still waiting for more information")
	}), "one reminder")
}

// TestSLAWarningMentionsAssigneeOrOnCall: the warning mentions the expert
// on call while nobody has the case, and the assignee once someone has it;
// durations are in words and times in the configured zone, named (issue
// 14.6).
func TestSLAWarningMentionsAssigneeOrOnCall(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1})
	ref, _, desk := f.openCase(t, "device ws-017 beaconing")
	ref2, _, desk2 := f.openCase(t, "device ws-018 beaconing")
	f.run(t, Slack, f.next, deskChannel, "take "+ref2)
	posted(t, f.slack, deskChannel, &desk2.Ref, "took "+ref2)

	f.clock.Advance(46 * time.Minute)
	require.Equal(t, 2, f.sweep(t).Warnings)
	w := posted(t, f.slack, deskChannel, &desk.Ref, "SLA warning:")
	got := plain(w.Message)
	require.Contains(t, got, ref+": the first response is due in 14 min, at Tue 3 Mar 11:00 Europe/London (target 1 h, high priority).")
	require.Contains(t, got, f.name(f.on)+" is on call, and nobody has taken the case.")
	require.Equal(t, []string{f.on}, w.Message.Mentions)
	require.NotContains(t, got, "0s", "no Go durations")
	var at Span
	for _, s := range w.Message.Text[0] {
		if !s.Time.IsZero() {
			at = s
		}
	}
	require.True(t, oncallT0.Add(time.Hour).Equal(at.Time), "the due time is a time span (Slack shows it in each reader's zone)")

	w2 := posted(t, f.slack, deskChannel, &desk2.Ref, "SLA warning:")
	require.Contains(t, plain(w2.Message), f.name(f.next)+" has the case.")
	require.Equal(t, []string{f.next}, w2.Message.Mentions, "the assignee, not the on-call expert")
}

// TestSLAWarningOfACaseHeldByAFormerExpert: a case held by someone
// removed from the experts since is worked by no one; its warning said
// "Nobody has the case." and mentioned nobody. It names the holder, says
// they are no longer an expert, and tells the expert on call to take it
// over (from a review).
func TestSLAWarningOfACaseHeldByAFormerExpert(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1})
	ref, _, desk := f.openCase(t, "device ws-019 beaconing")
	f.run(t, Slack, f.next, deskChannel, "take "+ref)
	posted(t, f.slack, deskChannel, &desk.Ref, "took "+ref)
	cfg := testConfig()
	cfg.Experts.Slack = []string{f.on} // f.next left the experts
	require.NoError(t, f.bot.SetConfig(cfg))

	f.clock.Advance(46 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Warnings)
	w := posted(t, f.slack, deskChannel, &desk.Ref, "SLA warning:")
	require.Contains(t, plain(w.Message), f.name(f.next)+" has the case but is no longer a threat expert. "+f.name(f.on)+
		" is on call: take it over with /experts assign "+ref+" @you.")
	require.Equal(t, []string{f.on}, w.Message.Mentions)
}

// TestSLAWarningOfAPausedClock: a warning found while the case waits on
// the requester (the clock passed its warning point just before the
// pause) says what is left and that the clock is paused; it gave a due
// time as if the clock ran (from a review).
func TestSLAWarningOfAPausedClock(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1})
	ref, receipt, desk := f.openCase(t, "device ws-020 beaconing")
	f.run(t, Slack, f.next, deskChannel, "take "+ref)
	f.reply(Slack, f.next, desk.Ref, "looking") // the first response
	posted(t, f.slack, contosoSOC, &receipt.Ref, "looking")
	f.clock.Advance(19 * time.Hour) // past 18 h, the conclusion's warning point (24 h target)
	f.run(t, Slack, f.next, deskChannel, `more-info `+ref+` "the process tree"`)
	f.clock.Advance(time.Hour)
	require.Equal(t, 1, f.sweep(t).Warnings)
	w := posted(t, f.slack, deskChannel, &desk.Ref, "SLA warning:")
	require.Contains(t, plain(w.Message), ref+": the conclusion has 5 h left (target 24 h, high priority); its clock is paused while the case waits on the requester")
	require.NotContains(t, plain(w.Message), "is due")
	require.Equal(t, "SLA warning: "+ref+" conclusion: 5 h left, clock paused", w.Message.Fallback, "the notification's text too")
}

// TestSLABreachDMsManagers: a breach sends each manager a direct message
// with a link to the card, besides the desk thread note.
func TestSLABreachDMsManagers(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1, cfg: []option{func(c *Config) { c.Managers.Discord = []string{"1000000000000000055"} }}})
	f.discord.SetName("1000000000000000055", "Dee Manager")
	ref, _, desk := f.openCase(t, "device ws-017 beaconing")
	f.clock.Advance(61 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Breaches)
	n := posted(t, f.slack, deskChannel, &desk.Ref, "SLA breached:")
	require.Contains(t, plain(n.Message), ref+": the first response was due at Tue 3 Mar 11:00 Europe/London (target 1 h, high priority). Escalated to the managers: Max Manager and Dee Manager.")
	dm := f.direct(t, manager, "SLA breached: ")
	require.Contains(t, plain(dm.Message), "Contoso. Nobody has taken it.")
	require.Equal(t, "https://chat.example/"+deskChannel+"/"+desk.Ref.Message, linkOf(dm.Message))
	var dd []bottest.Call
	f.waitFor(t, "the Discord manager's direct message", func() bool {
		dd = f.discord.Directs("1000000000000000055")
		return len(dd) == 1
	})
	require.Contains(t, plain(dd[0].Message), "SLA breached: "+ref)
}

// TestOncallCommandAndTake: /experts oncall shows who holds the pager, until
// when and who is next; /experts oncall take is announced in the desk; who
// may not is told why.
func TestOncallCommandAndTake(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	handover := time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)

	_, m := f.run(t, Slack, manager, deskChannel, "oncall")
	got := plain(m)
	require.Contains(t, got, "Now: "+f.name(f.on)+"\n")
	require.Contains(t, got, "Until: Wed 4 Mar 09:00 Europe/London (in 23 h)")
	require.Contains(t, got, "Next: "+f.name(f.next))

	_, m = f.run(t, Slack, f.next, deskChannel, "oncall take")
	require.Contains(t, plain(m), "You hold the pager until Wed 4 Mar 09:00 Europe/London.")
	a := posted(t, f.slack, deskChannel, nil, "On call: ")
	require.Contains(t, plain(a.Message), f.name(f.next)+" took the pager until Wed 4 Mar 09:00 Europe/London, from "+f.name(f.on)+".")
	require.Empty(t, a.Message.Mentions, "an announcement pings nobody")
	var until Span
	for _, s := range a.Message.Text[0] {
		if !s.Time.IsZero() {
			until = s
		}
	}
	require.True(t, handover.Equal(until.Time))

	_, m = f.run(t, Slack, expert1, deskChannel, "oncall")
	require.Contains(t, plain(m), "Now: "+f.name(f.next)+" (took the pager from "+f.name(f.on)+")")

	_, m = f.run(t, Slack, f.next, deskChannel, "oncall take")
	require.Contains(t, plain(m), "You already hold the pager, until Wed 4 Mar 09:00 Europe/London.")
	_, m = f.run(t, Discord, discordExpert, fabSOC, "oncall take")
	require.Contains(t, plain(m), "You are not on the on-call rotation")
	_, m = f.run(t, Slack, analyst, contosoSOC, "oncall")
	require.Contains(t, plain(m), "Only threat experts and managers of the expert service can see who is on call")
	_, m = f.run(t, Slack, manager, deskChannel, "oncall take")
	require.Contains(t, plain(m), "Only threat experts can take the pager")
	_, m = f.run(t, Slack, expert1, deskChannel, "oncall sleep")
	require.Contains(t, plain(m), `"sleep" is not an oncall action`)
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Equal(t, 1, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool { return strings.HasPrefix(plain(c.Message), "On call: ") }),
		"the refused take announced nothing")

	// The next case names the expert who took the pager.
	_, _, desk := f.openCase(t, "ask who has the pager?")
	require.Equal(t, []string{f.next}, desk.Message.Mentions)
}

// TestRemovedFromRotationNeverPinged: an event rendered after someone left
// the rotation (and a manager left the config) names and pings only who is
// there now, even though the one who left had taken the pager.
func TestRemovedFromRotationNeverPinged(t *testing.T) {
	t.Parallel()
	var ref string
	f := setupOncall(t, oncallSetup{
		cfg: []option{func(c *Config) { c.Managers = UserIDs{} }}, // the manager left the config
		before: func(db *pgxpool.Pool, f *oncallFixture) *oncall.Service {
			// Eve takes the pager (or holds it already) while on the rotation.
			if _, err := f.rota.Take(f.ctx, oncall.Member{Platform: "slack", UserID: expert1}, f.clock.Now()); err != nil {
				var already *oncall.AlreadyOnCallError
				require.ErrorAs(t, err, &already)
			}
			// A high-priority case opens while she holds it...
			c, _, err := f.cw.Open(f.ctx, casework.OpenRequest{Key: "k-removed", Org: "contoso",
				Subject:   casework.Subject{Kind: casework.SubjectDevice, ID: "ws-017"},
				Question:  "beaconing",
				Requester: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: analyst, DisplayName: "Ana Lyst"},
				Origin:    casework.Place{Platform: "slack", Workspace: slackTeam, Channel: contosoSOC}})
			require.NoError(t, err)
			ref = c.Ref
			// ...and is delivered after she left the rotation.
			return newRota(t, db, expert2)
		},
	})
	desk := posted(t, f.slack, deskChannel, nil, ref+" · Contoso")
	require.Equal(t, []string{expert2}, desk.Message.Mentions)
	f.direct(t, expert2, "New high-priority case "+ref)

	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Paged)
	n := posted(t, f.slack, deskChannel, &desk.Ref, "Paged:")
	require.Contains(t, plain(n.Message), "Nobody is configured to page")
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })

	require.NotContains(t, everyMention(f.slack), expert1, "the expert who left is never pinged")
	require.Empty(t, f.slack.Directs(expert1))
	require.Empty(t, f.slack.Directs(manager), "nor the manager who left")
	require.Empty(t, f.slack.Find(bottest.OpOpenDirect, func(c bottest.Call) bool { return c.UserID == expert1 || c.UserID == manager }))
}

// TestUnreachableDirectMessageSkippedAndCounted: a person a direct message
// cannot reach is logged, counted and skipped; the rest of the event is
// delivered and nothing is dead.
func TestUnreachableDirectMessageSkippedAndCounted(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{before: func(_ *pgxpool.Pool, f *oncallFixture) *oncall.Service {
		f.slack.Unreachable(f.on)
		return nil
	}})
	ref, _, desk := f.openCase(t, "device ws-017 beaconing")
	require.Equal(t, []string{f.on}, desk.Message.Mentions, "the card still names them")
	f.waitFor(t, "the direct message counted as unreachable", func() bool { return directMessages(f.fixture, "unreachable") == 1 })
	require.Empty(t, f.slack.Directs(f.on))
	require.Zero(t, deadRows(t, f.db), "nothing is dead")
	require.Zero(t, deliveries(f.fixture, "dead"))

	// The page still reaches whoever can be reached.
	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Paged)
	f.direct(t, manager, ref+" needs an expert")
	f.direct(t, f.next, ref+" needs an expert")
	f.waitFor(t, "both pages counted as sent", func() bool { return directMessages(f.fixture, "sent") == 2 })
	require.Equal(t, 1.0, directMessages(f.fixture, "unreachable"), "the on-call expert is skipped once, not again")
}

func directMessages(f *fixture, result string) float64 {
	mfs, _ := f.reg.Gather()
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

func deadRows(t testing.TB, db *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`).Scan(&n))
	return n
}

// pending counts outbox rows not yet settled.
func (f *fixture) pending(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n))
	return n
}

func (f *fixture) caseView(t testing.TB, ref string) CaseView {
	t.Helper()
	c, err := NewCaseworkCases(f.cw).Get(context.Background(), Scope{All: true}, ref)
	require.NoError(t, err)
	return c
}

// TestDurationsInWords: durations read as words (issue 14.6).
func TestDurationsInWords(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		20 * time.Second:              "under a minute",
		15 * time.Minute:              "15 min",
		15*time.Minute - time.Second:  "15 min",
		time.Hour:                     "1 h",
		65 * time.Minute:              "1 h 5 min",
		47*time.Hour + 59*time.Minute: "47 h 59 min",
		48 * time.Hour:                "2 d",
		51 * time.Hour:                "2 d 3 h",
	} {
		require.Equal(t, want, Duration(d), d.String())
	}
	loc := london(t)
	require.Equal(t, "Mon 30 Mar 10:00 Europe/London", Zoned(time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC), loc), "summer time")
	require.Equal(t, "Tue 3 Mar 10:00 UTC", Zoned(oncallT0, nil))
}

// TestPageGoesToWhoWasNextWhenDecided: a page whose delivery is tried again
// after the pager changed hands still pages the expert who was next when
// the sweep decided to page. Who to page used to be looked up again on every
// attempt: a retry after a hand-over paged a second expert.
func TestPageGoesToWhoWasNextWhenDecided(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	ref, _, _ := f.openCase(t, "device ws-019 beaconing")
	f.direct(t, f.on, "New high-priority case")
	f.waitFor(t, "delivered", func() bool { return f.pending(t) == 0 })

	// The managers' message is on its way when the pager changes hands;
	// then it fails, and the page is tried again.
	release := f.slack.HoldPosts(bottest.DirectChannel(manager))
	t.Cleanup(release)
	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Paged)
	f.direct(t, f.next, ref+" needs an expert")
	f.clock.Advance(23 * time.Hour)
	cur, err := f.rota.Current(f.ctx, f.clock.Now())
	require.NoError(t, err)
	require.Equal(t, f.next, cur.Member.UserID, "the pager changed hands")
	f.slack.Fail(bottest.ServerError())
	release()
	f.direct(t, manager, ref+" needs an expert")
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Len(t, f.slack.Directs(f.next), 1, "paged once")
	for _, c := range f.slack.Directs(f.on) {
		require.NotContains(t, plain(c.Message), "needs an expert", "nobody else paged")
	}
}

// TestLateReminderOfAnEarlierWait: a reminder held up in delivery (here its
// post fails and is tried again) after the requester answered and the expert
// asked again is dropped: it was about the earlier wait, and the new wait
// gets its own reminder in time. It used to land in the new wait with the
// earlier wait's times.
func TestLateReminderOfAnEarlierWait(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{pageAfter: -1})
	ref, receipt, _ := f.openCase(t, "ask what is this scheduled task?")
	f.run(t, Slack, expert1, deskChannel, "take "+ref)
	f.run(t, Slack, expert1, deskChannel, `more-info `+ref+` "the task's XML, please"`)
	posted(t, f.slack, contosoSOC, &receipt.Ref, "More information needed")
	f.waitFor(t, "delivered", func() bool { return f.pending(t) == 0 })

	release := f.slack.HoldPosts(contosoSOC)
	t.Cleanup(release)
	f.clock.Advance(25 * time.Hour)
	require.Equal(t, 1, f.sweep(t).Reminded)
	f.reply(Slack, analyst, receipt.Ref, "here is the XML")
	f.waitFor(t, "the answer resumed the case", func() bool { return f.caseStatus(t, ref) == casework.StatusInProgress })
	f.run(t, Slack, expert1, deskChannel, `more-info `+ref+` "and the binary's path"`)
	require.Equal(t, casework.StatusMoreInfoNeeded, f.caseStatus(t, ref))
	f.slack.Fail(bottest.ServerError())
	release()
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Zero(t, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
		return strings.Contains(plain(c.Message), "still waiting for more information")
	}), "no reminder of the earlier wait in the new one")
}

// nextIs is a rotation whose next expert can be changed, as a reload of
// the config changes it.
type nextIs struct {
	OnCall
	mu   sync.Mutex
	next *OnCallMember
}

func (n *nextIs) WhoToPage(ctx context.Context, opened, now time.Time) (OnCallPage, bool, error) {
	n.mu.Lock()
	next := n.next
	n.mu.Unlock()
	if next != nil {
		return OnCallPage{Member: *next}, true, nil
	}
	return n.OnCall.WhoToPage(ctx, opened, now)
}

// pageHeld opens a high-priority case nobody takes and lets its page be
// decided, the desk told whom it pages, while the direct message to that
// expert (f.next) waits for release.
func (f *oncallFixture) pageHeld(t *testing.T, question string) (ref string, desk bottest.Call, release func()) {
	t.Helper()
	ref, _, desk = f.openCase(t, question)
	f.direct(t, f.on, "New high-priority case")
	f.waitFor(t, "delivered", func() bool { return f.pending(t) == 0 })
	release = f.slack.HoldPosts(bottest.DirectChannel(f.next))
	t.Cleanup(release)
	f.clock.Advance(16 * time.Minute)
	require.Equal(t, 1, f.sweep(t).Paged)
	posted(t, f.slack, deskChannel, &desk.Ref, "Paged "+f.name(f.next)+", next on call")
	return ref, desk, release
}

// TestPageRetryAfterAReloadPagesTheSameExpert: a page whose direct message
// fails after the desk was told whom it paged goes, when tried again, to
// that expert, even when a reload changed who is next meanwhile. It paged
// a second expert, and the desk thread named only the first.
func TestPageRetryAfterAReloadPagesTheSameExpert(t *testing.T) {
	t.Parallel()
	rota := &nextIs{}
	f := setupOncall(t, oncallSetup{wrap: func(o OnCall) OnCall { rota.OnCall = o; return rota }})
	ref, _, release := f.pageHeld(t, "device ws-019 beaconing")
	rota.mu.Lock()
	rota.next = &OnCallMember{Platform: Slack, ID: f.on} // the reload
	rota.mu.Unlock()
	f.slack.Fail(bottest.ServerError())
	release()
	f.direct(t, f.next, ref+" needs an expert")
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	require.Len(t, f.slack.Directs(f.next), 1, "paged once")
	for _, c := range f.slack.Directs(f.on) {
		require.NotContains(t, plain(c.Message), "needs an expert", "nobody else paged")
	}
}

// TestPageRetryAfterTheExpertLeftPostsOneNote: a page retried after the
// expert it named was removed from the experts pages no expert, and its
// desk note stays the one posted. The retry's note had another key, and
// a second "Paged:" note went to the desk thread (from a review).
func TestPageRetryAfterTheExpertLeftPostsOneNote(t *testing.T) {
	t.Parallel()
	f := setupOncall(t, oncallSetup{})
	_, desk, release := f.pageHeld(t, "device ws-021 beaconing")
	cfg := testConfig()
	cfg.Experts.Slack = []string{f.on} // f.next left the experts
	require.NoError(t, f.bot.SetConfig(cfg))
	f.slack.Fail(bottest.ServerError())
	release()
	f.waitFor(t, "everything delivered", func() bool { return f.pending(t) == 0 })
	notes := f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Thread != nil && c.Dest.Thread.Message == desk.Ref.Message && strings.Contains(plain(c.Message), "Paged:")
	})
	require.Equal(t, 1, notes, "one desk note for one page")
}
