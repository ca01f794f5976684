package bot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// TestCommands runs every command end to end (bot, casework, Postgres):
// its happy path and its answer to bad input. Each case starts from one
// open case, EOD-1, asked by the Contoso analyst.
func TestCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		user    string
		channel string
		text    string
		before  []string // commands run first, by expert1 on the desk
		want    string   // part of the answer
		form    string   // the ack opens this form instead
		private bool
	}{
		{name: "ask with text", user: analyst, channel: contosoSOC, text: `ask "seen APT29 lately?"`, want: "Opened EOD-2"},
		{name: "ask without text opens a form", user: analyst, channel: contosoSOC, text: "ask", form: "ask"},
		{name: "alert", user: analyst, channel: contosoSOC, text: "alert " + alertID + " why", want: "Opened EOD-2"},
		{name: "alert bad id", user: analyst, channel: contosoSOC, text: "alert ???", want: "an alert id looks like"},
		{name: "device by name", user: analyst, channel: contosoSOC, text: "device ws-017 compromised?", want: "Opened EOD-2"},
		{name: "device bad", user: analyst, channel: contosoSOC, text: "device -x-", want: "a host name"},
		{name: "file", user: analyst, channel: contosoSOC, text: "file 4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6", want: "Opened EOD-2"},
		{name: "file bad", user: analyst, channel: contosoSOC, text: "file 123", want: "SHA-256 (64 hex digits)"},
		{name: "incident", user: analyst, channel: contosoSOC, text: "incident 28282 scope?", want: "Opened EOD-2"},
		{name: "incident bad", user: analyst, channel: contosoSOC, text: "incident #$%", want: "an incident id is"},
		{name: "status", user: analyst, channel: contosoSOC, text: "status EOD-1", want: "Last message: no messages yet"},
		{name: "status bad", user: analyst, channel: contosoSOC, text: "status one", want: "a case reference looks like EOD-1042"},
		{name: "status missing", user: analyst, channel: contosoSOC, text: "status EOD-99", want: "Not found"},
		{name: "status by a manager", user: manager, channel: deskChannel, text: "status EOD-1", want: "Status: New"},
		{name: "cases", user: analyst, channel: contosoSOC, text: "cases", want: "EOD-1 New"},
		{name: "cases bad", user: analyst, channel: contosoSOC, text: "cases soon", want: "open, mine, breaching or all"},
		{name: "cases by org for a manager", user: manager, channel: deskChannel, text: "cases all contoso", want: "All cases · Contoso"},
		{name: "cases by org refused to a member", user: analyst, channel: contosoSOC, text: "cases all fabrikam", want: `"fabrikam" is not a list: the list is one of`},
		{name: "cases by unknown org, member", user: analyst, channel: contosoSOC, text: "cases all initech", want: `"initech" is not a list: the list is one of`},
		{name: "cases mine", user: expert1, channel: deskChannel, text: "cases mine", before: []string{"take EOD-1"}, want: "EOD-1 In progress"},
		{name: "cases breaching", user: manager, channel: deskChannel, text: "cases breaching", want: "No cases."},
		{name: "credits", user: analyst, channel: contosoSOC, text: "credits", want: "Balance: 9"},
		{name: "credits for a manager", user: manager, channel: deskChannel, text: "credits fabrikam", want: "Balance: 10"},
		{name: "credits bad org", user: manager, channel: deskChannel, text: "credits initech", want: `"initech" is not an org`},
		{name: "help for a member", user: analyst, channel: contosoSOC, text: "help", want: "/experts alert"},
		{name: "help for an expert", user: expert1, channel: deskChannel, text: "help", want: "/experts take"},
		{name: "help for a stranger", user: "U0NOBODY", channel: strangerChan, text: "help", want: "not connected to an organisation"},
		{name: "conclude by a member", user: analyst, channel: contosoSOC, text: "conclude EOD-1 all good",
			want: "Only threat experts can ask for more information, a sample or more time, or conclude a case. To reach the experts about a case, reply in its thread."},
		{name: "take", user: expert1, channel: deskChannel, text: "take EOD-1", want: "You have EOD-1"},
		{name: "take the most urgent new", user: expert1, channel: deskChannel, text: "take", want: "You have EOD-1"},
		{name: "take bad", user: expert1, channel: deskChannel, text: "take x", want: "a case reference looks like"},
		{name: "take taken", user: expert2, channel: deskChannel, text: "take EOD-1", before: []string{"take EOD-1"}, want: "already taken by Eve Expert"},
		{name: "assign", user: expert1, channel: deskChannel, text: "assign EOD-1 <@U0EXPERT2|ed>", want: "EOD-1 is now with Ed Expert"},
		{name: "assign to a non-expert", user: expert1, channel: deskChannel, text: "assign EOD-1 U0ANALYST1", want: "is not a threat expert"},
		{name: "assign bad", user: manager, channel: deskChannel, text: "assign EOD-1", want: "Usage: /experts assign"},
		{name: "more-info", user: expert1, channel: deskChannel, text: `more-info EOD-1 "the tree"`, before: []string{"take EOD-1"}, want: "more information needed"},
		{name: "more-info bad", user: expert1, channel: deskChannel, text: "more-info", want: "Which case?"},
		{name: "more-info refused by state", user: expert1, channel: deskChannel, text: `more-info EOD-1 "x"`, want: "EOD-1 has not been taken yet; an expert must take it first"},
		{name: "sample", user: expert1, channel: deskChannel, text: "sample EOD-1 the dll", before: []string{"take EOD-1"}, want: "file sample needed"},
		{name: "sample bad", user: expert1, channel: deskChannel, text: "sample dll", want: "is not a case reference"},
		{name: "more-time", user: expert1, channel: deskChannel, text: "more-time EOD-1 sandbox", before: []string{"take EOD-1"}, want: "needs more time"},
		{name: "more-time bad", user: expert1, channel: deskChannel, text: "more-time", want: "Which case?"},
		{name: "conclude", user: expert1, channel: deskChannel, text: `conclude EOD-1 "benign, it is the patch tool"`, before: []string{"take EOD-1"}, want: "concluded"},
		{name: "resolve is conclude", user: expert1, channel: deskChannel, text: `resolve EOD-1 "benign, it is the patch tool"`, before: []string{"take EOD-1"}, want: "concluded"},
		{name: "conclude without summary opens a form", user: expert1, channel: deskChannel, text: "conclude EOD-1", form: "conclude"},
		{name: "conclude bad", user: expert1, channel: deskChannel, text: "conclude 1x", want: "is not a case reference"},
		{name: "note", user: expert1, channel: deskChannel, text: "note EOD-1 smells like Cobalt Strike", want: "Internal note added"},
		{name: "note bad", user: expert1, channel: deskChannel, text: "note EOD-1", want: "A note needs its text"},
		{name: "sample-notification", user: admin, channel: contosoSOC, text: "sample-notification", want: "test notification for Contoso"},
		{name: "sample-notification needs an org channel", user: admin, channel: strangerChan, text: "sample-notification", want: "in the org channel"},
		{name: "sample-notification refused to a member", user: analyst, channel: contosoSOC, text: "sample-notification", want: "Only threatdesk admins can send a test notification."},
		{name: "take refused to a member", user: analyst, channel: contosoSOC, text: "take EOD-1", want: "Only threat experts can take a case. To reach the experts about a case, reply in its thread."},
		{name: "open refused on the desk", user: expert1, channel: deskChannel, text: "ask hello there", want: "not connected to an organisation"},
		{name: "unknown", user: analyst, channel: contosoSOC, text: "frobnicate", want: "There is no /experts frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			f.openCase(t, `ask "first question"`)
			for _, b := range tt.before {
				_, m := f.run(t, Slack, expert1, deskChannel, b)
				require.NotContains(t, plain(m), "went wrong", b)
			}
			ack, m := f.run(t, Slack, tt.user, tt.channel, tt.text)
			if tt.form != "" {
				require.NotNil(t, ack.Form, "a form")
				require.Equal(t, tt.form, ack.Form.ID)
				return
			}
			require.Nil(t, ack.Form)
			require.True(t, ack.Private, "answers go privately to the one who asked")
			require.Contains(t, plain(m), tt.want)
		})
	}
}

