package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// appendSample records a test notification for contoso on stream, as the
// sample-notification command does.
func appendSample(t testing.TB, db *pgxpool.Pool, stream string) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	id, err := outbox.Append(ctx, tx, outbox.Event{Kind: "bot.sample_notification", Stream: stream,
		Payload: map[string]string{"org": "contoso", "by": "test"}})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return id
}

type rowState struct {
	delivered, dead bool
	attempts        int
	lastError       string
}

func readRow(t testing.TB, db *pgxpool.Pool, id int64) rowState {
	t.Helper()
	var s rowState
	var le *string
	require.NoError(t, db.QueryRow(context.Background(),
		`SELECT delivered_at IS NOT NULL, dead_at IS NOT NULL, attempts, last_error FROM outbox WHERE id = $1`, id).
		Scan(&s.delivered, &s.dead, &s.attempts, &le))
	if le != nil {
		s.lastError = *le
	}
	return s
}

func deliveries(f *fixture, result string) float64 {
	mfs, _ := f.reg.Gather()
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_outbox_deliveries_total" {
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

func TestDeliveryRetriesThenDeliversOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.slack.Fail(bottest.RateLimited(30*time.Millisecond), bottest.ServerError())
	id := appendSample(t, f.db, "sample:contoso")
	f.waitFor(t, "row delivered", func() bool { return readRow(t, f.db, id).delivered })
	posts := f.slack.Find(bottest.OpPost, nil)
	require.Len(t, posts, 1, "delivered exactly once: %s", dump(f.slack.Calls()))
	require.Equal(t, contosoSOC, posts[0].Dest.Channel)
	require.Contains(t, plain(posts[0].Message), "TEST")
	require.Equal(t, 3, readRow(t, f.db, id).attempts)
	require.Equal(t, 1.0, deliveries(f, "rate_limited"))
	require.Equal(t, 1.0, deliveries(f, "retry"))
	require.Equal(t, 1.0, deliveries(f, "delivered"))
}

func TestDeliveryPermanentFailureIsDead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.slack.Fail(bottest.Permanent("channel_not_found"))
	id := appendSample(t, f.db, "sample:contoso")
	f.waitFor(t, "row dead", func() bool { return readRow(t, f.db, id).dead })
	st := readRow(t, f.db, id)
	require.Contains(t, st.lastError, "channel_not_found")
	require.Contains(t, st.lastError, "invite the bot", "the reason tells the operator what to do")
	require.Empty(t, f.slack.Find(bottest.OpPost, nil))
	require.Equal(t, 1.0, deliveries(f, "dead"))
	eventually(t, "dead gauge", func() bool {
		return gaugeOf(t, f, "threatdesk_outbox_dead").value() == 1
	})
}

func gaugeOf(t testing.TB, f *fixture, name string) gatheredGauge {
	return gatheredGauge{f: f, name: name}
}

// gatheredGauge reads one gauge from the registry (testutil.ToFloat64 needs a Collector).
type gatheredGauge struct {
	f    *fixture
	name string
}

func (g gatheredGauge) value() float64 {
	mfs, _ := g.f.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == g.name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestDeliveryCrashBetweenClaimAndSend: a worker claims a row and dies
// before sending; once its lease runs out another worker delivers it.
func TestDeliveryCrashBetweenClaimAndSend(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	id := appendSample(t, db, "sample:contoso")
	rows, err := outbox.Claim(context.Background(), db, 10, 300*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, rows, 1) // ...and the claimer dies here.
	f := setupOn(t, db, true)
	f.waitFor(t, "row delivered after the lease ran out", func() bool { return readRow(t, f.db, id).delivered })
	require.Len(t, f.slack.Find(bottest.OpPost, nil), 1)
	require.Equal(t, 2, readRow(t, f.db, id).attempts)
}

// TestDeliveryResumesAfterPartialSend: the receipt is posted, the desk card
// fails; the retry posts the desk card and not the receipt again.
func TestDeliveryResumesAfterPartialSend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.slack.Fail(nil, bottest.ServerError())
	ref, _, _ := f.openCase(t, `ask "anything odd in our tenant?"`)
	f.waitFor(t, "opened event delivered", func() bool {
		var n int
		_ = f.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE kind = 'case.opened' AND delivered_at IS NOT NULL`).Scan(&n)
		return n == 1
	})
	require.Len(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == contosoSOC }), 1, "receipt posted once: %s", dump(f.slack.Calls()))
	require.Len(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == deskChannel }), 1, "desk card posted once")
	_ = ref
}

// TestTwoWorkersNeverSendTheSameRow runs two bots (two replicas) on one
// database and checks that every row went out exactly once.
func TestTwoWorkersNeverSendTheSameRow(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	const n = 60
	for i := range n {
		appendSample(t, db, fmt.Sprintf("sample:%d", i))
	}
	a := setupOn(t, db, true)
	b := setupOn(t, db, true)
	testwait.For(t, tenSeconds, "all delivered", func() bool {
		var left int
		_ = db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE delivered_at IS NULL`).Scan(&left)
		return left == 0
	}, &a.settled, &b.settled)
	seen := map[string]int{}
	for _, c := range append(a.slack.Find(bottest.OpPost, nil), b.slack.Find(bottest.OpPost, nil)...) {
		seen[c.Dest.Key]++
	}
	require.Len(t, seen, n)
	for k, v := range seen {
		require.Equal(t, 1, v, "row part %s sent %d times", k, v)
	}
	t.Logf("replica a sent %d, replica b sent %d", len(a.slack.Find(bottest.OpPost, nil)), len(b.slack.Find(bottest.OpPost, nil)))
}

