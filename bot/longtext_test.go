package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
)

// longText is n runes of numbered words in paragraphs, so that a test can
// tell that every word arrived, in order.
func longText(n int) string {
	var b strings.Builder
	for i := 1; ; i++ {
		w := fmt.Sprintf("w%04d ", i)
		if i%40 == 0 {
			w = fmt.Sprintf("w%04d\n\n", i)
		}
		if b.Len()+len(w) > n {
			break
		}
		b.WriteString(w)
	}
	return strings.TrimSpace(b.String())
}

// words are the numbered words of s, wherever they are.
func words(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if len(f) == 5 && f[0] == 'w' && strings.Trim(f[1:], "0123456789") == "" {
			out = append(out, f)
		}
	}
	return out
}

// postsInThread are the posts into thread's thread whose text has want,
// in order.
func postsInThread(a *bottest.Adapter, thread Ref, want string) []bottest.Call {
	var out []bottest.Call
	for _, c := range a.Calls() {
		if c.Op == bottest.OpPost && c.Dest.Thread != nil && c.Dest.Thread.Message == thread.Message && strings.Contains(plain(c.Message), want) {
			out = append(out, c)
		}
	}
	return out
}

// lastUpdate is the last edit of ref.
func lastUpdate(t testing.TB, a *bottest.Adapter, ref Ref) string {
	t.Helper()
	var last string
	for _, c := range a.Calls() {
		if c.Op == bottest.OpUpdate && c.Ref == ref {
			last = plain(c.Message)
		}
	}
	require.NotEmpty(t, last, "no edit of %s", ref.Message)
	return last
}

// TestLongRelayArrivesWhole: a thread message longer than one chat message
// holds is relayed as several, each saying which part it is, and together
// they hold every word in order (it was cut at 1,800 characters with "…",
// and the sender was not told). An edit reaches every part; a deletion
// too.
func TestLongRelayArrivesWhole(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, receipt, desk := f.openCase(t, `ask "long replies?"`)

	text := longText(5000)
	msg := f.reply(Slack, expert1, desk.Ref, text)
	posted(t, f.slack, contosoSOC, &receipt.Ref, "(3 of 3)")
	f.waitFor(t, "the relay settled", func() bool { return f.bot.InboundIdle(ctx) && f.bot.OutboxIdle(ctx) })
	parts := postsInThread(f.slack, receipt.Ref, "(threat expert) wrote")
	require.Len(t, parts, 3)
	var got []string
	for i, p := range parts {
		s := plain(p.Message)
		require.Contains(t, s, fmt.Sprintf("Eve Expert (threat expert) wrote (%d of 3):", i+1))
		require.NotContains(t, s, "…", "nothing is cut")
		got = append(got, words(s)...)
	}
	require.Equal(t, words(text), got, "every word, in order")

	// A shorter edit: the first part holds it, the others say so.
	f.change(t, Slack, expert1, desk.Ref, msg, ReplyEdited, "short now: w0001 only")
	updated(t, f.slack, parts[2].Ref, "no longer part of it")
	updated(t, f.slack, parts[1].Ref, "no longer part of it")
	updated(t, f.slack, parts[0].Ref, "short now: w0001 only")
	require.Contains(t, lastUpdate(t, f.slack, parts[0].Ref), "(edited)")

	// A longer edit than the parts hold: the last says how much did not fit.
	f.change(t, Slack, expert1, desk.Ref, msg, ReplyEdited, longText(7000))
	updated(t, f.slack, parts[2].Ref, "did not fit here; the original message has them")
	f.waitFor(t, "the edit settled", func() bool { return f.bot.InboundIdle(ctx) })
	edited := words(lastUpdate(t, f.slack, parts[0].Ref) + " " + lastUpdate(t, f.slack, parts[1].Ref) + " " + lastUpdate(t, f.slack, parts[2].Ref))
	require.Equal(t, words(longText(7000))[:len(edited)], edited, "the edit's words in order, as far as they fit")

	f.change(t, Slack, expert1, desk.Ref, msg, ReplyDeleted, "")
	for _, p := range parts {
		updated(t, f.slack, p.Ref, "(message deleted)")
	}

	// The requester's side too.
	f.reply(Slack, analyst, receipt.Ref, longText(2500))
	posted(t, f.slack, deskChannel, &desk.Ref, "Ana Lyst (requester, Contoso) wrote (2 of 2):")
}