// TestTenantIsolation: a Contoso analyst learns nothing of a Fabrikam case,
// whichever way they ask; the answer is the same as for a missing case.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, m := f.run(t, Discord, fabAnalyst, fabSOC, `ask "fabrikam secret question"`)
	require.Contains(t, plain(m), "Opened EOD-1")
	receipt := posted(t, f.discord, fabSOC, nil, "EOD-1 ·")
	f.anchored(t, "EOD-1")

	_, missing := f.run(t, Slack, analyst, contosoSOC, "status EOD-404")
	_, other := f.run(t, Slack, analyst, contosoSOC, "status EOD-1")
	require.Equal(t, plain(missing), plain(other), "another org's case answers exactly like a missing one")
	require.NotContains(t, plain(other), "fabrikam secret")

	_, list := f.run(t, Slack, analyst, contosoSOC, "cases all")
	require.NotContains(t, plain(list), "EOD-1")

	// A Contoso analyst pressing Close with a Fabrikam case's id.
	_, r := f.press(t, Slack, analyst, ActClose, "EOD-1", Ref{Platform: Slack, Channel: contosoSOC, Message: "x"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Not found")
	require.Equal(t, casework.StatusNew, f.caseStatus(t, "EOD-1"))

	// A Contoso analyst replying in Fabrikam's thread (on another platform,
	// so not even a member there) is not relayed.
	f.bot.HandleReply(context.Background(), Reply{Parent: receipt.Ref, Message: Ref{Platform: Discord, Channel: fabSOC, Message: "zz"},
		Author: User{Platform: Discord, Workspace: "1000000000000000999", ID: "1000000000000000666"}, Text: "let me in"})
	_, st := f.run(t, Discord, fabAnalyst, fabSOC, "status EOD-1")
	require.Contains(t, plain(st), "no messages yet")

	// Fabrikam sees it.
	require.Contains(t, plain(st), "fabrikam secret question")
}

// TestTamperedFormStateCannotChooseTheOrg: the channel a form's state
// carries may come back from a client; the channel the platform reports
// decides the org, so a Contoso analyst cannot open (and pay for) a case as
// Northwind, nor post in Northwind's channel.
func TestTamperedFormStateCannotChooseTheOrg(t *testing.T) {
	t.Parallel()
	const northwindSOC = "C0NORTHWIND"
	f := setup(t, func(c *Config) {
		c.Orgs = append(c.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: slackTeam, Channels: []string{northwindSOC}}})
	})
	r := bottest.NewResponder()
	ack := f.bot.HandleSubmit(context.Background(), Submission{
		User: f.user(Slack, analyst), FormID: "ask", State: "c=" + northwindSOC, Channel: contosoSOC,
		Values: map[string]string{"question": "whose case is this?"}, Key: "tampered-1", Respond: r,
	})
	require.Empty(t, ack.Errors)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Opened EOD-1")
	c, err := f.cw.Get(context.Background(), casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	require.Equal(t, "contoso", c.Org)
	posted(t, f.slack, contosoSOC, nil, "EOD-1 ·")
	require.Zero(t, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == northwindSOC }))
}