// TestDeliveryPacesPerChannel: with Slack's pace of one message per second
// per channel, two posts into one channel are at least a second apart.
func TestDeliveryPacesPerChannel(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Delivery.Pace = map[Platform]Pace{Slack: {Every: time.Second, Burst: 1}} })
	appendSample(t, f.db, "sample:a")
	appendSample(t, f.db, "sample:b")
	require.True(t, f.slack.WaitFor(5*time.Second, func(cs []bottest.Call) bool { return len(cs) == 2 }))
	cs := f.slack.Calls()
	gap := cs[1].At.Sub(cs[0].At)
	require.GreaterOrEqual(t, gap, 900*time.Millisecond, "posts into one channel %s apart", gap)
}

// TestMetrics: the outbox and command metrics are registered under
// threatdesk_ and move.
func TestMetrics(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.openCase(t, `ask "metrics?"`)
	eventually(t, "metrics gathered", func() bool {
		mfs, err := f.reg.Gather()
		require.NoError(t, err)
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		return names["threatdesk_outbox_depth"] && names["threatdesk_outbox_oldest_pending_age_seconds"] &&
			names["threatdesk_outbox_deliveries_total"] && names["threatdesk_bot_command_handling_seconds"] &&
			names["threatdesk_bot_ack_seconds"] && deliveries(f, "delivered") >= 1
	})
}

// TestNotifyWakesWorkers: with polling every 30 s, a new row is delivered
// at once because its commit NOTIFYs the listening workers.
func TestNotifyWakesWorkers(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Delivery.Poll = 30 * time.Second })
	time.Sleep(300 * time.Millisecond) // the first poll is over; workers sleep
	start := time.Now()
	id := appendSample(t, f.db, "sample:contoso")
	f.waitFor(t, "row delivered", func() bool { return readRow(t, f.db, id).delivered })
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestRequesterSideFailureDoesNotStarveTheDesk: the analyst's receipt was
// deleted on Discord, so every edit of it fails for good; the desk on Slack
// must still see the case taken and its card updated.
func TestRequesterSideFailureDoesNotStarveTheDesk(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, m := f.run(t, Discord, fabAnalyst, fabSOC, `ask "is this beacon normal?"`)
	require.Contains(t, plain(m), "Opened EOD-1")
	posted(t, f.discord, fabSOC, nil, "EOD-1 ·")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Fabrikam")
	f.anchored(t, "EOD-1")
	deskUpdates := func() int {
		return f.slack.Count(bottest.OpUpdate, func(c bottest.Call) bool { return c.Ref.Message == desk.Ref.Message })
	}
	before := deskUpdates()

	unknownMessage := bottest.Permanent("10008")
	f.discord.Fail(unknownMessage, unknownMessage, unknownMessage, unknownMessage)
	_, r := f.press(t, Slack, expert1, ActTake, "EOD-1", desk.Ref)
	_, ok := r.Wait(tenSeconds)
	require.True(t, ok)

	f.waitFor(t, "desk card updated although the receipt cannot be", func() bool { return deskUpdates() > before })
	f.waitFor(t, "a permanent part failure is counted", func() bool { return deliveries(f, "dead") >= 1 })
	var dead int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`).Scan(&dead))
	require.Zero(t, dead, "the event was delivered where it could be, not dropped whole")
}

// rowsOf returns the ids of stream's outbox rows of kind, oldest first.
func rowsOf(t testing.TB, db *pgxpool.Pool, stream, kind string) []int64 {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT id FROM outbox WHERE stream = $1 AND kind = $2 ORDER BY id`, stream, kind)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

