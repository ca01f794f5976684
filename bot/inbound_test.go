package bot_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// quickInbound retries inbound work at once and often. lease is how long a
// row stays with the process that stored it: a "crashed" process's rows are
// taken over when it runs out.
func quickInbound(lease time.Duration) option {
	return func(c *Config) {
		c.Inbound = Inbound{Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
			Lease: lease, Timeout: lease * 3 / 4}
	}
}

// failInserts makes the database refuse the next times inserts into table
// with an error (as a failing disk or a broken connection would, on the
// server's side); times < 0 refuses every insert. It returns how many were
// refused so far.
func failInserts(t *testing.T, db *pgxpool.Pool, table string, times int) func() int {
	t.Helper()
	ctx := context.Background()
	cond := "nextval('test_fail_seq') <= " + strconv.Itoa(times)
	if times < 0 {
		cond = "nextval('test_fail_seq') > 0"
	}
	for _, q := range []string{
		`CREATE SEQUENCE test_fail_seq`,
		`CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ` + cond + ` THEN
        RAISE EXCEPTION 'injected failure: the database refused this insert' USING ERRCODE = '58000';
    END IF;
    RETURN NEW;
END $$`,
		`CREATE TRIGGER test_fail BEFORE INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION test_fail()`,
	} {
		_, err := db.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	return func() int {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_fail_seq`).Scan(&n))
		if times >= 0 {
			n = min(n, times)
		}
		return n
	}
}

// settled waits until no outbox row and no inbound event is left to work
// on, so that a duplicate would have been sent by now.
func settled(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	eventually(t, "outbox and inbound work settled", func() bool {
		var n int
		require.NoError(t, db.QueryRow(context.Background(), `SELECT
 (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL) +
 (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL)`).Scan(&n))
		return n == 0
	})
}

func countPosts(a *bottest.Adapter, channel string, thread *Ref, want string) int {
	return a.Count(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Channel == channel && c.Dest.Thread != nil && thread != nil && c.Dest.Thread.Message == thread.Message &&
			strings.Contains(plain(c.Message), want)
	})
}

// TestReplyRelayedOnceAfterADatabaseFailure: the database refuses the
// first attempt to store a thread reply in its case; the reply, already
// acknowledged, is retried from the inbound table and relayed exactly once.
func TestReplyRelayedOnceAfterADatabaseFailure(t *testing.T) {
	t.Parallel()
	f := setup(t, quickInbound(5*time.Second))
	ref, receipt, desk := f.openCase(t, `ask "will the reply survive?"`)
	refused := failInserts(t, f.db, "case_messages", 1)

	require.NoError(t, f.bot.HandleReply(context.Background(), Reply{Parent: desk.Ref, Author: f.user(Slack, expert1), Text: "relayed despite a failure",
		Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: deskChannel, Message: "1700000000.000100"}, Key: "ev-relay-1"}))
	posted(t, f.slack, contosoSOC, &receipt.Ref, "relayed despite a failure")
	settled(t, f.db)
	require.Equal(t, 1, refused(), "the first attempt failed")
	require.Equal(t, 1, countPosts(f.slack, contosoSOC, &receipt.Ref, "relayed despite a failure"))
	var attempts int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT attempts FROM bot_inbound WHERE kind = 'reply'`).Scan(&attempts))
	require.Equal(t, 2, attempts)
	require.Equal(t, casework.StatusNew, f.caseStatus(t, ref))
}

// TestReplyStoredByAStoppedBotIsRelayedByAnother: one process acknowledges
// a thread reply and dies before working on it; another process on the same
// database relays it, once, when the first one's lease runs out.
func TestReplyStoredByAStoppedBotIsRelayedByAnother(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	first := setupOn(t, db, true, quickInbound(2*time.Second))
	_, receipt, desk := first.openCase(t, `ask "who relays this?"`)
	settled(t, db)

	first.bot.CrashAfterAck()
	require.NoError(t, first.bot.HandleReply(context.Background(), Reply{Parent: desk.Ref, Author: first.user(Slack, expert1), Text: "relayed by the second process",
		Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: deskChannel, Message: "1700000000.000200"}, Key: "ev-relay-2"}))
	require.NoError(t, first.bot.Stop())
	require.Zero(t, countPosts(first.slack, contosoSOC, &receipt.Ref, "relayed by the second process"))

	second := setupOn(t, db, true, quickInbound(5*time.Second))
	posted(t, second.slack, contosoSOC, &receipt.Ref, "relayed by the second process")
	settled(t, db)
	require.Equal(t, 1, countPosts(second.slack, contosoSOC, &receipt.Ref, "relayed by the second process"))
	require.Zero(t, countPosts(first.slack, contosoSOC, &receipt.Ref, "relayed by the second process"))
}

