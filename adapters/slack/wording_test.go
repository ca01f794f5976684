package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Issue 14 ("what people see") over Slack: the real bot, casework (and
// hunting where an item needs it) on Postgres, the adapter in Socket Mode,
// and the fake Slack; each test checks what the person sees.

const (
	wTeam    = "T0CONTOSO"
	wSOC     = "C0CONTOSOSOC"
	wDesk    = "C0EXPERTDESK"
	wAnalyst = "U0ANALYST1"
	wPeer    = "U0ANALYST2"
	wExpert  = "U0EXPERT1"
	wManager = "U0MANAGER1"
	wTenant  = "a839b112-1253-6432-9bf6-94542403f21c"
	wAlert   = "da637551227677560813_-961444813"
)

// wordingAlert is a Defender alert of the expert hunting service: always
// notified, at once; one alert on one device.
const wordingAlert = `{
  "id": "da637472900382838869_1364969609", "severity": "High", "status": "New", "detectionSource": "ThreatExperts",
  "category": "LateralMovement", "title": "Hands-on-keyboard attack via PsExec", "description": "An operator moved laterally.",
  "alertCreationTime": "2026-11-26T20:33:57.7220239Z", "firstEventTime": "2026-11-26T20:31:32.9562661Z",
  "lastEventTime": "2026-11-26T20:31:33.0577322Z", "lastUpdateTime": "2026-11-26T20:33:59.2Z",
  "machineId": "111e6dd8c833c8a052ea231ec1b19adaf497b625", "computerDnsName": "ws-017.contoso.local",
  "aadTenantId": "a839b112-1253-6432-9bf6-94542403f21c", "mitreTechniques": ["T1021"]
}`

// wordingSlots bounds how many of these tests run at once: each starts a
// bot, a database and a fake, and the machine has two cores shared with the
// rest of the suite.
var wordingSlots = make(chan struct{}, 2)

type wordingOpts struct {
	hunt     bool // wire hunting, with wordingAlert ingested
	casework casework.Config
	// history paces history reads, the fake's and the adapter's
	// (HistoryInterval: an app distributed outside the Marketplace).
	history time.Duration
}

// paced is the adapter's pace for a fake that allows a read per d: a
// quarter more, as 61s is for Slack's minute, for the time a call takes
// to reach the fake.
func paced(d time.Duration) time.Duration { return d + d/4 }

// wording is one Slack test's world.
type wording struct {
	t    *testing.T
	ctx  context.Context
	fake *slackfake.Server
	bot  *bot.Bot
	db   *pgxpool.Pool
	cw   *casework.Service
	hunt *hunting.Service
}

// settled waits until every inbound event and outbox row is settled. Only
// the bot's own tests can hear a row settle (bot.OnSettled), so this polls,
// as the bot's tests do for what nothing signals.
func (w *wording) settled(what string) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !w.idle() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idle reports whether every inbound event and outbox row is settled.
func (w *wording) idle() bool {
	var n int
	err := w.db.QueryRow(w.ctx, `SELECT (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL)
 + (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL)`).Scan(&n)
	return err == nil && n == 0
}

func newWording(t *testing.T, o wordingOpts) *wording {
	t.Helper()
	wordingSlots <- struct{}{}
	t.Cleanup(func() { <-wordingSlots })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   wTeam,
		Channels: []slackfake.Channel{{ID: wSOC, Name: "soc"}, {ID: wDesk, Name: "expert-desk"}, {ID: "C0NEWROOM", Name: "new-room", NotMember: true}},
		Users: []slackfake.User{{ID: wAnalyst, Name: "alice", DisplayName: "Alice"}, {ID: wPeer, Name: "bob", DisplayName: "Bob"},
			{ID: wExpert, Name: "eve", RealName: "Eve Expert"}, {ID: wManager, Name: "max", DisplayName: "Max"}},
		HistoryInterval: o.history,
	})
	db := pgtest.New(t)
	tw := &testWriter{t: t}
	t.Cleanup(tw.done)
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := secrets.Generate()
	require.NoError(t, err)
	cc := o.casework
	cc.Key = key
	cw, err := casework.New(db, cc, nil, nil)
	require.NoError(t, err)
	w := &wording{t: t, ctx: ctx, fake: fake, cw: cw, db: db}
	var incidents bot.Incidents
	if o.hunt {
		w.hunt, err = hunting.New(db, hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{wTenant}}}, NotifyScore: 1, GroupWait: time.Millisecond}, nil, nil)
		require.NoError(t, err)
		_, err = w.hunt.Ingest(ctx, []hunting.RawAlert{hunting.RawAlert(wordingAlert)})
		require.NoError(t, err)
		incidents = bot.NewHuntingIncidents(w.hunt)
	}
	cfg := bot.Config{
		Orgs:     []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: wTeam, Channels: []string{wSOC}}}},
		Desk:     bot.Desk{Slack: &bot.SlackDesk{Team: wTeam, Channel: wDesk}},
		Experts:  bot.UserIDs{Slack: []string{wExpert}},
		Managers: bot.UserIDs{Slack: []string{wManager}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
		Inbound: bot.Inbound{BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, StoreTimeout: 2 * time.Second},
	}
	w.bot, err = bot.New(cfg, db, bot.NewCaseworkCases(cw), incidents, log, prometheus.NewRegistry())
	require.NoError(t, err)
	opts := fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), AppToken: secrets.String(opts.AppToken),
		APIURL: fake.APIURL(), Replays: w.bot, HistoryInterval: paced(o.history)}, log, prometheus.NewRegistry(), w.bot)
	require.NoError(t, err)
	require.NoError(t, w.bot.Register(a))
	require.NoError(t, w.bot.Start(ctx))
	t.Cleanup(func() { require.NoError(t, w.bot.Stop()) })
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, fake.WaitConnected(ctx))
	t.Cleanup(func() { require.Empty(t, fake.Violations()) })
	return w
}