// TestDeliveryThreadPartWaitsForPendingAnchor: a requester's reply reaches
// the worker while the desk card it must be relayed under is still being
// retried. The relay is neither lost nor marked delivered: it waits, and
// goes into the card's thread once the card is posted.
func TestDeliveryThreadPartWaitsForPendingAnchor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setupOn(t, pgtest.New(t), false) // deliveries driven by hand
	_, m := f.run(t, Slack, analyst, contosoSOC, `ask "is this beacon normal?"`)
	require.Contains(t, plain(m), "Opened EOD-1")

	f.slack.Fail(nil, bottest.ServerError()) // the receipt goes out, the desk card does not
	n, err := f.bot.DeliverBatch(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	opened := rowsOf(t, f.db, "case:EOD-1", "case.opened")[0]
	require.False(t, readRow(t, f.db, opened).delivered, "the desk card is still to come")
	receipt := posted(t, f.slack, contosoSOC, nil, "EOD-1 ·")

	f.reply(Slack, analyst, receipt.Ref, "it talks to 203.0.113.7 every minute")
	var relay int64
	f.waitFor(t, "the reply recorded", func() bool {
		ids := rowsOf(t, f.db, "case:EOD-1", "case.message_added")
		if len(ids) == 1 {
			relay = ids[0]
		}
		return relay != 0
	})

	// The worker meets the relay before the card it threads under.
	require.NoError(t, f.bot.DeliverRow(ctx, relay))
	st := readRow(t, f.db, relay)
	require.False(t, st.delivered, "a part whose anchor is pending is not delivered")
	require.False(t, st.dead, "nor dead: its anchor may still come")
	require.Contains(t, st.lastError, "desk card of case:EOD-1 is not posted yet")
	require.Empty(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == deskChannel }))

	// The card goes out, then the relay, in its thread.
	eventually(t, "both rows delivered", func() bool {
		_, err := f.bot.DeliverBatch(ctx)
		require.NoError(t, err)
		return readRow(t, f.db, opened).delivered && readRow(t, f.db, relay).delivered
	})
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Contoso")
	posted(t, f.slack, deskChannel, &desk.Ref, "203.0.113.7")
	require.Zero(t, deliveries(f, "dead"))
}