// TestCommandAcknowledgedBeforeACrashIsDoneAfterRestart: a process
// acknowledges "/experts ask" and dies before doing the work; after a
// restart on the same database exactly one case is opened, and the analyst
// gets the answer through a responder the adapter rebuilt.
func TestCommandAcknowledgedBeforeACrashIsDoneAfterRestart(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	first := setupOn(t, db, true, quickInbound(time.Second))
	first.bot.CrashAfterAck()
	c, r := first.command(Slack, analyst, contosoSOC, `ask "asked just before a crash"`)
	ack := first.bot.HandleCommand(context.Background(), c)
	require.Nil(t, ack.Message, "acknowledged as accepted")
	require.NoError(t, first.bot.Stop())

	second := setupOn(t, db, true, quickInbound(5*time.Second))
	ok := second.slack.WaitFor(tenSeconds, func(calls []bottest.Call) bool {
		for _, c := range calls {
			if c.Op == bottest.OpRespond && c.Responder == r.ID() && strings.Contains(plain(c.Message), "Opened EOD-1") {
				return true
			}
		}
		return false
	})
	require.True(t, ok, "the analyst is answered after the restart: %s", dump(second.slack.Calls()))
	posted(t, second.slack, deskChannel, nil, "EOD-1 · Contoso")
	settled(t, db)
	l, err := second.cw.List(context.Background(), casework.AllOrgs(), casework.ListFilter{})
	require.NoError(t, err)
	require.Equal(t, 1, l.Total, "exactly one case")
	require.Equal(t, 1, second.slack.Count(bottest.OpRespond, nil), "answered once")
	require.Empty(t, r.Responses(), "the first process never answered")
}

// TestDatabaseUnreachable: with the database gone, commands, buttons and
// forms are answered at once, privately, that threatdesk cannot reach its
// database; a form submission keeps its text with that error; a thread reply
// is refused to the adapter (which then does not acknowledge it); and
// nothing is stored.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	healthy, flaky, outage := pgtest.NewWithOutage(t)
	f := setupOn(t, flaky, true, quickInbound(5*time.Second))
	ref, _, desk := f.openCase(t, `ask "before the outage"`)
	settled(t, healthy)
	var before int
	require.NoError(t, healthy.QueryRow(context.Background(), `SELECT count(*) FROM bot_inbound`).Scan(&before))

	outage.Down(t)
	ctx := context.Background()
	unreachable := func(what string, ack Ack) {
		t.Helper()
		require.NotNil(t, ack.Message, what)
		require.True(t, ack.Private, what)
		require.Nil(t, ack.Form, what)
		require.Contains(t, plain(*ack.Message), "cannot reach its database", what)
	}
	c, r := f.command(Slack, analyst, contosoSOC, `alert `+alertID+` "asked during the outage"`)
	unreachable("a command", f.bot.HandleCommand(ctx, c))
	c, _ = f.command(Slack, analyst, contosoSOC, `ask`)
	unreachable("a command that opens a form", f.bot.HandleCommand(ctx, c))
	ack, br := f.press(t, Slack, expert1, ActTake, ref, desk.Ref)
	unreachable("a button", ack)
	sa, sr := f.submit(t, Slack, analyst, Form{ID: "ask", State: "c=" + contosoSOC}, map[string]string{"question": "submitted during the outage"})
	require.Contains(t, sa.Errors["question"], "cannot reach its database")
	err := f.bot.HandleReply(ctx, Reply{Parent: desk.Ref, Author: f.user(Slack, expert1), Text: "replied during the outage",
		Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: deskChannel, Message: "1700000000.000300"}, Key: "ev-outage"})
	require.Error(t, err)

	outage.Up()
	var after int
	require.NoError(t, healthy.QueryRow(ctx, `SELECT count(*) FROM bot_inbound`).Scan(&after))
	require.Equal(t, before, after, "nothing was stored")
	require.Empty(t, r.Responses())
	require.Empty(t, br.Responses())
	require.Empty(t, sr.Responses())
	var status string
	require.NoError(t, healthy.QueryRow(ctx, `SELECT status FROM cases`).Scan(&status), "one case, the one opened before")
	require.Equal(t, "new", status, "the button did not take it")
	require.Equal(t, 1.0, inboundEvents(t, f, "command", "stored"), "only the command before the outage was stored")
	for _, kind := range []string{"command", "form", "action", "submit", "reply"} {
		require.Equal(t, 1.0, inboundEvents(t, f, kind, "unavailable"), kind)
	}
}