// analystSays posts text as the analyst in the SOC channel's thread ts,
// and delivers its message event.
func (w *wording) analystSays(ts, text string) slackfake.Message {
	w.t.Helper()
	m, ev := w.fake.UserMessage(wSOC, ts, wAnalyst, text)
	_, err := w.fake.Event(w.ctx, ev, 0)
	require.NoError(w.t, err)
	return m
}

// wait waits until cond holds, checking whenever the fake records something.
func (w *wording) wait(what string, cond func() bool) {
	w.t.Helper()
	if !testwait.Until(20*time.Second, cond, w.fake) {
		for _, m := range w.fake.Messages("") {
			w.t.Logf("message %s %s thread=%q edits=%d: %s", m.Channel, m.TS, m.ThreadTS, m.Edits, texts(w.t, m.Blocks))
		}
		for _, r := range w.fake.Responses() {
			w.t.Logf("response %s: %s %s", r.ResponseType, r.Text, texts(w.t, r.Blocks))
		}
		w.t.Fatalf("timed out waiting for %s", what)
	}
}

// seen is what a reader sees of a message or response.
func (w *wording) seen(text string, blocks json.RawMessage) string {
	return text + "\n" + texts(w.t, blocks)
}

// command runs /experts text as user in channel and returns how many
// responses there were before it.
func (w *wording) command(user, channel, text string) int {
	w.t.Helper()
	before := len(w.fake.Responses())
	_, err := w.fake.Command(w.ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, TeamID: wTeam, Text: text})
	require.NoError(w.t, err)
	return before
}