// TestDeliveryDeadAnchor: a card that failed for good takes the parts that
// edit it or post in its thread with it: each is dead, counted and logged
// with the reason, and the other side of a case is told once. An incident's
// notification has no other side.
func TestDeliveryDeadAnchor(t *testing.T) {
	t.Parallel()
	notices := func(a *bottest.Adapter, channel string, thread Ref) []bottest.Call {
		return a.Find(bottest.OpPost, func(c bottest.Call) bool {
			return c.Dest.Channel == channel && c.Dest.Thread != nil && c.Dest.Thread.Message == thread.Message &&
				strings.Contains(plain(c.Message), "could not be delivered")
		})
	}
	t.Run("desk card", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.slack.Fail(nil, bottest.Permanent("channel_not_found")) // receipt posted, desk card refused
		_, m := f.run(t, Slack, analyst, contosoSOC, `ask "is this beacon normal?"`)
		require.Contains(t, plain(m), "Opened EOD-1")
		receipt := posted(t, f.slack, contosoSOC, nil, "EOD-1 ·")
		notice := posted(t, f.slack, contosoSOC, &receipt.Ref, "A message could not be delivered to the desk")
		require.Contains(t, plain(notice.Message), "channel_not_found")

		f.reply(Slack, analyst, receipt.Ref, "first detail")
		f.reply(Slack, analyst, receipt.Ref, "second detail")
		f.waitFor(t, "both relays settled", func() bool {
			ids := rowsOf(t, f.db, "case:EOD-1", "case.message_added")
			if len(ids) != 2 {
				return false
			}
			for _, id := range ids {
				if st := readRow(t, f.db, id); !st.dead && !st.delivered {
					return false
				}
			}
			return true
		})
		for _, id := range rowsOf(t, f.db, "case:EOD-1", "case.message_added") {
			st := readRow(t, f.db, id)
			require.True(t, st.dead, "a relay under a dead card is dead, not delivered")
			require.Contains(t, st.lastError, "desk card of case:EOD-1 failed for good")
			require.Contains(t, st.lastError, "channel_not_found", "with the reason")
		}
		require.Equal(t, 3.0, deliveries(f, "dead"), "the card and both relays are counted")
		require.Len(t, notices(f.slack, contosoSOC, receipt.Ref), 1, "the requester is told once: %s", dump(f.slack.Calls()))
		require.Empty(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == deskChannel }))
	})
	t.Run("receipt", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.discord.Fail(bottest.Permanent("50013")) // the bot may not post in the org's channel
		_, m := f.run(t, Discord, fabAnalyst, fabSOC, `ask "is this beacon normal?"`)
		require.Contains(t, plain(m), "Opened EOD-1")
		desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Fabrikam")
		notice := posted(t, f.slack, deskChannel, &desk.Ref, "A message could not be delivered to the requester")
		require.Contains(t, plain(notice.Message), "50013")

		// The expert takes the case and answers: the desk side goes on,
		// what is for the requester is dead.
		_, r := f.press(t, Slack, expert1, ActTake, "EOD-1", desk.Ref)
		_, ok := r.Wait(tenSeconds)
		require.True(t, ok)
		f.reply(Slack, expert1, desk.Ref, "it is the backup agent")
		f.waitFor(t, "the answer settled", func() bool {
			ids := rowsOf(t, f.db, "case:EOD-1", "case.message_added")
			return len(ids) == 1 && readRow(t, f.db, ids[0]).dead
		})
		posted(t, f.slack, deskChannel, &desk.Ref, "took EOD-1")
		require.Len(t, notices(f.slack, deskChannel, desk.Ref), 1, "the desk is told once")
		require.Empty(t, f.discord.Find(bottest.OpPost, nil))
		// The receipt; the receipt's card edit and note of the take (its
		// in-progress event shows nothing of its own); the answer.
		require.Equal(t, 4.0, deliveries(f, "dead"))
	})
	t.Run("notification", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := pgtest.New(t)
		hunt := notifyingHunt(t, db)
		f := setupWith(t, db, false, NewHuntingIncidents(hunt), casework.Config{})
		f.slack.Fail(bottest.Permanent("not_in_channel"))
		raiseExpertAlert(t, hunt)
		var stream string
		var incident int64
		require.NoError(t, db.QueryRow(ctx, `SELECT stream, (payload->>'incident_id')::bigint FROM outbox WHERE kind = 'incident.notify'`).Scan(&stream, &incident))
		_, err := f.bot.DeliverBatch(ctx)
		require.NoError(t, err)
		require.True(t, readRow(t, db, rowsOf(t, db, stream, "incident.notify")[0]).dead)

		require.NoError(t, hunt.Acknowledge(ctx, "contoso", incident, "slack:T1:U0ANA", "Ana Lyst"))
		_, err = f.bot.DeliverBatch(ctx)
		require.NoError(t, err)
		st := readRow(t, db, rowsOf(t, db, stream, "incident.acknowledged")[0])
		require.True(t, st.dead, "an edit of a card never posted is dead, not delivered")
		require.Contains(t, st.lastError, "notification card of "+stream+" failed for good")
		require.Contains(t, st.lastError, "not_in_channel")
		// The card, then the acknowledgement's card edit and its thread note.
		require.Equal(t, 3.0, deliveries(f, "dead"))
		require.Empty(t, f.slack.Find(bottest.OpPost, nil), "no one to tell: nothing posted")
	})
}