// TestCommandRightAfterTheServerComesBack: the server restarts (every
// session ended) between two commands less than a second apart, so the pool
// hands out a connection the server has closed without pinging it first. The
// command must be stored on a fresh connection and done, not refused as if
// the database were still unreachable; work that fails on such a connection
// is retried at once, not after its lease.
func TestCommandRightAfterTheServerComesBack(t *testing.T) {
	t.Parallel()
	healthy, flaky, outage := pgtest.NewWithOutage(t)
	// A lease longer than the test's patience: a retry that could not be
	// scheduled would wait for it.
	f := setupOn(t, flaky, true, quickInbound(30*time.Second))
	f.openCase(t, `ask "before the restart"`)
	settled(t, healthy)
	ctx := context.Background()
	// Use every store connection now, so that none has been idle long
	// enough to be pinged when the next command takes it.
	for i := range 8 {
		_, err := f.bot.Seen(ctx, fmt.Sprintf("slack:sig:%02x", i))
		require.NoError(t, err)
	}
	outage.Down(t)
	outage.Up()

	ack, m := f.run(t, Slack, analyst, contosoSOC, `ask "right after the restart"`)
	require.Nil(t, ack.Message, "acknowledged as accepted, not refused: %v", ack.Message)
	require.Contains(t, plain(m), "Opened EOD-2")
	settled(t, healthy)
	var cases int
	require.NoError(t, healthy.QueryRow(ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.Equal(t, 2, cases)
}

// TestInboundWorkThatKeepsFailingEndsDead: work the database refuses every
// time is retried, then given up: the row is dead with the reason, counted,
// and the person is told.
func TestInboundWorkThatKeepsFailingEndsDead(t *testing.T) {
	t.Parallel()
	f := setup(t, quickInbound(5*time.Second), func(c *Config) { c.Inbound.MaxAttempts = 3 })
	ref, _, _ := f.openCase(t, `ask "notes will fail"`)
	failInserts(t, f.db, "case_messages", -1)
	c, r := f.command(Slack, expert1, deskChannel, `note `+ref+` "this note cannot be stored"`)
	f.bot.HandleCommand(context.Background(), c)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "could not finish this after several tries")
	settled(t, f.db)
	var attempts int
	var lastError string
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT attempts, last_error FROM bot_inbound WHERE dead_at IS NOT NULL`).Scan(&attempts, &lastError))
	require.Equal(t, 3, attempts)
	require.Contains(t, lastError, "injected failure")
	require.Equal(t, 1.0, inboundEvents(t, f, "command", "dead"))
	require.Len(t, r.Responses(), 1, "told once")
}

// inboundEvents reads threatdesk_inbound_events_total{kind, result}.
func inboundEvents(t *testing.T, f *fixture, kind, result string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_inbound_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestInboundKeysArePruned: replay keys go after ten minutes, settled keys
// after the retention (two days), dead rows after a week; work still to do
// stays whatever its age. Bot.Seen is the adapters' replay cache.
func TestInboundKeysArePruned(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	seen, err := f.bot.Seen(ctx, "slack:sig:00ff")
	require.NoError(t, err)
	require.False(t, seen)
	seen, err = f.bot.Seen(ctx, "slack:sig:00ff")
	require.NoError(t, err)
	require.True(t, seen, "a replay, on any replica")
	_, err = f.db.Exec(ctx, `
INSERT INTO bot_inbound (key, platform, kind, received_at, done_at, dead_at) VALUES
  ('slack:sig:old',        'slack', 'replay',  now() - interval '20 minutes', now(), NULL),
  ('slack:command:old',    'slack', 'command', now() - interval '3 days',     now(), NULL),
  ('slack:command:recent', 'slack', 'command', now() - interval '1 day',      now(), NULL),
  ('slack:action:dead',    'slack', 'action',  now() - interval '3 days',     NULL,  now()),
  ('slack:action:olddead', 'slack', 'action',  now() - interval '8 days',     NULL,  now()),
  ('slack:submit:pending', 'slack', 'submit',  now() - interval '3 days',     NULL,  NULL)`)
	require.NoError(t, err)
	f.bot.PruneInbound(ctx)
	rows, err := f.db.Query(ctx, `SELECT key FROM bot_inbound ORDER BY key`)
	require.NoError(t, err)
	var keys []string
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"slack:action:dead", "slack:command:recent", "slack:sig:00ff", "slack:submit:pending"}, keys)
}

// TestCommandRightAfterTheServerDroppedTheConnections: the server ended
// every connection (PostgreSQL restarted, an operator terminated them). The
// next command, sooner than the pool checks an idle connection, finds the
// one kept for inserts broken before anything was sent: it is stored on a
// new connection, not answered that threatdesk cannot reach its database.
func TestCommandRightAfterTheServerDroppedTheConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := pgtest.NewWithURL(t)
	f := setupOn(t, db, true, quickInbound(5*time.Second))
	c1, r1 := f.command(Slack, analyst, contosoSOC, `ask "before the drop"`)
	require.Nil(t, f.bot.HandleCommand(ctx, c1).Message, "stored")

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	// (In the select list, pg_terminate_backend runs only for the rows the
	// WHERE clause kept: this database's, not this connection.)
	rows, err := admin.Query(ctx, `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int32, error) {
		var pid int32
		var ok bool
		return pid, r.Scan(&pid, &ok)
	})
	require.NoError(t, err)
	require.NotEmpty(t, pids)
	for { // terminating is asynchronous (and the bot's listeners connect again at once)
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)`, pids).Scan(&n))
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	c2, r2 := f.command(Slack, analyst, contosoSOC, `ask "right after the drop"`)
	ack := f.bot.HandleCommand(ctx, c2)
	require.Nil(t, ack.Message, "stored, not refused")
	for _, r := range []*bottest.Responder{r1, r2} {
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok)
		require.Contains(t, plain(got.Message), "Opened EOD-")
	}
}

// TestNoteWorkedAgainIsStoredOnce: a process that dies after storing an
// internal note and before marking its command done leaves the command to
// be worked again; the note is stored once. (It was stored twice.)
func TestNoteWorkedAgainIsStoredOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	ref, _, _ := f.openCase(t, `ask "is this beacon normal?"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "note "+ref+" check the proxy logs first")
	require.Contains(t, plain(m), "Internal note added to "+ref)
	notes := func() int {
		var n int
		require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FROM case_messages WHERE internal AND body = 'check the proxy logs first'`).Scan(&n))
		return n
	}
	require.Equal(t, 1, notes())

	// As after a crash between the note's commit and the row's settling.
	f.commandWorkedAgain(t, "note")
	require.Equal(t, 1, notes(), "stored once")
}

// TestAddDetailsWorkedAgainIsStoredOnce: "Add details" worked again after a
// crash between storing it and settling the submission is stored (and
// relayed to the desk) once. It was stored and posted twice: only the
// note was keyed.
func TestAddDetailsWorkedAgainIsStoredOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	ref, _, _ := f.openCase(t, `ask "is this beacon normal?"`)
	r := bottest.NewResponder()
	f.bot.HandleSubmit(ctx, Submission{User: f.user(Slack, analyst), FormID: "add_details", State: "ref=" + ref, Channel: contosoSOC,
		Values: map[string]string{"text": "the host is a build server"}, Key: "details-1", Respond: r})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Added to "+ref)
	details := func() int {
		var n int
		require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FROM case_messages WHERE body = 'the host is a build server'`).Scan(&n))
		return n
	}
	require.Equal(t, 1, details())

	// As after a crash between the message's commit and the row's settling.
	tag, err := f.db.Exec(ctx, `UPDATE bot_inbound SET done_at = NULL, locked_until = now() - interval '1 second' WHERE kind = 'submit'`)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	f.waitFor(t, "the submission worked again", func() bool { return f.bot.InboundIdle(ctx) })
	require.Equal(t, 1, details(), "stored once")
}

