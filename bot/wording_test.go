package bot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
)

// The tests of issue 14 ("what people see") on the bot's own adapter; the
// Slack and Discord flows repeat them over the fakes.

// TestCasesMineForMembersAndExperts: "mine" is the cases a member asked,
// and the cases assigned to an expert (item 1).
func TestCasesMineForMembersAndExperts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, desk := f.openCase(t, `ask "is this beacon normal?"`)

	_, m := f.run(t, Slack, analyst, contosoSOC, "cases mine")
	require.Contains(t, plain(m), ref, "the analyst sees the case they asked")
	_, m = f.run(t, Slack, "U0COLLEAGUE", contosoSOC, "cases mine")
	require.Contains(t, plain(m), "No cases.", "a colleague did not ask it")
	_, m = f.run(t, Slack, expert1, deskChannel, "cases mine")
	require.Contains(t, plain(m), "No cases.", "nobody has it yet")

	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	_, m = f.run(t, Slack, expert1, deskChannel, "cases mine")
	require.Contains(t, plain(m), ref, "the expert sees the case assigned to them")
	_, m = f.run(t, Slack, expert2, deskChannel, "cases mine")
	require.Contains(t, plain(m), "No cases.")
}

// TestTakeIsSaidOnce: taking a case posts one note in each thread and edits
// each card once (item 3).
func TestTakeIsSaidOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	ref, receipt, desk := f.openCase(t, `ask "once?"`)
	f.waitFor(t, "the opening delivered", func() bool { return f.bot.OutboxIdle(ctx) })
	before := len(f.slack.Calls())

	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	posted(t, f.slack, deskChannel, &desk.Ref, "Eve Expert (threat expert) took "+ref+". It is in progress.")
	posted(t, f.slack, contosoSOC, &receipt.Ref, "Eve Expert (threat expert) took "+ref+". It is in progress.")
	f.waitFor(t, "the take delivered", func() bool { return f.bot.OutboxIdle(ctx) })

	calls := f.slack.Calls()[before:]
	count := func(op bottest.Op, anchor Ref) int {
		n := 0
		for _, c := range calls {
			switch {
			case op == bottest.OpUpdate && c.Op == op && c.Ref == anchor:
				n++
			case op == bottest.OpPost && c.Op == op && c.Dest.Thread != nil && c.Dest.Thread.Message == anchor.Message:
				n++
			}
		}
		return n
	}
	for _, a := range []Ref{receipt.Ref, desk.Ref} {
		require.Equal(t, 1, count(bottest.OpPost, a), "one note in the thread of %s: %s", a.Channel, dump(calls))
		require.Equal(t, 1, count(bottest.OpUpdate, a), "one edit of the card in %s: %s", a.Channel, dump(calls))
	}
}

// TestNeedMoreTimeAsksWhy: the Need more time button opens a form with a
// pre-filled reason, and the requester sees the reason (item 4).
func TestNeedMoreTimeAsksWhy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "more time?"`)
	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, _ = r.Wait(tenSeconds)

	ack, _ := f.press(t, Slack, expert1, ActMoreTime, ref, desk.Ref)
	require.NotNil(t, ack.Form, "the button opens a form")
	require.Len(t, ack.Form.Fields, 1)
	require.Equal(t, "Analysis needs more time", ack.Form.Fields[0].Value)
	require.False(t, ack.Form.Fields[0].Required, "the reason is optional")
	_, r = f.submit(t, Slack, expert1, *ack.Form, map[string]string{"text": "The sandbox run takes another hour"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "needs more time")
	note := posted(t, f.slack, contosoSOC, &receipt.Ref, ref+": Needs more time")
	require.Contains(t, plain(note.Message), "The sandbox run takes another hour")
	require.Contains(t, plain(note.Message), "the SLA clock keeps running")
}

// TestNeedFileSampleNamesTheFile: on a case not about a file, the sample
// form insists on the file's hash or name; on a file's case it is
// pre-filled (item 4).
func TestNeedFileSampleNamesTheFile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `alert `+alertID+` "phishing?"`)
	_, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	_, _ = r.Wait(tenSeconds)

	ack, _ := f.press(t, Slack, expert1, ActSample, ref, desk.Ref)
	require.NotNil(t, ack.Form)
	require.Equal(t, "file", ack.Form.Fields[0].ID)
	require.True(t, ack.Form.Fields[0].Required, "the case is about an alert: name the file")
	sack, _ := f.submit(t, Slack, expert1, *ack.Form, map[string]string{"file": "", "text": "zip it"})
	require.Contains(t, sack.Errors["file"], "Name the file", "the form stays open")
	_, m := f.run(t, Slack, expert1, deskChannel, "sample "+ref)
	require.Contains(t, plain(m), "Name the file")

	_, r = f.submit(t, Slack, expert1, *ack.Form, map[string]string{"file": "invoice.docm", "text": "zip it with the password infected"})
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	note := posted(t, f.slack, contosoSOC, &receipt.Ref, ref+": File sample needed")
	require.Contains(t, plain(note.Message), "File: invoice.docm")
	require.Contains(t, plain(note.Message), "zip it with the password infected")

	const sha = "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6"
	ref2, _, desk2 := f.openCase(t, `file `+sha+` "seen on 3 hosts"`)
	_, r = f.press(t, Slack, expert1, ActTake, ref2, desk2.Ref)
	_, _ = r.Wait(tenSeconds)
	ack, _ = f.press(t, Slack, expert1, ActSample, ref2, desk2.Ref)
	require.NotNil(t, ack.Form)
	require.Equal(t, sha, ack.Form.Fields[0].Value, "the case's file is pre-filled")
	require.False(t, ack.Form.Fields[0].Required)
}

// TestDeskCardCategoryInWords: the desk card's footer names the category
// in words, not casework's value (item 5).
func TestDeskCardCategoryInWords(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, _, desk := f.openCase(t, `device ws-017.contoso.local "beaconing?"`)
	footer := plain(Message{Text: []Line{desk.Message.Footer}})
	require.Contains(t, footer, "Possible device compromise")
	require.NotContains(t, footer, "device_compromise")
}

// TestSampleFormOfAMemberRevealsNothing: the sample form is the experts'.
// A member who submits one (a crafted submission naming a case) used to
// have the case read first: "Name the file" told them that the case
// exists, whoever's it is, and that it is not about a file. Now a member's
// submission is refused the same way for a real case and a made-up one.
func TestSampleFormOfAMemberRevealsNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, desk := f.openCase(t, `alert `+alertID+` "phishing?"`)
	ack, _ := f.press(t, Slack, expert1, ActSample, ref, desk.Ref)
	require.NotNil(t, ack.Form)
	real := *ack.Form
	require.Contains(t, real.State, ref)
	madeUp := real
	madeUp.State = strings.Replace(real.State, ref, "EOD-99999", 1)

	var answers []string
	for _, form := range []Form{real, madeUp} {
		sack, r := f.submit(t, Discord, fabAnalyst, form, map[string]string{"file": "", "text": "zip it"})
		require.Empty(t, sack.Errors, "no check of the case for a member")
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok)
		answers = append(answers, plain(got.Message))
	}
	require.Equal(t, answers[0], answers[1], "the same answer for a real case and a made-up one")
	require.NotContains(t, answers[0], "Name the file")
}