// TestStaleButton: a button on an old card cannot do what the current
// state forbids, nor what the presser's role forbids.
func TestStaleButton(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "stale?"`)
	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	// The old card still shows Take; a second expert presses it.
	_, r = f.press(t, Slack, expert2, ActTake, ref, desk.Ref)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "already taken by Eve Expert")
	// Reopen on a case that is in progress.
	_, r = f.press(t, Slack, analyst, ActReopen, ref, receipt.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.NotContains(t, plain(got.Message), "is now")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref))
	// An analyst pressing the desk card's Take (a forwarded card).
	ack, _ := f.press(t, Slack, analyst, ActTake, ref, receipt.Ref)
	require.NotNil(t, ack.Message)
	require.Contains(t, plain(*ack.Message), "Only threat experts can take a case")
	// A conclude form submitted after someone else concluded.
	_, m := f.run(t, Slack, expert1, deskChannel, `conclude `+ref+` "done and dusted"`)
	require.Contains(t, plain(m), "concluded")
	sa, r := f.submit(t, Slack, expert1, Form{ID: "conclude", State: "ref=" + ref}, map[string]string{"summary": "a second conclusion"})
	require.Empty(t, sa.Errors)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.NotContains(t, plain(got.Message), "is now")
	// An empty summary keeps the form open with the error.
	sa, _ = f.submit(t, Slack, expert1, Form{ID: "conclude", State: "ref=" + ref}, map[string]string{"summary": "short"})
	require.Contains(t, sa.Errors, "summary")
}

// TestFormsAndButtons: the forms opened by buttons, and what their
// submissions do.
func TestFormsAndButtons(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "forms?"`)
	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, _ = r.Wait(tenSeconds)

	ack, _ := f.press(t, Slack, expert1, ActMoreInfo, ref, desk.Ref)
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, expert1, *ack.Form, map[string]string{"text": "which user ran it?"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "more information needed")
	posted(t, f.slack, contosoSOC, &receipt.Ref, "which user ran it?")

	ack, _ = f.press(t, Slack, analyst, ActAddDetails, ref, receipt.Ref)
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, analyst, *ack.Form, map[string]string{"text": "it was svc_backup"})
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Added to "+ref)
	posted(t, f.slack, deskChannel, &desk.Ref, "it was svc_backup")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref), "the requester's answer resumed the case")

	ack, _ = f.press(t, Slack, expert1, ActConclude, ref, desk.Ref)
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, expert1, *ack.Form, map[string]string{"summary": "svc_backup is expected to run it"})
	_, _ = r.Wait(tenSeconds)
	require.Equal(t, casework.StatusConcluded, f.caseStatus(t, ref))

	_, r = f.press(t, Slack, analyst, ActReopen, ref, receipt.Ref)
	got, _ = r.Wait(tenSeconds)
	require.Contains(t, plain(got.Message), "in progress")

	// The ask form from a command, submitted.
	ack, _ = f.run(t, Slack, analyst, contosoSOC, "ask")
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "a question from the form"})
	got, _ = r.Wait(tenSeconds)
	require.Contains(t, plain(got.Message), "Opened EOD-2")
	posted(t, f.slack, contosoSOC, nil, "a question from the form")
}

