package bot_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// buttonOf returns the button of m for act.
func buttonOf(t testing.TB, m Message, act ActionID) Button {
	t.Helper()
	for _, b := range m.Buttons {
		if b.Action == act {
			return b
		}
	}
	require.Failf(t, "no button", "%s on %q", act, plain(m))
	return Button{}
}

// answer waits for r's first answer.
func answer(t testing.TB, r *bottest.Responder) Message {
	t.Helper()
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok, "no answer")
	return got.Message
}

func (f *fixture) balance(t testing.TB, org string) int {
	t.Helper()
	b, err := f.cw.Credits(context.Background(), casework.OrgViewer(org), org)
	require.NoError(t, err)
	return b.Balance
}

// TestUnknownAlertAsksFirst: an alert id threatdesk does not know is said
// so, and a credit is spent only when the asker confirms (item 11).
func TestUnknownAlertAsksFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	hunt, err := hunting.New(db, hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{contosoTenant}}}, NotifyScore: 100, GroupWait: time.Hour}, nil, nil)
	require.NoError(t, err)
	_, err = hunt.Ingest(ctx, []hunting.RawAlert{hunting.RawAlert(expertAlert)})
	require.NoError(t, err)
	f := setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{})

	_, m := f.run(t, Slack, analyst, contosoSOC, `alert `+alertID+` "is this bad?"`)
	require.Contains(t, plain(m), "threatdesk does not know this alert")
	require.Contains(t, plain(m), alertID)
	require.Equal(t, 10, f.balance(t, "contoso"), "no credit spent before the asker confirms")
	anyway := buttonOf(t, m, ActAskAnyway)
	require.Equal(t, "Ask anyway (1 credit)", anyway.Label)

	_, r := f.press(t, Slack, analyst, ActAskAnyway, anyway.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Opened EOD-1")
	posted(t, f.slack, contosoSOC, nil, "EOD-1 ·")
	_, r = f.press(t, Slack, analyst, ActAskAnyway, anyway.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Already done: the question is with EOD-1", "pressed twice: one case")
	require.Equal(t, 9, f.balance(t, "contoso"))

	// Cancel: nothing is opened.
	_, m = f.run(t, Slack, analyst, contosoSOC, `incident 999999 "what is this?"`)
	cancel := buttonOf(t, m, ActCancelAsk)
	_, r = f.press(t, Slack, analyst, ActCancelAsk, cancel.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Cancelled")
	_, r = f.press(t, Slack, analyst, ActAskAnyway, cancel.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "cancelled")
	require.Equal(t, 9, f.balance(t, "contoso"))

	// A known alert opens at once.
	_, m = f.run(t, Slack, analyst, contosoSOC, `alert da637472900382838869_1364969609 "and this one?"`)
	require.Contains(t, plain(m), "Opened EOD-2")
}

// TestOpenCaseOnSameSubjectOffersFollow: asking about a subject the org
// already has an open case about offers following it (no credit) or a new
// case (one credit); only the asker's org's cases are offered (item 10).
func TestOpenCaseOnSameSubjectOffersFollow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, desk := f.openCase(t, `alert `+alertID+` "lateral movement?"`)
	require.Equal(t, 9, f.balance(t, "contoso"))

	_, m := f.run(t, Slack, "U0COLLEAGUE", contosoSOC, `alert `+alertID+` "is the same host still beaconing?"`)
	require.Contains(t, plain(m), "Contoso already has an open case about this")
	follow := buttonOf(t, m, ActFollow)
	require.Equal(t, "Follow "+ref, follow.Label)
	require.Equal(t, "Open a new case", buttonOf(t, m, ActOpenNew).Label)

	// Another org's member cannot choose for it, and is not offered Contoso's case.
	_, r := f.press(t, Discord, fabAnalyst, ActFollow, follow.Value, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC})
	require.Contains(t, plain(answer(t, r)), "Not found")
	_, fm := f.run(t, Discord, fabAnalyst, fabSOC, `alert `+alertID+` "we see it too"`)
	require.Contains(t, plain(fm), "Opened EOD-2", "Fabrikam has no case about it")

	_, r = f.press(t, Slack, "U0COLLEAGUE", ActFollow, follow.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Added your question to "+ref)
	posted(t, f.slack, deskChannel, &desk.Ref, "is the same host still beaconing?")
	_, r = f.press(t, Slack, "U0COLLEAGUE", ActFollow, follow.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Already done")
	_, r = f.press(t, Slack, "U0COLLEAGUE", ActOpenNew, follow.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Already done", "the first choice holds")
	require.Equal(t, 9, f.balance(t, "contoso"), "following uses no credit")

	_, m = f.run(t, Slack, analyst, contosoSOC, `alert `+alertID+` "a new angle"`)
	_, r = f.press(t, Slack, analyst, ActOpenNew, buttonOf(t, m, ActOpenNew).Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Opened EOD-3")
	require.Equal(t, 8, f.balance(t, "contoso"))
}

// TestSameQuestionTwiceOffersFollow: the analyst who asked asks the same
// thing again (a new command, not a retry): they are offered to follow
// their open case, and no second credit is spent. Same asker and same text
// were taken for a retry, and a second case opened.
func TestSameQuestionTwiceOffersFollow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, _ := f.openCase(t, `alert `+alertID+` "lateral movement?"`)
	require.Equal(t, 9, f.balance(t, "contoso"))
	_, m := f.run(t, Slack, analyst, contosoSOC, `alert `+alertID+` "lateral movement?"`)
	require.Contains(t, plain(m), "Contoso already has an open case about this")
	require.Equal(t, "Follow "+ref, buttonOf(t, m, ActFollow).Label)
	require.Equal(t, 9, f.balance(t, "contoso"), "no second credit")
}

// TestFollowAWithdrawnCaseGivesTheChoiceBack: a colleague is offered to
// follow a case that its requester then withdraws. Follow says it cannot,
// and why, and Open a new case still works. (Follow kept the choice, told
// them to reopen a case that can never be reopened, and both other buttons
// answered "being handled" for good.)
func TestFollowAWithdrawnCaseGivesTheChoiceBack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, _ := f.openCase(t, `alert `+alertID+` "lateral movement?"`)
	_, m := f.run(t, Slack, colleague, contosoSOC, `alert `+alertID+` "same host again?"`)
	follow := buttonOf(t, m, ActFollow)
	_, r := f.press(t, Slack, analyst, ActWithdraw, ref, receipt.Ref)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), ref+" is now withdrawn")

	_, r = f.press(t, Slack, colleague, ActFollow, follow.Value, Ref{Platform: Slack, Channel: contosoSOC})
	refused := plain(answer(t, r))
	require.Contains(t, refused, "Cannot follow "+ref+": "+ref+" was withdrawn and takes no more messages.")
	require.NotContains(t, refused, "reopen")
	_, r = f.press(t, Slack, colleague, ActOpenNew, follow.Value, Ref{Platform: Slack, Channel: contosoSOC})
	require.Contains(t, plain(answer(t, r)), "Opened EOD-2")
}

