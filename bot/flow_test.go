package bot_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
)

// TestConsultFlow walks a case from the analyst's command to its close:
// receipt and desk card, Take, the relay both ways, more info, the
// requester's answer resuming the clock, conclude, close.
func TestConsultFlow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	ref, receipt, desk := f.openCase(t, `alert `+alertID+` "is this <!channel> lateral movement?"`)
	require.Equal(t, "EOD-1", ref)
	require.NotEmpty(t, receipt.Message.ThreadName)
	// The question is untrusted text, shown literally.
	var q Span
	for _, l := range desk.Message.Text {
		for _, s := range l {
			if s.Text == "is this <!channel> lateral movement?" {
				q = s
			}
		}
	}
	require.True(t, q.Untrusted, "the question must be an untrusted span")
	require.Equal(t, []ActionID{ActTake}, actions(desk.Message))
	require.Equal(t, []ActionID{ActAddDetails, ActWithdraw}, actions(receipt.Message))
	// The anchors are recorded: the messages that are the case's threads.
	f.waitFor(t, "anchors recorded", func() bool {
		gotReceipt, gotDesk, ok, err := f.bot.CaseAnchors(ctx, ref)
		return err == nil && ok && gotReceipt == receipt.Ref && gotDesk == desk.Ref
	})

	// Take from the desk card.
	ack, r := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	require.Nil(t, ack.Form)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "You have "+ref)
	posted(t, f.slack, deskChannel, &desk.Ref, "Eve Expert (threat expert) took "+ref)
	posted(t, f.slack, contosoSOC, &receipt.Ref, "Eve Expert (threat expert) took "+ref)
	require.True(t, f.slack.WaitFor(tenSeconds, func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op == bottest.OpUpdate && c.Ref == desk.Ref && plain(c.Message) != "" && containsAction(c.Message, ActConclude) {
				return true
			}
		}
		return false
	}), "the desk card offers Conclude to its holder")

	// The expert replies in the desk thread: relayed to the analyst's thread.
	f.reply(Slack, expert1, desk.Ref, "Can you share the process tree? @everyone")
	relayed := posted(t, f.slack, contosoSOC, &receipt.Ref, "Eve Expert (threat expert) wrote:")
	require.Contains(t, plain(relayed.Message), "Can you share the process tree? @everyone")
	// The analyst replies in the receipt thread: relayed to the desk.
	f.reply(Slack, analyst, receipt.Ref, "Here it is: cmd.exe -> psexec")
	posted(t, f.slack, deskChannel, &desk.Ref, "Ana Lyst (requester, Contoso) wrote:")

	// Our own posts in the thread are never relayed.
	before := len(f.slack.Calls())
	f.bot.HandleReply(ctx, Reply{Parent: desk.Ref, Message: relayed.Ref, Author: User{Platform: Slack, ID: "UBOT"}, Text: "echo", FromBot: true})

	// More info: the clock pauses.
	_, m := f.run(t, Slack, expert1, deskChannel, `more-info `+ref+` "the parent process of psexec"`)
	require.Contains(t, plain(m), "more information needed")
	require.Equal(t, casework.StatusMoreInfoNeeded, f.caseStatus(t, ref))
	posted(t, f.slack, contosoSOC, &receipt.Ref, "the parent process of psexec")

	// The requester answers in the thread: back to in progress.
	f.reply(Slack, analyst, receipt.Ref, "services.exe")
	f.waitFor(t, "clock resumed", func() bool { return f.caseStatus(t, ref) == casework.StatusInProgress })
	posted(t, f.slack, deskChannel, &desk.Ref, "services.exe")

	// Conclude with a summary.
	_, m = f.run(t, Slack, expert1, deskChannel, `conclude `+ref+` "Benign: the admin's patch tool."`)
	require.Contains(t, plain(m), "concluded")
	posted(t, f.slack, contosoSOC, &receipt.Ref, "Benign: the admin's patch tool.")

	// The analyst closes from the receipt.
	_, r = f.press(t, Slack, analyst, ActClose, ref, receipt.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "closed")
	require.Equal(t, casework.StatusClosed, f.caseStatus(t, ref))
	posted(t, f.slack, deskChannel, &desk.Ref, ref+": Closed")

	// Nothing was ever echoed back into the thread it came from, and the
	// bot's own post was not relayed.
	for _, c := range f.slack.Calls()[before:] {
		if c.Op == bottest.OpPost {
			require.NotContains(t, plain(c.Message), "echo")
		}
	}
	for _, c := range f.slack.Find(bottest.OpPost, nil) {
		if c.Dest.Thread != nil && c.Dest.Thread.Message == desk.Ref.Message {
			require.NotContains(t, plain(c.Message), "threat expert) wrote:", "an expert's message echoed into the desk thread")
		}
		if c.Dest.Thread != nil && c.Dest.Thread.Message == receipt.Ref.Message {
			require.NotContains(t, plain(c.Message), "(requester, Contoso) wrote:", "a requester's message echoed into their own thread")
		}
	}
}

// TestCrossPlatform: the requester is on Discord, the desk on Slack.
func TestCrossPlatform(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, m := f.run(t, Discord, fabAnalyst, fabSOC, `device 111e6dd8c833c8a052ea231ec1b19adaf497b625 "odd beacons"`)
	require.Contains(t, plain(m), "Opened EOD-1")
	receipt := posted(t, f.discord, fabSOC, nil, "EOD-1 ·")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Fabrikam")
	f.anchored(t, "EOD-1")
	_, r := f.press(t, Slack, expert2, ActTake, "EOD-1", desk.Ref)
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	f.reply(Slack, expert2, desk.Ref, "Which process beacons?")
	posted(t, f.discord, fabSOC, &receipt.Ref, "Ed Expert (threat expert) wrote:")
	f.reply(Discord, fabAnalyst, receipt.Ref, "svchost.exe")
	relay := posted(t, f.slack, deskChannel, &desk.Ref, "Fab Analyst (requester, Fabrikam) wrote:")
	require.Contains(t, plain(relay.Message), "svchost.exe")
}

func actions(m Message) []ActionID {
	var out []ActionID
	for _, b := range m.Buttons {
		out = append(out, b.Action)
	}
	return out
}

func containsAction(m Message, a ActionID) bool {
	for _, b := range m.Buttons {
		if b.Action == a {
			return true
		}
	}
	return false
}