// TestReplyMarkFollowsTheNewestReply: a Discord adapter catching up on a
// thread after a new gateway session reads after the newest message taken
// from it (the thread's start when none was), never back; threads that
// hang off no case are not read.
func TestReplyMarkFollowsTheNewestReply(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, m := f.run(t, Discord, fabAnalyst, fabSOC, `device 111e6dd8c833c8a052ea231ec1b19adaf497b625 "marks?"`)
	require.Contains(t, plain(m), "Opened EOD-1")
	receipt := posted(t, f.discord, fabSOC, nil, "EOD-1 ·")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Fabrikam")
	f.anchored(t, "EOD-1")
	ctx := context.Background()
	thread := receipt.Ref.Message
	mark := func() string {
		after, ok, err := f.bot.ReplyMark(ctx, receipt.Ref)
		require.NoError(t, err)
		require.True(t, ok)
		return after
	}
	before := time.Now()
	after := mark()
	start, _ := MarkValue(Discord, thread)
	got, _ := MarkValue(Discord, after)
	require.GreaterOrEqual(t, got, max(start, MarkAt(Discord, before.Add(-48*time.Hour))),
		"nothing taken yet: from the thread's start, no earlier than the inbound keys reach back")
	require.LessOrEqual(t, got, max(start, MarkAt(Discord, time.Now().Add(-48*time.Hour))))

	base := MarkAt(Discord, time.Now())
	id := func(n int64) string { return MarkID(Discord, base+n) }
	say := func(n int64, hold bool) {
		require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt.Ref, Author: f.user(Discord, fabAnalyst), Text: "reply " + id(n), Key: id(n),
			Message: Ref{Platform: Discord, Workspace: receipt.Ref.Workspace, Channel: thread, Message: id(n)}, HoldMark: hold}))
		posted(t, f.slack, deskChannel, &desk.Ref, "reply "+id(n)) // stored and worked
	}
	say(900, false)
	require.Equal(t, id(900), mark(), "a stored reply moves the mark")
	say(800, false) // older, handed over late
	require.Equal(t, id(900), mark(), "never back")
	say(1000, true) // an older one is still waiting to be handed over
	require.Equal(t, id(900), mark(), "held")
	f.bot.MarkRead(ctx, receipt.Ref, id(1100))
	require.Equal(t, id(1100), mark(), "read through")
	f.bot.MarkRead(ctx, receipt.Ref, thread)
	require.Equal(t, id(1100), mark(), "a catch-up never moves it back to the thread's start")

	_, ok, err := f.bot.ReplyMark(ctx, Ref{Platform: Discord, Workspace: receipt.Ref.Workspace, Channel: fabSOC, Message: "1300000000000000001"})
	require.NoError(t, err)
	require.False(t, ok, "not a case's thread")

	// The threads a Slack catch-up reads: a case's thread with its mark;
	// one of three days ago from 48 hours ago; none older than asked.
	old := time.Now().Add(-72 * time.Hour)
	oldTS := MarkID(Slack, MarkAt(Slack, old))
	_, err = f.db.Exec(ctx, `INSERT INTO bot_anchor (stream, target, platform, workspace, channel, message, created_at) VALUES
		('case:EOD-77', 'receipt', 'slack', 'T1', 'C77', $1, $2), ('case:EOD-78', 'receipt', 'slack', 'T1', 'C78', '1500000000.000100', $3),
		('incident:9', 'card', 'slack', 'T1', 'C79', $1, $2)`, oldTS, old, time.Now().Add(-40*24*time.Hour))
	require.NoError(t, err)
	ts, err := f.bot.CaseThreads(ctx, Slack, time.Now().Add(-30*24*time.Hour), 10)
	require.NoError(t, err)
	var slack []ThreadMark
	for _, x := range ts {
		if x.Parent.Workspace == "T1" {
			slack = append(slack, x)
		}
	}
	require.Len(t, slack, 1, "a case's thread of the last 30 days: %+v", ts)
	v, ok := MarkValue(Slack, slack[0].After)
	require.True(t, ok)
	require.InDelta(t, MarkAt(Slack, time.Now().Add(-48*time.Hour)), v, float64(time.Minute.Microseconds()), "read from 48 hours ago, not the thread's start")
	ds, err := f.bot.CaseThreads(ctx, Discord, time.Now().Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Contains(t, ds, ThreadMark{Parent: Ref{Platform: Discord, Workspace: receipt.Ref.Workspace, Channel: receipt.Ref.Channel, Message: thread}, After: id(1100)})
}