// TestInternalNoteNeverCrosses: a note stays on the desk side.
func TestInternalNoteNeverCrosses(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "notes?"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "note "+ref+" internal-only-text")
	require.Contains(t, plain(m), "Internal note added")
	_, m = f.run(t, Slack, analyst, contosoSOC, "status "+ref)
	require.NotContains(t, plain(m), "internal-only-text")
	// A later event of the same case: once it is delivered, anything the
	// note had queued before it would have been delivered too.
	f.reply(Slack, expert1, desk.Ref, "later-marker")
	posted(t, f.slack, contosoSOC, &receipt.Ref, "later-marker")
	for _, c := range f.slack.Calls() {
		require.NotContains(t, plain(c.Message), "internal-only-text")
	}
}

// TestRedeliveredCommandHandledOnce: the same key twice opens one case
// and answers once.
func TestRedeliveredCommandHandledOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, r1 := f.command(Slack, analyst, contosoSOC, `ask "only once"`)
	f.bot.HandleCommand(context.Background(), c)
	r2 := bottest.NewResponder()
	c.Respond = r2
	f.bot.HandleCommand(context.Background(), c)
	posted(t, f.slack, deskChannel, nil, "EOD-1")
	f.waitFor(t, "one answer", func() bool { return len(r1.Responses())+len(r2.Responses()) == 1 })
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, 1, len(r1.Responses())+len(r2.Responses()), "the redelivery is not answered again")
	l, err := f.cw.List(context.Background(), casework.AllOrgs(), casework.ListFilter{})
	require.NoError(t, err)
	require.Equal(t, 1, l.Total)
}