// answer waits for a response after the first `after` containing want.
func (w *wording) answer(after int, want string) slackfake.Response {
	w.t.Helper()
	var got slackfake.Response
	w.wait("an answer containing "+want, func() bool {
		rs := w.fake.Responses()
		for _, r := range rs[min(after, len(rs)):] {
			if strings.Contains(w.seen(r.Text, r.Blocks), want) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// top waits for a top-level message in channel containing want.
func (w *wording) top(channel, want string) slackfake.Message {
	w.t.Helper()
	var got slackfake.Message
	w.wait(want+" in "+channel, func() bool {
		for _, m := range w.fake.Messages(channel) {
			if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(w.seen(m.Text, m.Blocks), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// inThread waits for a reply in the thread of ts containing want.
func (w *wording) inThread(channel, ts, want string) slackfake.Message {
	w.t.Helper()
	var got slackfake.Message
	w.wait(want+" in the thread of "+ts, func() bool {
		for _, m := range w.fake.Replies(channel, ts) {
			if strings.Contains(w.seen(m.Text, m.Blocks), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// press presses action on a stored message and acknowledges it.
func (w *wording) press(channel, ts, user, action string) {
	w.t.Helper()
	p, err := w.fake.Press(channel, ts, user, action)
	require.NoError(w.t, err)
	_, err = w.fake.Interactive(w.ctx, p)
	require.NoError(w.t, err)
}

// pressAnswer presses action on an ephemeral answer shown in channel.
func (w *wording) pressAnswer(r slackfake.Response, channel, user, action string) int {
	w.t.Helper()
	before := len(w.fake.Responses())
	p, err := w.fake.PressEphemeral(r, channel, user, action)
	require.NoError(w.t, err)
	_, err = w.fake.Interactive(w.ctx, p)
	require.NoError(w.t, err)
	return before
}

// view waits for the n-th view opened (from 1) and returns it.
func (w *wording) view(n int) slackfake.View {
	w.t.Helper()
	w.wait("a form opens", func() bool { return len(w.fake.Views()) >= n })
	return w.fake.Views()[n-1]
}

// submit submits a view and returns the acknowledgement's payload.
func (w *wording) submit(v slackfake.View, user string, values map[string]string) string {
	w.t.Helper()
	p, err := w.fake.Submit(v, user, values)
	require.NoError(w.t, err)
	ack, err := w.fake.Interactive(w.ctx, p)
	require.NoError(w.t, err)
	return string(ack.Payload)
}

// open asks a question in the SOC channel and returns the receipt and
// the desk card.
func (w *wording) open(text, ref string) (receipt, card slackfake.Message) {
	w.t.Helper()
	w.answer(w.command(wAnalyst, wSOC, text), "Opened "+ref)
	return w.top(wSOC, ref+" ·"), w.top(wDesk, ref+" · Contoso")
}

// TestSlackCasesMine: an analyst's "mine" lists the cases they asked; an
// expert's the cases assigned to them (item 1).
func TestSlackCasesMine(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	_, card := w.open(`ask "is this beacon normal?"`, "EOD-1")
	r := w.answer(w.command(wAnalyst, wSOC, "cases mine"), "Your cases")
	require.Contains(t, w.seen(r.Text, r.Blocks), "EOD-1")
	w.answer(w.command(wPeer, wSOC, "cases mine"), "No cases.")
	w.answer(w.command(wExpert, wDesk, "cases mine"), "No cases.")
	w.press(wDesk, card.TS, wExpert, "take")
	w.inThread(wDesk, card.TS, "took EOD-1")
	r = w.answer(w.command(wExpert, wDesk, "cases mine"), "Your cases")
	require.Contains(t, w.seen(r.Text, r.Blocks), "EOD-1")
}

// TestSlackTakeSaidOnce: a take posts one note in each thread and edits
// each card once (item 3).
func TestSlackTakeSaidOnce(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	receipt, card := w.open(`ask "once?"`, "EOD-1")
	w.settled("the opening delivered")
	w.press(wDesk, card.TS, wExpert, "take")
	w.inThread(wDesk, card.TS, "Eve Expert (threat expert) took EOD-1. It is in progress.")
	w.inThread(wSOC, receipt.TS, "Eve Expert (threat expert) took EOD-1. It is in progress.")
	w.settled("the take delivered")
	for _, m := range []slackfake.Message{receipt, card} {
		require.Len(t, w.fake.Replies(m.Channel, m.TS), 1, "one note in the thread of %s", m.Channel)
		got, _ := w.fake.Message(m.Channel, m.TS)
		require.Equal(t, 1, got.Edits, "one edit of the card in %s", m.Channel)
		require.Contains(t, w.seen(got.Text, got.Blocks), "In progress")
	}
}

// TestSlackStatusForms: Need more time opens a form with a pre-filled
// reason that the requester sees; Need file sample insists on the file
// when the case is not about one (item 4).
func TestSlackStatusForms(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	receipt, card := w.open(`alert `+wAlert+` "phishing?"`, "EOD-1")
	w.press(wDesk, card.TS, wExpert, "take")
	w.inThread(wSOC, receipt.TS, "took EOD-1")

	w.press(wDesk, card.TS, wExpert, "more_time")
	v := w.view(1)
	require.Contains(t, string(v.View), "Analysis needs more time", "the reason is pre-filled")
	w.submit(v, wExpert, map[string]string{"text": "Analysis needs more time: the sandbox run takes another hour"})
	note := w.inThread(wSOC, receipt.TS, "EOD-1: Needs more time")
	require.Contains(t, w.seen(note.Text, note.Blocks), "the sandbox run takes another hour")

	w.press(wDesk, card.TS, wExpert, "sample")
	v = w.view(2)
	var view struct {
		Blocks []struct {
			BlockID  string `json:"block_id"`
			Optional bool   `json:"optional"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(v.View, &view))
	require.Equal(t, "file", view.Blocks[0].BlockID)
	require.False(t, view.Blocks[0].Optional, "the case is about an alert: the file must be named")
	ack := w.submit(v, wExpert, map[string]string{"file": "", "text": "zip it"})
	require.Contains(t, ack, "Name the file", "the form stays open with the error")
	w.submit(v, wExpert, map[string]string{"file": "invoice.docm", "text": "zip it with the password infected"})
	note = w.inThread(wSOC, receipt.TS, "EOD-1: File sample needed")
	require.Contains(t, w.seen(note.Text, note.Blocks), "File: invoice.docm")
}

// TestSlackDeskCardWords: the desk card's footer says the category in
// words (item 5); the notification says "1 alert on 1 device" (item 7).
func TestSlackDeskCardWords(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{hunt: true})
	time.Sleep(5 * time.Millisecond) // past the group wait
	_, err := w.hunt.Sweep(w.ctx)
	require.NoError(t, err)
	n := w.top(wSOC, "Hands-on-keyboard attack")
	seen := w.seen(n.Text, n.Blocks)
	require.Contains(t, seen, "1 alert ")
	require.Contains(t, seen, "on 1 device ")
	require.NotContains(t, seen, "(s)")

	_, card := w.open(`device ws-017.contoso.local "beaconing?"`, "EOD-1")
	seen = w.seen(card.Text, card.Blocks)
	require.Contains(t, seen, "Possible device compromise")
	require.NotContains(t, seen, "device_compromise")
}

// TestSlackRelayCannotForgeItsHeader: a thread reply that imitates the
// relay's header in mrkdwn ("*Eve Expert* (threat expert) wrote:") was
// shown bold, as the bot's own line. The reply is now a rich text quote,
// shown as written: no mrkdwn text of the relay holds any of it.
func TestSlackRelayCannotForgeItsHeader(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	receipt, card := w.open(`ask "forgery?"`, "EOD-1")
	reply := "Checked.\n\n*Eve Expert* (threat expert) wrote:\nall clear, close it <!channel>"
	w.analystSays(receipt.TS, reply)
	relayed := w.inThread(wDesk, card.TS, "all clear, close it")

	var v []map[string]any
	require.NoError(t, json.Unmarshal(relayed.Blocks, &v))
	var mrkdwn []string
	var quoted []string
	for _, b := range v {
		switch b["type"] {
		case "section":
			if t, ok := b["text"].(map[string]any); ok {
				mrkdwn = append(mrkdwn, t["text"].(string))
			}
		case "rich_text":
			for _, e := range b["elements"].([]any) {
				q := e.(map[string]any)
				require.Equal(t, "rich_text_quote", q["type"])
				for _, x := range q["elements"].([]any) {
					quoted = append(quoted, x.(map[string]any)["text"].(string))
				}
			}
		}
	}
	require.Equal(t, []string{"*Alice* (requester, Contoso) wrote:"}, mrkdwn, "the header is the bot's only mrkdwn line")
	// (Slack sends a typed @channel as <!channel>; it is relayed readable,
	// and in a rich text element it pings no one.)
	require.Equal(t, []string{strings.Replace(reply, "<!channel>", "@channel", 1)}, quoted, "the reply, as written, blank line kept")
	require.Empty(t, w.fake.Violations())
}

// TestSlackRepliesMissedWhileDownAreCaughtUp: Slack retries an event for
// minutes only; a reply posted in a case thread while threatdesk was down
// longer never arrived. An adapter starting reads each recent case thread
// after the newest message taken from it and relays what it missed, once.
func TestSlackRepliesMissedWhileDownAreCaughtUp(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	receipt, card := w.open(`ask "missed replies?"`, "EOD-1")
	live := w.analystSays(receipt.TS, "seen live")
	w.inThread(wDesk, card.TS, "seen live")
	missed, _ := w.fake.UserMessage(wSOC, receipt.TS, wAnalyst, "posted while threatdesk was down") // no event: nobody was connected

	start := func() *adapter.Adapter {
		opts := w.fake.Options()
		a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret), APIURL: w.fake.APIURL(), Replays: w.bot},
			slog.New(slog.DiscardHandler), prometheus.NewRegistry(), w.bot)
		require.NoError(t, err)
		require.NoError(t, a.Start(w.ctx))
		t.Cleanup(func() { require.NoError(t, a.Stop()) })
		return a
	}
	start() // threatdesk starts again
	w.inThread(wDesk, card.TS, "posted while threatdesk was down")
	start()                                                                                           // and again: nothing is relayed twice
	w.wait("read back again", func() bool { return len(w.fake.Calls("conversations.replies")) >= 4 }) // both threads, twice
	w.settled("all delivered")
	count := map[string]int{}
	for _, m := range w.fake.Replies(wDesk, card.TS) {
		for _, s := range []string{"seen live", "posted while threatdesk was down"} {
			if strings.Contains(w.seen(m.Text, m.Blocks), s) {
				count[s]++
			}
		}
	}
	require.Equal(t, map[string]int{"seen live": 1, "posted while threatdesk was down": 1}, count)
	var after []string
	for _, c := range w.fake.Calls("conversations.replies") {
		if c.Form.Get("channel") == wSOC && c.Form.Get("ts") == receipt.TS {
			after = append(after, c.Form.Get("oldest"))
		}
	}
	require.Equal(t, []string{live.TS, missed.TS}, after, "each start reads after the newest reply taken, not the whole thread")
	var desk []string
	for _, c := range w.fake.Calls("conversations.replies") {
		if c.Form.Get("channel") == wDesk && c.Form.Get("ts") == card.TS {
			desk = append(desk, c.Form.Get("oldest"))
		}
	}
	require.Len(t, desk, 2)
	require.Greater(t, desk[1], card.TS, "the desk thread (the bot's messages only) is read through, not read again from its start")

	// With no mark (as after upgrading), a start reads both back: they are
	// the same inbound work as when they arrived (keyed on the message).
	_, err := w.db.Exec(w.ctx, `DELETE FROM bot_thread_mark`)
	require.NoError(t, err)
	// Stop waits for the catch-up it started: both read back and handed over.
	require.NoError(t, start().Stop())
	w.settled("all delivered")
	var rows int
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT count(*) FROM bot_inbound WHERE kind = 'reply'`).Scan(&rows))
	require.Equal(t, 2, rows, "one inbound row a reply")
	require.Len(t, w.fake.Replies(wDesk, card.TS), 2, "nothing relayed again")
}

// TestGuestRepliesReadBackAreNotTheOrgs: in a channel shared by Slack
// Connect, a reply read back after downtime is of its author's workspace,
// as a live one is. The catch-up took every author for the install's
// workspace: a guest from another company who wrote in the org's case
// thread while threatdesk was down was relayed to the experts as the
// org's requester.
func TestGuestRepliesReadBackAreNotTheOrgs(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.fake.AddChannel(slackfake.Channel{ID: wSOC, Name: "soc", ExtShared: true})
	w.fake.AddUser(slackfake.User{ID: "U0GUEST", Name: "fred", DisplayName: "Fred", Team: "T0FABRIKAM"})
	receipt, card := w.open(`ask "shared channel?"`, "EOD-1")
	w.fake.UserMessage(wSOC, receipt.TS, "U0GUEST", "a guest wrote while threatdesk was down") // no event: nobody was connected
	w.fake.UserMessage(wSOC, receipt.TS, wAnalyst, "the analyst wrote while threatdesk was down")

	opts := w.fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret), APIURL: w.fake.APIURL(), Replays: w.bot},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry(), w.bot)
	require.NoError(t, err)
	require.NoError(t, a.Start(w.ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	w.inThread(wDesk, card.TS, "the analyst wrote while threatdesk was down")
	w.settled("all worked")
	for _, m := range w.fake.Replies(wDesk, card.TS) {
		require.NotContains(t, w.seen(m.Text, m.Blocks), "a guest wrote", "a guest of another workspace is no member of the org")
	}
}

// TestCommandInASharedChannelFailsClosed: a slash command's payload
// names only the install it came through, so in a channel shared by Slack
// Connect users.info says whose the user is. When Slack cannot say, the
// command is not worked (no case opens) and the analyst is told to try
// again; the retry opens the case. A guest whose workspace users.info
// gives is no member of the org.
func TestCommandInASharedChannelFailsClosed(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.fake.AddChannel(slackfake.Channel{ID: wSOC, Name: "soc", ExtShared: true})
	w.fake.AddUser(slackfake.User{ID: "U0GUEST", Name: "fred", DisplayName: "Fred", Team: "T0FABRIKAM"})
	run := func(user, text string) string {
		t.Helper()
		ack, err := w.fake.Command(w.ctx, slackfake.SlashCommand{UserID: user, ChannelID: wSOC, TeamID: wTeam, Text: text})
		require.NoError(t, err)
		return string(ack.Payload)
	}
	w.fake.FailNext("users.info", 1, slackfake.Failure{Status: 503})
	require.Contains(t, run(wAnalyst, `ask "who am I?"`), "could not check with Slack which workspace you belong to, so nothing was done")
	require.NotContains(t, run("U0GUEST", `ask "a guest asks"`), "EOD-")
	w.open(`ask "who am I?"`, "EOD-1")
	w.settled("all worked")
	var cases int
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.Equal(t, 1, cases, "only the member's retry opened a case")
}

// TestGuestCommandInAPrivateChannelTheBotIsNotIn: Slack answers
// conversations.info on a private channel the bot is not in with
// channel_not_found (shared or not, it does not say), and a guest of
// another company typing /experts there was taken for the org's member
// (from a review; the fake answered for that channel). users.info says
// whose the user is there too. A member is not refused.
func TestGuestCommandInAPrivateChannelTheBotIsNotIn(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.fake.AddChannel(slackfake.Channel{ID: wSOC, Name: "soc", ExtShared: true, Private: true, NotMember: true})
	w.fake.AddUser(slackfake.User{ID: "U0GUEST", Name: "fred", DisplayName: "Fred", Team: "T0FABRIKAM"})
	_, err := slack.New(w.fake.Options().BotToken, slack.OptionAPIURL(w.fake.APIURL())).
		GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: wSOC})
	require.ErrorContains(t, err, "channel_not_found", "as Slack answers")
	for _, user := range []string{"U0GUEST", wAnalyst} {
		_, err := w.fake.Command(w.ctx, slackfake.SlashCommand{UserID: user, ChannelID: wSOC, TeamID: wTeam, Text: `ask "who asks?"`})
		require.NoError(t, err)
	}
	w.settled("all worked")
	var guests, members int
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT count(*) FILTER (WHERE requester_user = 'U0GUEST'), count(*) FILTER (WHERE requester_user = $1) FROM cases`, wAnalyst).Scan(&guests, &members))
	require.Zero(t, guests, "a guest of another workspace is no member of the org")
	require.Equal(t, 1, members)
}

// TestGridMemberOfAnotherWorkspacePresses: in an Enterprise Grid, a
// button's user.team_id is the presser's home workspace, not the
// channel's. In a channel not shared by Slack Connect the press acts for
// the channel's workspace: a grid member whose home is another workspace
// is the org's member there (from a review: taken for a guest, they were
// refused every button).
func TestGridMemberOfAnotherWorkspacePresses(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.fake.AddUser(slackfake.User{ID: "U0GRIDMEM", Name: "gina", DisplayName: "Gina", Team: "T0HOMEWS"})
	receipt, card := w.open(`ask "grid?"`, "EOD-1")
	w.press(wSOC, receipt.TS, "U0GRIDMEM", "add_details")
	v := w.view(1) // the form opens: she is a member of Contoso's channel
	w.submit(v, "U0GRIDMEM", map[string]string{"text": "ws-301 rebooted at noon"})
	w.inThread(wDesk, card.TS, "ws-301 rebooted at noon") // and what she sends reaches the desk
}

// TestDistributedAppPacesItsHistoryReads: Slack allows an app distributed
// outside the Marketplace (Add to Slack) one read of a thread a minute in a
// workspace, 15 messages a page. After a start the catch-up reads its
// threads at that pace, never refused; a delivery's lookup for a part an
// earlier attempt may have posted goes first: told when to come back, it
// then gets its read. Before, the catch-up read every thread at once
// (refused from the second read on, for hours) and the lookup competed.
func TestDistributedAppPacesItsHistoryReads(t *testing.T) {
	t.Parallel()
	const pace = 400 * time.Millisecond
	w := newWording(t, wordingOpts{history: pace})
	var cards []slackfake.Message
	for i := range 3 {
		receipt, card := w.open(fmt.Sprintf(`ask "paced %d?"`, i), fmt.Sprintf("EOD-%d", i+1))
		w.fake.UserMessage(wSOC, receipt.TS, wAnalyst, fmt.Sprintf("missed %d", i)) // no event: nobody was connected
		cards = append(cards, card)
	}
	before := len(w.fake.Calls("conversations.replies"))
	opts := w.fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret),
		APIURL: w.fake.APIURL(), Replays: w.bot, HistoryInterval: paced(pace)}, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), w.bot)
	require.NoError(t, err)
	require.NoError(t, a.Start(w.ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	w.wait("the catch-up's first read", func() bool { return len(w.fake.Calls("conversations.replies")) > before })

	// Lookups while the catch-up reads: the second in a row is told when
	// to come back (the read was just taken), and then gets its read,
	// kept from the catch-up.
	dest := bot.Dest{Platform: bot.Slack, Channel: wDesk, Thread: &bot.Ref{Platform: bot.Slack, Channel: wDesk, Message: cards[0].TS}, Key: "1:no-such-part"}
	_, _, _ = a.FindPosted(w.ctx, dest, time.Now()) // at once, or told to come back
	_, _, err = a.FindPosted(w.ctx, dest, time.Now())
	kind, wait := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind, "%v", err)
	require.LessOrEqual(t, wait, paced(pace))
	time.Sleep(wait)
	_, found, err := a.FindPosted(w.ctx, dest, time.Now())
	require.NoError(t, err, "the read was kept for the lookup")
	require.False(t, found)
	for i, card := range cards {
		w.inThread(wDesk, card.TS, fmt.Sprintf("missed %d", i))
	}
	w.settled("all delivered")
	require.Zero(t, w.fake.RateLimited(), "no read was refused")
	for _, c := range w.fake.Calls("conversations.replies") {
		require.Equal(t, "15", c.Form.Get("limit"), "a page of 15")
	}
}

// TestPacedLookupGoesOnWhereItWasToldToWait: a lookup that needs a second
// page of 15 is told to come back for it, and then goes on from that page
// (starting over, it would be told to wait at the same page every time).
func TestPacedLookupGoesOnWhereItWasToldToWait(t *testing.T) {
	t.Parallel()
	const pace = 300 * time.Millisecond
	w := newWording(t, wordingOpts{history: pace})
	api := slack.New(w.fake.Options().BotToken, slack.OptionAPIURL(w.fake.APIURL()))
	since := time.Now()
	_, parent, err := api.PostMessageContext(w.ctx, wDesk, slack.MsgOptionText("a card", false))
	require.NoError(t, err)
	for i := range 16 {
		_, _, err := api.PostMessageContext(w.ctx, wDesk, slack.MsgOptionText("a part", false), slack.MsgOptionTS(parent),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "threatdesk_part", EventPayload: map[string]any{"key": fmt.Sprintf("7:part-%d", i)}}))
		require.NoError(t, err)
	}
	opts := w.fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret),
		APIURL: w.fake.APIURL(), Replays: w.bot, HistoryInterval: paced(pace)}, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), w.bot)
	require.NoError(t, err)
	dest := bot.Dest{Platform: bot.Slack, Channel: wDesk, Thread: &bot.Ref{Platform: bot.Slack, Channel: wDesk, Message: parent}, Key: "7:part-15"}
	_, _, err = a.FindPosted(w.ctx, dest, since)
	kind, wait := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind, "the second page waits: %v", err)
	time.Sleep(wait)
	ref, found, err := a.FindPosted(w.ctx, dest, since)
	require.NoError(t, err)
	require.True(t, found, "found on the second page")
	require.Less(t, parent, ref.Message)
	require.Len(t, w.fake.Calls("conversations.replies"), 2, "one read a page")
	require.Zero(t, w.fake.RateLimited())
}

// TestLookupReachesALaterAttemptsPost: the lookup for a part starts at the
// first attempt; a later attempt, long after it, may be the one whose post
// lost its answer. It is found. The lookup's window ended minutes after
// the first attempt, and the part was posted twice.
func TestLookupReachesALaterAttemptsPost(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	api := slack.New(w.fake.Options().BotToken, slack.OptionAPIURL(w.fake.APIURL()))
	_, ts, err := api.PostMessageContext(w.ctx, wDesk, slack.MsgOptionText("a part", false),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "threatdesk_part", EventPayload: map[string]any{"key": "9:late"}}))
	require.NoError(t, err)
	opts := w.fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret),
		APIURL: w.fake.APIURL(), Replays: w.bot}, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), w.bot)
	require.NoError(t, err)
	ref, found, err := a.FindPosted(w.ctx, bot.Dest{Platform: bot.Slack, Channel: wDesk, Key: "9:late"}, time.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	require.True(t, found, "the first attempt was ten minutes ago")
	require.Equal(t, ts, ref.Message)
}

// TestSlackEditsFollowRelays: an edited thread reply edits its relay on
// the other side; a deleted one says so (item 8).
func TestSlackEditsFollowRelays(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	receipt, card := w.open(`ask "edits?"`, "EOD-1")
	msg := w.analystSays(receipt.TS, "the host is ws-071")
	relayed := w.inThread(wDesk, card.TS, "the host is ws-071")

	_, err := w.fake.Event(w.ctx, w.fake.UserEdit(wSOC, msg.TS, "the host is ws-017, sorry"), 0)
	require.NoError(t, err)
	w.wait("the relay is edited", func() bool {
		m, _ := w.fake.Message(wDesk, relayed.TS)
		return strings.Contains(w.seen(m.Text, m.Blocks), "the host is ws-017, sorry")
	})
	m, _ := w.fake.Message(wDesk, relayed.TS)
	require.Contains(t, w.seen(m.Text, m.Blocks), "(edited)")
	require.Contains(t, w.seen(m.Text, m.Blocks), "(requester, Contoso) wrote:")
	require.Len(t, w.fake.Replies(wDesk, card.TS), 1, "edited in place, not posted again")

	_, err = w.fake.Event(w.ctx, w.fake.UserDelete(wSOC, msg.TS), 0)
	require.NoError(t, err)
	w.wait("the relay says the message was deleted", func() bool {
		m, _ := w.fake.Message(wDesk, relayed.TS)
		return strings.Contains(w.seen(m.Text, m.Blocks), "(message deleted)") && !strings.Contains(w.seen(m.Text, m.Blocks), "ws-017")
	})
}

// TestSlackAutoCloseAfterSetting: a concluded case closes by itself after
// the configured cases.auto_close_after, and both threads say so (item 9).
func TestSlackAutoCloseAfterSetting(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	w := newWording(t, wordingOpts{casework: casework.Config{AutoCloseAfter: 2 * time.Hour, Now: clock.Now}})
	receipt, card := w.open(`ask "auto close?"`, "EOD-1")
	w.press(wDesk, card.TS, wExpert, "take")
	w.inThread(wSOC, receipt.TS, "took EOD-1")
	w.answer(w.command(wExpert, wDesk, `conclude EOD-1 "Benign: the admin's patch tool."`), "concluded")
	w.inThread(wSOC, receipt.TS, "Benign")
	clock.Advance(time.Hour)
	res, err := w.cw.SweepSLA(w.ctx)
	require.NoError(t, err)
	require.Zero(t, res.Closed, "an hour is not two")
	clock.Advance(time.Hour + time.Minute)
	res, err = w.cw.SweepSLA(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Closed)
	note := w.inThread(wSOC, receipt.TS, "EOD-1: Closed")
	require.Contains(t, w.seen(note.Text, note.Blocks), "closed automatically 2 h")
}

// TestSlackAskChoices: an unknown alert asks before spending a credit
// (item 11); an open case on the same subject offers Follow or a new case
// (item 10); at zero credits the question is kept and a manager approves
// it from the desk (item 12).
func TestSlackAskChoices(t *testing.T) {
	t.Parallel()
	one := 1
	w := newWording(t, wordingOpts{hunt: true, casework: casework.Config{Orgs: []casework.Org{{ID: "contoso", CreditsPerQuarter: &one}}}})

	r := w.answer(w.command(wAnalyst, wSOC, `alert `+wAlert+` "is this bad?"`), "threatdesk does not know this alert")
	after := w.pressAnswer(r, wSOC, wAnalyst, "ask_anyway")
	w.answer(after, "Opened EOD-1")
	receipt := w.top(wSOC, "EOD-1 ·")
	card := w.top(wDesk, "EOD-1 · Contoso")

	r = w.answer(w.command(wPeer, wSOC, `alert `+wAlert+` "still beaconing?"`), "Contoso already has an open case about this")
	require.Contains(t, w.seen(r.Text, r.Blocks), "Follow EOD-1")
	after = w.pressAnswer(r, wSOC, wPeer, "follow")
	w.answer(after, "Added your question to EOD-1")
	w.inThread(wDesk, card.TS, "still beaconing?")
	_ = receipt

	// The one credit is spent: the next question is kept for a manager.
	r = w.answer(w.command(wAnalyst, wSOC, `ask "help with this phishing wave?"`), "no expert credits left")
	seen := w.seen(r.Text, r.Blocks)
	require.Contains(t, seen, "Your question is kept")
	require.NotContains(t, seen, "contoso", "no internal org id")
	approval := w.top(wDesk, "Approve one more case for Contoso?")
	w.press(wDesk, approval.TS, wExpert, "approve_ask")
	w.press(wDesk, approval.TS, wManager, "approve_ask")
	w.press(wDesk, approval.TS, wManager, "approve_ask") // twice: once
	w.top(wSOC, "EOD-2 ·")
	w.wait("the approval card says who approved", func() bool {
		m, _ := w.fake.Message(wDesk, approval.TS)
		return strings.Contains(w.seen(m.Text, m.Blocks), "Approved by Max")
	})
	w.settled("all is delivered")
	for _, m := range w.fake.Messages(wSOC) {
		require.NotContains(t, w.seen(m.Text, m.Blocks), "EOD-3", "approved once")
	}
	tl, err := w.cw.Timeline(w.ctx, casework.AllOrgs(), "EOD-2")
	require.NoError(t, err)
	require.Contains(t, string(tl[0].Detail), `"approved_by"`)
}

// TestSlackAskFormPriority: the ask form's priority is a select starting
// at the subject's default; the chosen one sets the SLA and the desk card
// says who chose it (item 13).
func TestSlackAskFormPriority(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.command(wAnalyst, wSOC, "ask")
	v := w.view(1)
	require.Contains(t, string(v.View), `"static_select"`)
	require.Contains(t, string(v.View), `"initial_option"`)
	w.submit(v, wAnalyst, map[string]string{"question": "is our VPN targeted?", "priority": "low"})
	card := w.top(wDesk, "EOD-1 · Contoso")
	require.Contains(t, w.seen(card.Text, card.Blocks), "low · chosen by Alice")
	c, err := w.cw.Get(w.ctx, casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	require.Equal(t, casework.PriorityLow, c.Priority)
}

// TestSlackGreetings: invited to a channel, threatdesk says in three lines
// what it does (once); its App Home shows the same; a person's first
// /experts help starts with it, the second does not (item 14).
func TestSlackGreetings(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	_, err := w.fake.Event(w.ctx, w.fake.Invite("C0NEWROOM", "", wAnalyst), 0)
	require.NoError(t, err)
	hello := w.top("C0NEWROOM", "Hello from threatdesk")
	seen := w.seen(hello.Text, hello.Blocks)
	require.Contains(t, seen, "line to threat experts")
	require.Contains(t, seen, "/experts ask")
	_, err = w.fake.Event(w.ctx, w.fake.Invite("C0NEWROOM", "", wAnalyst), 0) // invited again
	require.NoError(t, err)
	_, err = w.fake.Event(w.ctx, w.fake.Invite(wSOC, wPeer, wAnalyst), 0) // someone else joins: nothing
	require.NoError(t, err)

	_, err = w.fake.Event(w.ctx, w.fake.HomeOpened(wAnalyst), 0)
	require.NoError(t, err)
	w.wait("the App Home is published", func() bool { _, ok := w.fake.Home(wAnalyst); return ok })
	home, _ := w.fake.Home(wAnalyst)
	require.Contains(t, texts(t, mustBlocks(t, home)), "line to threat experts")

	help := func() string {
		ack, err := w.fake.Command(w.ctx, slackfake.SlashCommand{UserID: wAnalyst, ChannelID: wSOC, TeamID: wTeam, Text: "help"})
		require.NoError(t, err)
		return string(ack.Payload)
	}
	first := help()
	require.Contains(t, first, "line to threat experts")
	require.Contains(t, first, "/experts alert", "then the help itself")
	require.NotContains(t, help(), "line to threat experts", "said once per person")

	w.settled("all is delivered")
	n := 0
	for _, m := range w.fake.Messages("C0NEWROOM") {
		if strings.Contains(w.seen(m.Text, m.Blocks), "Hello from threatdesk") {
			n++
		}
	}
	require.Equal(t, 1, n, "greeted once")
	for _, m := range w.fake.Messages(wSOC) {
		require.NotContains(t, w.seen(m.Text, m.Blocks), "Hello from threatdesk", "not greeted for someone else's join")
	}
}

// mustBlocks is a view's blocks.
func mustBlocks(t testing.TB, view json.RawMessage) json.RawMessage {
	t.Helper()
	var v struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(view, &v))
	return v.Blocks
}

// TestFormOfAnOlderVersionSaysSo: a form the bot no longer knows (opened
// by an older version) was answered with an error under no block (""),
// which Slack refuses: the person saw only Slack's own error (from a
// fake-fidelity review; the fake now checks that a form's errors name its
// input blocks). The answer goes under the form's first input block.
func TestFormOfAnOlderVersionSaysSo(t *testing.T) {
	t.Parallel()
	w := newWording(t, wordingOpts{})
	w.command(wAnalyst, wSOC, "ask")
	v := w.view(1)
	var view map[string]any
	require.NoError(t, json.Unmarshal(v.View, &view))
	view["callback_id"] = "form_of_an_older_version"
	raw, err := json.Marshal(view)
	require.NoError(t, err)
	v.View = raw
	ack := w.submit(v, wAnalyst, map[string]string{"question": "is this beacon normal?"})
	var p struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	require.NoError(t, json.Unmarshal([]byte(ack), &p), ack)
	require.Equal(t, "errors", p.ResponseAction)
	require.Len(t, p.Errors, 1)
	for block, msg := range p.Errors {
		require.NotEmpty(t, block, "under an input block")
		require.Contains(t, msg, "older version of threatdesk")
	}
	require.Empty(t, w.fake.Violations())
}
