package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
)

const colleague = "U0ANALYST2" // another analyst in Contoso's channel

// TestOnlyTheRequesterWithdraws: a colleague in the same channel sees the
// receipt's Withdraw button but may not withdraw someone else's case; the
// requester may.
func TestOnlyTheRequesterWithdraws(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, _ := f.openCase(t, `ask "only I may withdraw this"`)

	for _, who := range []string{colleague, manager} {
		_, r := f.press(t, Slack, who, ActWithdraw, ref, receipt.Ref)
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok)
		require.NotContains(t, plain(got.Message), "is now", who)
		require.Equal(t, casework.StatusNew, f.caseStatus(t, ref), "%s cannot withdraw", who)
		if who == colleague {
			require.Contains(t, plain(got.Message), "only Ana Lyst, who asked, can withdraw "+ref)
		}
	}

	_, r := f.press(t, Slack, analyst, ActWithdraw, ref, receipt.Ref)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), ref+" is now withdrawn")
	require.Equal(t, casework.StatusWithdrawn, f.caseStatus(t, ref))
}

// TestCloseAndReopenByRequesterOrManager: a concluded case is closed and
// reopened by a manager, never by a colleague of the requester.
func TestCloseAndReopenByRequesterOrManager(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, _ := f.openCase(t, `ask "close me properly"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "take "+ref)
	require.Contains(t, plain(m), "You have "+ref)
	_, m = f.run(t, Slack, expert1, deskChannel, `conclude `+ref+` "benign: a signed admin tool"`)
	require.Contains(t, plain(m), "concluded")

	press := func(who string, act ActionID) string {
		t.Helper()
		_, r := f.press(t, Slack, who, act, ref, receipt.Ref)
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok)
		return plain(got.Message)
	}
	require.Contains(t, press(colleague, ActClose), "only Ana Lyst, who asked, or a manager can close "+ref)
	require.Equal(t, casework.StatusConcluded, f.caseStatus(t, ref))
	require.Contains(t, press(manager, ActClose), ref+" is now closed")
	require.Equal(t, casework.StatusClosed, f.caseStatus(t, ref))

	require.Contains(t, press(colleague, ActReopen), "only Ana Lyst, who asked, or a manager can reopen "+ref)
	require.Equal(t, casework.StatusClosed, f.caseStatus(t, ref))
	require.Contains(t, press(manager, ActReopen), ref+" is now in progress")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref))

	_, m = f.run(t, Slack, expert1, deskChannel, `conclude `+ref+` "still benign after all"`)
	require.Contains(t, plain(m), "concluded")
	require.Contains(t, press(analyst, ActClose), ref+" is now closed")
	require.Contains(t, press(analyst, ActReopen), ref+" is now in progress")
}

// TestReplyWithoutTheRoleIsToldNotRelayed: a manager (not an expert)
// writing in a desk card's thread is told privately that it did not reach
// the requester. It was dropped without a word, and the manager believed
// the requester had read it.
func TestReplyWithoutTheRoleIsToldNotRelayed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "who reads a manager's reply?"`)
	f.reply(Slack, manager, desk.Ref, "we are on it, hold tight")
	ok := f.slack.WaitFor(10*time.Second, func(calls []bottest.Call) bool {
		for _, c := range calls {
			if c.Op == bottest.OpPrivate && c.UserID == manager && strings.Contains(bottest.Plain(c.Message), "Not relayed to "+ref+": only threat experts answer") {
				return true
			}
		}
		return false
	})
	require.True(t, ok, "the manager is told")
	for _, c := range f.slack.Calls() {
		require.NotContains(t, bottest.Plain(c.Message), "hold tight", "nothing relayed")
	}
	// Told once a thread, not at every message (on Discord each is a DM).
	f.reply(Slack, manager, desk.Ref, "second thought")
	f.reply(Slack, expert1, desk.Ref, "later-marker")
	posted(t, f.slack, contosoSOC, &receipt.Ref, "later-marker")
	require.Equal(t, 1, f.slack.Count(bottest.OpPrivate, func(c bottest.Call) bool {
		return c.UserID == manager && strings.Contains(bottest.Plain(c.Message), "Not relayed")
	}))
}

// TestOnlyTheHolderMovesACase: once Eve has taken a case, Ed cannot
// conclude it or ask for more until he assigns it to himself; then he can.
// Any expert could, which undid the one-winner take without Eve knowing.
func TestOnlyTheHolderMovesACase(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, _, _ := f.openCase(t, `ask "whose case is this?"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "take "+ref)
	require.Contains(t, plain(m), "You have "+ref)
	_, m = f.run(t, Slack, expert2, deskChannel, "conclude "+ref+" nothing to see here, benign")
	require.Contains(t, plain(m), ref+" is with Eve Expert: assign it to yourself first to conclude it")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref))
	_, m = f.run(t, Slack, expert2, deskChannel, "more-info "+ref+" which host?")
	require.Contains(t, plain(m), ref+" is with Eve Expert")

	_, m = f.run(t, Slack, expert2, deskChannel, "assign "+ref+" <@"+expert2+">")
	require.NotContains(t, plain(m), "cannot")
	_, m = f.run(t, Slack, expert2, deskChannel, "conclude "+ref+" nothing to see here, benign")
	require.Contains(t, plain(m), ref+" is now concluded")
}

// TestMessageIntoAConcludedCaseSaysSo: the requester writes in a concluded
// case's thread; the desk gets it, and is told the case is concluded and
// not reopened by it. It came like any message, and the case stayed out of
// the open lists, unworked.
func TestMessageIntoAConcludedCaseSaysSo(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ref, receipt, desk := f.openCase(t, `ask "is this done?"`)
	f.run(t, Slack, expert1, deskChannel, "take "+ref)
	_, m := f.run(t, Slack, expert1, deskChannel, "conclude "+ref+" benign: the admin's backup tool")
	require.Contains(t, plain(m), ref+" is now concluded")
	f.reply(Slack, analyst, receipt.Ref, "it is still happening on ws-2")
	posted(t, f.slack, deskChannel, &desk.Ref, "it is still happening on ws-2")
	posted(t, f.slack, deskChannel, &desk.Ref, ref+" is concluded: this message does not reopen it")
}