// TestCasesListMore: lists show the first 10, say how many match, and
// offer the rest behind a More button.
func TestCasesListMore(t *testing.T) {
	t.Parallel()
	f := setupWith(t, pgtest.New(t), true, nil, casework.Config{CreditsPerQuarter: 50, CreditsCap: 100})
	for i := range 12 {
		_, m := f.run(t, Slack, analyst, contosoSOC, fmt.Sprintf(`ask "question number %d"`, i))
		require.Contains(t, plain(m), "Opened")
	}
	_, m := f.run(t, Slack, analyst, contosoSOC, "cases")
	require.Contains(t, plain(m), "Cases 1–10 of 12")
	require.Contains(t, plain(m), "[More]")
	require.Len(t, m.Sections[0].Lines, 10)
	_, m = f.run(t, Slack, manager, deskChannel, "cases open fabrikam")
	require.Contains(t, plain(m), "No cases.")
}

// TestWithdrawFromTheReceipt: an open case is withdrawn from its receipt,
// not "closed" (only a concluded case closes), and an untaken case gives its
// credit back.
func TestWithdrawFromTheReceipt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, _ := f.openCase(t, `ask "never mind soon"`)
	require.Contains(t, actions(receipt.Message), ActWithdraw)
	_, before := f.run(t, Slack, analyst, contosoSOC, "credits")
	require.Contains(t, plain(before), "Balance: 9")

	_, r := f.press(t, Slack, analyst, ActWithdraw, ref, receipt.Ref)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "withdrawn")
	require.Equal(t, casework.StatusWithdrawn, f.caseStatus(t, ref))
	_, after := f.run(t, Slack, analyst, contosoSOC, "credits")
	require.Contains(t, plain(after), "Balance: 10")
}

// TestManagerInOrgChannelActsAsRequester: a manager (who sees every org)
// adding details from an org's receipt acts inside that org.
func TestManagerInOrgChannelActsAsRequester(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Managers.Slack = append(c.Managers.Slack, analyst) })
	ref, _, _ := f.openCase(t, `ask "managers ask too"`)
	r := bottest.NewResponder()
	f.bot.HandleSubmit(context.Background(), Submission{
		User: f.user(Slack, analyst), FormID: "add_details", State: "ref=" + ref, Channel: contosoSOC,
		Values: map[string]string{"text": "the host is a build server"}, Key: "details-1", Respond: r,
	})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Added to "+ref)
}

// TestCompleteCases: suggestions are the caller's own org's cases (all
// orgs for experts), filtered by what was typed, nothing for strangers.
func TestCompleteCases(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.openCase(t, `ask "first contoso question"`)                                    // EOD-1
	_, m := f.run(t, Discord, fabAnalyst, fabSOC, `ask "fabrikam private question"`) // EOD-2
	require.Contains(t, plain(m), "Opened EOD-2")
	ctx := context.Background()
	values := func(cs []Choice) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Value)
		}
		return out
	}

	member := f.bot.CompleteCases(ctx, f.user(Slack, analyst), contosoSOC, "")
	require.Equal(t, []string{"EOD-1"}, values(member), "a member sees only their org's cases")
	require.Contains(t, member[0].Name, "first contoso question")

	expert := f.bot.CompleteCases(ctx, f.user(Slack, expert1), deskChannel, "")
	require.ElementsMatch(t, []string{"EOD-1", "EOD-2"}, values(expert))
	require.Equal(t, []string{"EOD-2"}, values(f.bot.CompleteCases(ctx, f.user(Slack, expert1), deskChannel, "eod-2")))
	require.Empty(t, f.bot.CompleteCases(ctx, f.user(Slack, "U0NOBODY"), strangerChan, ""))
	for _, c := range expert {
		require.LessOrEqual(t, len([]rune(c.Name)), 100)
	}
}

// TestCreditsResetInTheConfiguredZone: /experts credits names the day the
// next quarter's credits arrive in the configured time zone. East of UTC
// it named the day before (the instant shown in UTC).
func TestCreditsResetInTheConfiguredZone(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	now := func() time.Time { return time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC) }
	f := setupWith(t, pgtest.New(t), true, nil, casework.Config{Location: berlin, Now: now}, func(c *Config) { c.Location, c.Now = berlin, now })
	_, m := f.run(t, Slack, analyst, contosoSOC, "credits")
	require.Contains(t, plain(m), "1 January 2027")
	require.NotContains(t, plain(m), "31 December")
}