// TestStoppingGivesBackRowsNotBegun: a bot stopping cleanly (a rolling
// restart) gives back the outbox rows it claimed and had not begun; they
// waited out their lease (two minutes by default), and every later row of
// their streams with them (from a review).
func TestStoppingGivesBackRowsNotBegun(t *testing.T) {
	t.Parallel()
	f := setupWith(t, pgtest.New(t), false, nil, casework.Config{})
	ctx := context.Background()
	for i := range 4 { // four announcements waiting when the bot starts
		_, _, err := f.cw.Open(ctx, casework.OpenRequest{Key: fmt.Sprintf("stop-%d", i), Org: "contoso",
			Subject: casework.Subject{Kind: casework.SubjectNone}, Question: fmt.Sprintf("question %d", i),
			Requester: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: analyst}})
		require.NoError(t, err)
	}
	for _, ch := range []string{contosoSOC, deskChannel} {
		release := f.slack.HoldPosts(ch) // every post waits
		t.Cleanup(release)
	}
	require.NoError(t, f.bot.Start(ctx))
	require.Eventually(t, func() bool { // the database signals nothing: look every 10 ms
		var n int
		return f.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND locked_until > now()`).Scan(&n) == nil && n == 4
	}, 10*time.Second, 10*time.Millisecond, "the four announcements claimed")
	require.Eventually(t, func() bool {
		var n int
		return f.db.QueryRow(ctx, `SELECT count(*) FROM bot_attempt`).Scan(&n) == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond, "a post under way")
	require.NoError(t, f.bot.Stop())
	var leased, free int
	require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE locked_until > now()), count(*) FILTER (WHERE locked_until IS NULL)
FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&leased, &free))
	require.LessOrEqual(t, leased, 2, "only the rows in flight (one a worker) keep their lease")
	require.GreaterOrEqual(t, free, 2, "the rows not begun are given back")
}

// TestUnconfirmedStoreIsNotCalledNothingDone: a command whose insert
// timed out after reaching the database may have been stored and then be
// worked once its lease runs out; the person was told "nothing was done
// or changed. Try again", and trying again made a second case. When the
// row cannot be taken back, they are told to check first (from a review).
func TestUnconfirmedStoreIsNotCalledNothingDone(t *testing.T) {
	t.Parallel()
	f := setupWith(t, pgtest.New(t), true, nil, casework.Config{}, func(c *Config) { c.Inbound.StoreTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	tx, err := f.db.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE bot_inbound IN ACCESS EXCLUSIVE MODE`) // the database answers too slowly
	require.NoError(t, err)
	ack, m := f.run(t, Slack, analyst, contosoSOC, "ask is ws-100 beaconing?")
	require.True(t, ack.Private)
	require.Contains(t, plain(m), "could not confirm it took this in")
	require.NotContains(t, plain(m), "nothing was done")
}