// TestLongConclusionAndQuestionArriveWhole: a conclusion or a question
// longer than a card holds is cut on the card, with a line saying so, and
// follows whole in the threads (both were cut at 1,800 characters).
func TestLongConclusionAndQuestionArriveWhole(t *testing.T) {
	t.Parallel()
	f := setup(t)

	question := longText(2900)
	ack, _ := f.run(t, Slack, analyst, contosoSOC, "ask")
	require.NotNil(t, ack.Form)
	_, r := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": question})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Opened EOD-1")
	receipt := posted(t, f.slack, contosoSOC, nil, "EOD-1")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1")
	require.Contains(t, plain(desk.Message), "cut here, the whole text follows in the thread")
	wholeInBothThreads(t, f, receipt.Ref, desk.Ref, "The question in full", " (2 of 2):", question)

	ack, r = f.press(t, Slack, expert1, ActTake, "EOD-1", desk.Ref)
	require.Nil(t, ack.Form)
	_, _ = r.Wait(tenSeconds)
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, "EOD-1"))
	summary := longText(2990)
	ack, _ = f.press(t, Slack, expert1, ActConclude, "EOD-1", desk.Ref)
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, expert1, *ack.Form, map[string]string{"summary": summary})
	got, _ = r.Wait(tenSeconds)
	require.Contains(t, plain(got.Message), "EOD-1 is now concluded")
	require.Equal(t, casework.StatusConcluded, f.caseStatus(t, "EOD-1"))
	wholeInBothThreads(t, f, receipt.Ref, desk.Ref, "EOD-1: Concluded", ", continued (2 of 2)", summary)
	updated(t, f.slack, receipt.Ref, "cut here, the whole text follows in the thread")
}

// TestLongRelayEditAroundAGap: a part of a long relay that failed for good
// leaves a gap; an edit still puts each piece in its own part ("3 of 3"
// stays "3 of 3"; it became "2 of 2" with the second piece), and a part
// that cannot be edited any more does not keep the others from being
// edited (the edit stopped at it, leaving the rest of a deleted message
// visible).
func TestLongRelayEditAroundAGap(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, receipt, desk := f.openCase(t, `ask "gaps?"`)
	f.waitFor(t, "the case settled", func() bool { return f.bot.InboundIdle(ctx) && f.bot.OutboxIdle(ctx) })

	f.slack.Fail(nil, bottest.Permanent("msg_too_long")) // the second part is refused for good
	msg := f.reply(Slack, expert1, desk.Ref, longText(5000))
	posted(t, f.slack, contosoSOC, &receipt.Ref, "(3 of 3)")
	f.waitFor(t, "the relay settled", func() bool { return f.bot.InboundIdle(ctx) && f.bot.OutboxIdle(ctx) })
	parts := postsInThread(f.slack, receipt.Ref, "(threat expert) wrote")
	require.Len(t, parts, 2)
	require.Contains(t, plain(parts[0].Message), "(1 of 3)")
	require.Contains(t, plain(parts[1].Message), "(3 of 3)")

	f.slack.Fail(bottest.Permanent("message_not_found")) // the first part was removed since
	f.change(t, Slack, expert1, desk.Ref, msg, ReplyDeleted, "")
	updated(t, f.slack, parts[1].Ref, "(message deleted)")
	require.Contains(t, lastUpdate(t, f.slack, parts[1].Ref), "wrote (3 of 3):")

	f.change(t, Slack, expert1, desk.Ref, msg, ReplyEdited, "short now")
	updated(t, f.slack, parts[1].Ref, "no longer part of it")
	updated(t, f.slack, parts[0].Ref, "short now")
	require.Contains(t, lastUpdate(t, f.slack, parts[1].Ref), "wrote (3 of 3):")
}

// wholeInBothThreads waits for the last of the messages headed title that
// carry text into the receipt's and the desk card's threads (last is what
// follows title in the last one), and checks that together they hold
// every word of text, in order.
func wholeInBothThreads(t *testing.T, f *fixture, receipt, desk Ref, title, last, text string) {
	t.Helper()
	for _, at := range []struct {
		channel string
		card    Ref
	}{{contosoSOC, receipt}, {deskChannel, desk}} {
		posted(t, f.slack, at.channel, &at.card, title+last)
		var all []string
		for _, p := range postsInThread(f.slack, at.card, title) {
			all = append(all, words(plain(p.Message))...)
		}
		require.Equal(t, words(text), all, "%s: the whole text in %s", title, at.channel)
	}
}