// TestZeroCreditsKeepsTheQuestion: at zero credits the question is kept,
// managers are offered Approve one more case, the case opens when one
// approves (once), and the approval is on its timeline (item 12).
func TestZeroCreditsKeepsTheQuestion(t *testing.T) {
	t.Parallel()
	zero := 0
	f := setupWith(t, pgtest.New(t), true, nil, casework.Config{Orgs: []casework.Org{{ID: "contoso", CreditsPerQuarter: &zero}}})

	_, m := f.run(t, Slack, analyst, contosoSOC, `ask "can we get help with this phishing wave?"`)
	require.Contains(t, plain(m), "Contoso: no expert credits left this quarter")
	require.Contains(t, plain(m), "Your question is kept")
	require.NotContains(t, plain(m), "contoso", "the org's internal id is not shown")
	require.NotContains(t, actions(m), ActApproveAsk, "an analyst cannot approve")

	card := posted(t, f.slack, deskChannel, nil, "Approve one more case for Contoso?")
	require.Contains(t, plain(card.Message), "can we get help with this phishing wave?")
	approve := buttonOf(t, card.Message, ActApproveAsk)

	ack, _ := f.press(t, Slack, analyst, ActApproveAsk, approve.Value, card.Ref)
	require.NotNil(t, ack.Message, "refused at once")
	require.Contains(t, plain(*ack.Message), "manager")
	ack, _ = f.press(t, Slack, expert1, ActApproveAsk, approve.Value, card.Ref)
	require.NotNil(t, ack.Message, "experts do not approve")

	_, r1 := f.press(t, Slack, manager, ActApproveAsk, approve.Value, card.Ref)
	_, r2 := f.press(t, Slack, manager, ActApproveAsk, approve.Value, card.Ref)
	got := []string{plain(answer(t, r1)), plain(answer(t, r2))}
	require.Contains(t, got[0]+got[1], "Approved: EOD-1 is open")
	require.NotContains(t, got[0]+got[1], "EOD-2", "approved once")
	posted(t, f.slack, contosoSOC, nil, "EOD-1 ·")
	require.True(t, f.slack.WaitFor(tenSeconds, cardDecided(card.Ref)), "the desk card loses its button")
	tl, err := f.cw.Timeline(context.Background(), casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	var opened casework.OpenedEvent
	require.NoError(t, json.Unmarshal(tl[0].Detail, &opened))
	require.NotNil(t, opened.ApprovedBy, "the approval is on the timeline")
	require.Equal(t, manager, opened.ApprovedBy.UserID)
	require.Equal(t, 0, f.balance(t, "contoso"))

	// A manager asking from the org's channel is offered the approval in the answer.
	_, m = f.run(t, Slack, manager, contosoSOC, `ask "and one for me"`)
	require.Contains(t, actions(m), ActApproveAsk)
}

// cardDecided is whether the approval card at ref was edited to its
// outcome, with no button left.
func cardDecided(ref Ref) func([]bottest.Call) bool {
	return func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op == bottest.OpUpdate && c.Ref == ref && len(c.Message.Buttons) == 0 {
				return true
			}
		}
		return false
	}
}