// TestTakeBackSettlesAStoredEvent: an event stored by an insert whose
// answer was lost is settled with no work, so that "nothing was done"
// stays true; one never stored cannot come later (its key is taken); one
// already worked is not taken back (from a review: a DELETE could miss a
// row still committing).
func TestTakeBackSettlesAStoredEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.db.Exec(ctx, `INSERT INTO bot_inbound (key, platform, kind, payload, locked_until, attempts)
VALUES ('slack:command:lost', 'slack', 'command', '{}', now() + interval '1 minute', 1),
       ('slack:command:worked', 'slack', 'command', '{}', NULL, 1)`)
	require.NoError(t, err)
	_, err = f.db.Exec(ctx, `UPDATE bot_inbound SET done_at = now() WHERE key = 'slack:command:worked'`)
	require.NoError(t, err)
	require.True(t, f.bot.TakeBack(ctx, "slack:command:lost", Slack, "command"), "stored: settled unworked")
	require.True(t, f.bot.TakeBack(ctx, "slack:command:never", Slack, "command"), "never stored: its key is taken")
	require.False(t, f.bot.TakeBack(ctx, "slack:command:worked", Slack, "command"), "already worked: not taken back")
	var pending int
	require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL`).Scan(&pending))
	require.Zero(t, pending, "nothing left for a worker")
}

// TestStatusChangeWorkedAgainIsMadeOnce: "/experts more-info" committed,
// then the process died before settling the command, and the requester
// answered meanwhile (the case back in progress). Worked again when its
// lease ran out, it put the case back to waiting on the requester and
// posted the request a second time (from a crash-safety review). A
// status change is keyed by its inbound event: made once.
func TestStatusChangeWorkedAgainIsMadeOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	ref, receipt, _ := f.openCase(t, `ask "is this beacon normal?"`)
	f.run(t, Slack, expert1, deskChannel, "take "+ref)
	_, m := f.run(t, Slack, expert1, deskChannel, "more-info "+ref+` "send the process tree"`)
	require.Contains(t, plain(m), "more information needed")
	settled(t, f.db)

	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt.Ref, Author: f.user(Slack, analyst), Text: "tree attached",
		Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000900"}, Key: "ev-answer-1"}))
	settled(t, f.db)
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref))

	// As after a crash between the transition's commit and the row's settling.
	f.commandWorkedAgain(t, "more-info")
	settled(t, f.db)
	var n int
	require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FROM case_timeline WHERE kind = 'case.status_changed' AND detail::jsonb->>'to' = 'more_info_needed'`).Scan(&n))
	require.Equal(t, 1, n, "asked once")
	require.Equal(t, 1, countPosts(f.slack, contosoSOC, &receipt.Ref, "send the process tree"), "posted once")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref))
}