// TestDeliveryUnknownOutcome: a post whose answer was lost (the platform
// stored the message, the worker never learned it) is looked for before it
// is posted again, and found; a post the platform refused is not looked for.
func TestDeliveryUnknownOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		prepare      func(a *bottest.Adapter)
		posts, finds int
	}{
		{"answer lost", func(a *bottest.Adapter) { a.LoseAnswers(1) }, 1, 1},
		{"server error: looked for, not there, posted", func(a *bottest.Adapter) { a.Fail(bottest.ServerError()) }, 1, 1},
		{"rate limited: refused, so not looked for", func(a *bottest.Adapter) { a.Fail(bottest.RateLimited(time.Millisecond)) }, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			tc.prepare(f.slack)
			id := appendSample(t, f.db, "sample:contoso")
			f.waitFor(t, "row delivered", func() bool { return readRow(t, f.db, id).delivered })
			require.Len(t, f.slack.Find(bottest.OpPost, nil), tc.posts, "posted exactly once: %s", dump(f.slack.Calls()))
			require.Len(t, f.slack.Find(bottest.OpFind, nil), tc.finds)
			var ref, marks int
			require.NoError(t, f.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM bot_delivery WHERE outbox_id = $1),
				(SELECT count(*) FROM bot_attempt WHERE outbox_id = $1)`, id).Scan(&ref, &marks))
			require.Equal(t, 1, ref, "the post is recorded")
			require.Zero(t, marks, "and its attempt mark gone")
		})
	}
}

// TestAttemptMarkAlwaysWrites: marking an attempt writes a row version
// every time, also on a later attempt of the same part, so that its
// synchronous commit flushes the WAL past whatever the post shows (an
// ingest may have committed without waiting for the disk). With ON
// CONFLICT DO NOTHING a retry wrote nothing, and flushed nothing.
func TestAttemptMarkAlwaysWrites(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := appendSample(t, f.db, "sample:contoso")
	f.waitFor(t, "row delivered", func() bool { return readRow(t, f.db, id).delivered })
	ctx := context.Background()
	xmin := func() string {
		var x string
		require.NoError(t, f.db.QueryRow(ctx, `SELECT xmin::text FROM bot_attempt WHERE outbox_id = $1 AND part = 'p'`, id).Scan(&x))
		return x
	}
	require.NoError(t, f.bot.MarkAttempt(ctx, id, "p"))
	first := xmin()
	require.NoError(t, f.bot.MarkAttempt(ctx, id, "p"))
	require.NotEqual(t, first, xmin(), "the retry wrote (and so flushed)")

	// And it flushes whatever the server's default (the test server runs
	// with synchronous_commit off): the WAL is on disk past an ingest that
	// committed without waiting.
	lsn := pgtest.AsyncCommit(t, f.db)
	require.NoError(t, f.bot.MarkAttempt(ctx, id, "p"))
	require.True(t, pgtest.Flushed(t, f.db, lsn))
}

// TestEditAfterAFoundPostIsSent: a card whose post lost its answer is found
// by the retry, which renders the incident as it is by then (acknowledged
// meanwhile). What that render shows is not what the found message shows,
// so the acknowledgement's own edit of the card must still be sent. (The
// retry recorded its render as shown, and the edit was skipped: the card
// kept its first text.)
func TestEditAfterAFoundPostIsSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	hunt := notifyingHunt(t, db)
	f := setupWith(t, db, false, NewHuntingIncidents(hunt), casework.Config{})
	f.slack.LoseAnswers(1)
	raiseExpertAlert(t, hunt)
	var incident int64
	require.NoError(t, db.QueryRow(ctx, `SELECT (payload->>'incident_id')::bigint FROM outbox WHERE kind = 'incident.notify'`).Scan(&incident))
	_, err := f.bot.DeliverBatch(ctx)
	require.NoError(t, err)
	posts := f.slack.Find(bottest.OpPost, nil)
	require.Len(t, posts, 1, "posted; its answer lost")
	card := posts[0]

	require.NoError(t, hunt.Acknowledge(ctx, "contoso", incident, "slack:T1:U0ANA", "Ana Lyst"))
	deadline := time.Now().Add(tenSeconds)
	for !f.bot.OutboxIdle(ctx) && time.Now().Before(deadline) {
		time.Sleep(60 * time.Millisecond) // past the retry's backoff
		_, err = f.bot.DeliverBatch(ctx)
		require.NoError(t, err)
	}
	require.True(t, f.bot.OutboxIdle(ctx))
	require.Len(t, f.slack.Find(bottest.OpFind, nil), 1, "the retry looked for the card, and found it")
	require.Len(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Thread == nil }), 1, "not posted again")
	require.NotEmpty(t, f.slack.Find(bottest.OpUpdate, func(c bottest.Call) bool {
		return c.Ref.Message == card.Ref.Message && strings.Contains(plain(c.Message), "Acknowledged by")
	}), "the acknowledgement edits the card: %s", dump(f.slack.Calls()))
}