// TestApprovalSettlesWithItsCardEdit: an approval whose desk-card edit
// could not be stored is worked again, and the card still loses its
// button. The question was settled first, in a transaction of its own:
// the retry found it "Already done" and the card kept Approve forever.
func TestApprovalSettlesWithItsCardEdit(t *testing.T) {
	t.Parallel()
	zero := 0
	db := pgtest.New(t)
	f := setupWith(t, db, true, nil, casework.Config{Orgs: []casework.Org{{ID: "contoso", CreditsPerQuarter: &zero}}}, quickInbound(2*time.Second))
	f.run(t, Slack, analyst, contosoSOC, `ask "can we get help with this phishing wave?"`)
	card := posted(t, f.slack, deskChannel, nil, "Approve one more case for Contoso?")
	approve := buttonOf(t, card.Message, ActApproveAsk)

	ctx := context.Background()
	for _, q := range []string{
		`CREATE SEQUENCE test_fail_decided`,
		`CREATE FUNCTION test_fail_decided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'bot.approval_decided' AND nextval('test_fail_decided') = 1 THEN
        RAISE EXCEPTION 'injected failure: the database refused this insert' USING ERRCODE = '58000';
    END IF;
    RETURN NEW;
END $$`,
		`CREATE TRIGGER test_fail_decided BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION test_fail_decided()`,
	} {
		_, err := db.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	f.press(t, Slack, manager, ActApproveAsk, approve.Value, card.Ref)
	require.True(t, f.slack.WaitFor(tenSeconds, cardDecided(card.Ref)), "the desk card loses its button")
	var refused int
	require.NoError(t, db.QueryRow(ctx, `SELECT last_value FROM test_fail_decided`).Scan(&refused))
	require.GreaterOrEqual(t, refused, 2, "the first edit was refused, a retry stored it")
	settled(t, db)
	var cases int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.Equal(t, 1, cases, "the retry opened no second case")
}

// TestAskFormChoosesPriority: the ask form's priority sets the SLA targets,
// and the desk card shows who chose it (item 13).
func TestAskFormChoosesPriority(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ack, _ := f.run(t, Slack, analyst, contosoSOC, "ask")
	require.NotNil(t, ack.Form)
	var prio FormField
	for _, ff := range ack.Form.Fields {
		if ff.ID == "priority" {
			prio = ff
		}
	}
	require.Equal(t, InputSelect, prio.Kind)
	require.Equal(t, "medium", prio.Value, "a general question defaults to medium")
	require.Len(t, prio.Options, 3)

	sack, _ := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "is our VPN targeted?", "priority": "urgent"})
	require.Contains(t, sack.Errors["priority"], "high, medium or low")
	_, r := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "is our VPN targeted?", "priority": "low"})
	require.Contains(t, plain(answer(t, r)), "Opened EOD-1 (low priority)")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Contoso")
	require.Contains(t, plain(desk.Message), "low · chosen by Ana Lyst")
	c, err := f.cw.Get(context.Background(), casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	require.Equal(t, casework.PriorityLow, c.Priority)
	require.Equal(t, c.CreatedAt.Add(24*time.Hour), c.DueAt.UTC(), "the low first-response target")

	_, m := f.run(t, Slack, analyst, contosoSOC, `device ws-017.contoso.local "beaconing?"`)
	require.Contains(t, plain(m), "high priority")
	desk = posted(t, f.slack, deskChannel, nil, "EOD-2 · Contoso")
	require.Contains(t, plain(desk.Message), "high · from the subject")
}