// TestTakeWithoutACaseWorkedAgainTakesItOnce: "/experts take" (the most
// urgent new case) committed, then the process died before settling the
// command. Worked again, it took the next new case as well, which then
// sat in progress with nobody aware of it (from a crash-safety review).
// It finds the case it took the first time.
func TestTakeWithoutACaseWorkedAgainTakesItOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	first, _, _ := f.openCase(t, `ask "first question"`)
	second, _, _ := f.openCase(t, `ask "second question"`)
	_, m := f.run(t, Slack, expert1, deskChannel, "take")
	require.Contains(t, plain(m), "You have "+first)
	settled(t, f.db)

	// As after a crash between the take's commit and the row's settling.
	f.commandWorkedAgain(t, "take")
	settled(t, f.db)
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, first))
	require.Equal(t, casework.StatusNew, f.caseStatus(t, second), "the retry took no case nobody asked for")
}

// commandWorkedAgain un-settles the stored command called name, as a
// crash between its work's commit and the row's settling leaves it, and
// waits until it is worked again.
func (f *fixture) commandWorkedAgain(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	tag, err := f.db.Exec(ctx, `UPDATE bot_inbound SET done_at = NULL, locked_until = now() - interval '1 second'
WHERE kind = 'command' AND payload->'command'->>'Name' = $1`, name)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	f.waitFor(t, "the command worked again", func() bool { return f.bot.InboundIdle(ctx) })
}

// TestInboundSettleAfterTheLeaseRanOutLeavesTheNewClaim: a worker whose
// lease ran out while it worked an event (a stall), and whose event
// another worker claimed since, settles nothing: settled by key alone it
// freed the second worker's claim (a third then did the work beside it)
// or ended the event under it.
func TestInboundSettleAfterTheLeaseRanOutLeavesTheNewClaim(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.db.Exec(ctx, `INSERT INTO bot_inbound (key, platform, kind, payload, locked_until, attempts)
VALUES ('slack:command:stalled', 'slack', 'command', '{}', now() + interval '1 hour', 2)`)
	require.NoError(t, err)
	f.bot.SettleStalled(ctx, "slack:command:stalled", Slack, "command", 1)
	var claimed, open bool
	require.NoError(t, f.db.QueryRow(ctx, `SELECT locked_until > now() + interval '30 minutes', done_at IS NULL AND dead_at IS NULL
FROM bot_inbound WHERE key = 'slack:command:stalled'`).Scan(&claimed, &open))
	require.True(t, claimed, "the second worker's claim stands")
	require.True(t, open, "the event is the second worker's to settle")
}
