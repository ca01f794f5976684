package discord_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// Issue 14 ("what people see") over Discord: the real bot, casework (and
// hunting where an item needs it) behind the Discord adapter and the fake.

const (
	dPeer   = "1000000000000000012"
	dTenant = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
)

// discordAlert is an alert of the expert hunting service for Fabrikam's
// tenant: one alert on one device, notified at once.
const discordAlert = `{
  "id": "da637472900382838869_1364969609", "severity": "High", "status": "New", "detectionSource": "ThreatExperts",
  "category": "LateralMovement", "title": "Hands-on-keyboard attack via PsExec", "description": "An operator moved laterally.",
  "alertCreationTime": "2026-11-26T20:33:57.7220239Z", "firstEventTime": "2026-11-26T20:31:32.9562661Z",
  "lastEventTime": "2026-11-26T20:31:33.0577322Z", "lastUpdateTime": "2026-11-26T20:33:59.2Z",
  "machineId": "111e6dd8c833c8a052ea231ec1b19adaf497b625", "computerDnsName": "ws-017.fabrikam.local",
  "aadTenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c", "mitreTechniques": ["T1021"]
}`

// wordingSlots bounds how many of these tests run at once: each starts a
// bot, a database and a fake, and the machine has two cores shared with the
// rest of the suite.
var wordingSlots = make(chan struct{}, 2)

type dWordingOpts struct {
	hunt     bool
	casework casework.Config
}

// dWording is a flow with what the issue 14 tests reach for.
type dWording struct {
	*flow
	db   *pgxpool.Pool
	cw   *casework.Service
	hunt *hunting.Service
	ctx  context.Context
}

func newDiscordWording(t *testing.T, o dWordingOpts) *dWording {
	t.Helper()
	wordingSlots <- struct{}{}
	t.Cleanup(func() { <-wordingSlots })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	log := testLogger(t)
	key, err := secrets.Generate()
	require.NoError(t, err)
	cc := o.casework
	cc.Key = key
	cw, err := casework.New(db, cc, nil, nil)
	require.NoError(t, err)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID}}}})
	dfake.AddUser(discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"})
	dfake.AddUser(discordfake.User{ID: dPeer, Username: "bob", GlobalName: "Bob"})
	dfake.AddUser(discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"})
	dfake.AddUser(discordfake.User{ID: managerID, Username: "max", GlobalName: "Max"})
	w := &dWording{db: db, cw: cw, ctx: ctx}
	var incidents bot.Incidents
	if o.hunt {
		w.hunt, err = hunting.New(db, hunting.Config{Orgs: []hunting.Org{{ID: "fabrikam", Tenants: []string{dTenant}}}, NotifyScore: 1, GroupWait: time.Millisecond}, nil, nil)
		require.NoError(t, err)
		_, err = w.hunt.Ingest(ctx, []hunting.RawAlert{hunting.RawAlert(discordAlert)})
		require.NoError(t, err)
		incidents = bot.NewHuntingIncidents(w.hunt)
	}
	cfg := bot.Config{
		Orgs:     []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}}},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID}},
		Managers: bot.UserIDs{Discord: []string{managerID}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}},
		Inbound: bot.Inbound{BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, StoreTimeout: 2 * time.Second},
	}
	b, err := bot.New(cfg, db, bot.NewCaseworkCases(cw), incidents, log, prometheus.NewRegistry())
	require.NoError(t, err)
	da, err := discord.New(discord.Config{Token: secrets.String(dfake.Token()), AppID: dfake.AppID(), APIURL: dfake.APIURL(), Guilds: []string{guildID}},
		log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(da))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, da.Start(ctx))
	t.Cleanup(func() { require.NoError(t, da.Stop()) })
	require.True(t, dfake.WaitSessions(1, 10*time.Second))
	w.flow = &flow{t: t, dfake: dfake, bot: b}
	f := w.flow
	f.wait("the gateway is ready", func() bool { return dfake.Identifies() > 0 })
	t.Cleanup(func() {
		require.Empty(t, dfake.Pings())
		require.Empty(t, dfake.Violations())
	})
	return w
}

// settled waits until every inbound event and outbox row is settled. Only
// the bot's own tests can hear a row settle, so this polls, as the bot's
// tests do for what nothing signals.
func (w *dWording) settled(what string) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := w.db.QueryRow(w.ctx, `SELECT (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL)
 + (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL)`).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// open asks as the analyst and returns the receipt and the desk card,
// each with its thread.
func (w *dWording) open(sub string, opts map[string]any, ref string) (receipt, card discordfake.Message) {
	w.t.Helper()
	in, _ := w.command(analystID, channelID, sub, opts)
	w.wait("the analyst is told "+ref+" is open", w.answered(in, "Opened "+ref))
	w.wait("receipt and desk card", func() bool { return w.has(channelID, ref+" ·")() && w.has(deskID, ref+" · Fabrikam")() })
	receipt, _ = w.find(channelID, ref+" ·")
	card, _ = w.find(deskID, ref+" · Fabrikam")
	for _, m := range []discordfake.Message{receipt, card} {
		w.wait("a thread on "+m.ID, func() bool { _, ok := w.dfake.Channel(m.ID); return ok })
	}
	return receipt, card
}

// press presses the button of m whose custom_id starts with prefix.
func (w *dWording) press(m discordfake.Message, user, prefix string) discordfake.Callback {
	w.t.Helper()
	id := customIDWithPrefix(m, prefix)
	require.NotEmpty(w.t, id, "no %s button on %q", prefix, text(m))
	in, err := w.dfake.Interact(w.dfake.ComponentPayload(m, user, id))
	require.NoError(w.t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(w.t, err)
	return cb
}

// pressAnswer presses a button on an interaction's answer and returns the
// new interaction, whose own answer says what happened.
func (w *dWording) pressAnswer(in *discordfake.Interaction, user, prefix string) *discordfake.Interaction {
	w.t.Helper()
	var msg discordfake.Message
	w.wait("an answer with a "+prefix+" button", func() bool {
		msgs := w.dfake.FollowupMessages(in)
		if m, ok := w.dfake.OriginalResponse(in); ok {
			msgs = append(msgs, m)
		}
		for _, m := range msgs {
			if customIDWithPrefix(m, prefix) != "" {
				msg = m
				return true
			}
		}
		return false
	})
	pin, err := w.dfake.Interact(w.dfake.ComponentPayload(msg, user, customIDWithPrefix(msg, prefix)))
	require.NoError(w.t, err)
	_, err = pin.Wait(5 * time.Second)
	require.NoError(w.t, err)
	return pin
}

// modal decodes a modal callback.
func modal(t testing.TB, cb discordfake.Callback) discordfake.ModalBody {
	t.Helper()
	require.Equal(t, 9, cb.Type, "a modal opens: %s", cb.Data)
	var m discordfake.ModalBody
	require.NoError(t, json.Unmarshal(cb.Data, &m))
	return m
}

// field returns the modal's text input with id.
func field(m discordfake.ModalBody, id string) (discordfake.Component, bool) {
	for _, row := range m.Components {
		for _, c := range row.Components {
			if c.CustomID == id {
				return c, true
			}
		}
	}
	return discordfake.Component{}, false
}

// submitModal submits m with values and returns the callback.
func (w *dWording) submitModal(channel, user string, m discordfake.ModalBody, values map[string]string) discordfake.Callback {
	w.t.Helper()
	in, err := w.dfake.Interact(w.dfake.ModalPayload(channel, user, m.CustomID, values, nil))
	require.NoError(w.t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(w.t, err)
	return cb
}

// TestDiscordCasesMine: "mine" is what an analyst asked, and what is
// assigned to an expert (item 1).
func TestDiscordCasesMine(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	_, card := w.open("ask", map[string]any{"question": "is this beacon normal?"}, "EOD-1")
	in, _ := w.command(analystID, channelID, "cases", map[string]any{"filter": "mine"})
	w.wait("the analyst's list", w.answered(in, "EOD-1"))
	in, _ = w.command(dPeer, channelID, "cases", map[string]any{"filter": "mine"})
	w.wait("the colleague's list", w.answered(in, "No cases."))
	in, _ = w.command(expertID, deskID, "cases", map[string]any{"filter": "mine"})
	w.wait("the expert's list before the take", w.answered(in, "No cases."))
	w.press(card, expertID, string(bot.ActTake))
	w.wait("taken", w.has(card.ID, "took EOD-1"))
	in, _ = w.command(expertID, deskID, "cases", map[string]any{"filter": "mine"})
	w.wait("the expert's list after the take", w.answered(in, "EOD-1"))
}

// TestDiscordTakeSaidOnce: one note in each thread, one edit of each card
// (item 3).
func TestDiscordTakeSaidOnce(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	receipt, card := w.open("ask", map[string]any{"question": "once?"}, "EOD-1")
	w.settled("the opening delivered")
	w.press(card, expertID, string(bot.ActTake))
	w.wait("noted on the desk", w.has(card.ID, "took EOD-1. It is in progress."))
	w.wait("noted for the requester", w.has(receipt.ID, "took EOD-1. It is in progress."))
	w.settled("the take delivered")
	for _, m := range []discordfake.Message{receipt, card} {
		notes := 0
		for _, n := range w.dfake.Messages(m.ID) {
			if n.Interaction == "" {
				notes++
			}
		}
		require.Equal(t, 1, notes, "one note in the thread of %s", m.ID)
		got, _ := w.dfake.Message(m.ID)
		require.Equal(t, 1, got.Edits, "one edit of %s", m.ID)
	}
}

// TestDiscordStatusForms: Need more time and Need file sample open modals;
// the reason is pre-filled and shown to the requester; the file is
// required on a case not about a file (item 4).
func TestDiscordStatusForms(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	receipt, card := w.open("alert", map[string]any{"id": flowAlert, "question": "phishing?"}, "EOD-1")
	w.press(card, expertID, string(bot.ActTake))
	w.wait("taken", w.has(receipt.ID, "took EOD-1"))
	card, _ = w.dfake.Message(card.ID)

	m := modal(t, w.press(card, expertID, string(bot.ActMoreTime)))
	reason, ok := field(m, "text")
	require.True(t, ok)
	require.Equal(t, "Analysis needs more time", reason.Value)
	w.submitModal(deskID, expertID, m, map[string]string{"text": "The sandbox run takes another hour"})
	w.wait("the requester sees the reason", w.has(receipt.ID, "The sandbox run takes another hour"))

	card, _ = w.dfake.Message(card.ID)
	m = modal(t, w.press(card, expertID, string(bot.ActSample)))
	file, ok := field(m, "file")
	require.True(t, ok)
	require.NotNil(t, file.Required)
	require.True(t, *file.Required, "the case is about an alert: name the file")
	w.submitModal(deskID, expertID, m, map[string]string{"file": "invoice.docm", "text": "zip it"})
	w.wait("the requester sees which file", w.has(receipt.ID, "File: invoice.docm"))
}

// TestDiscordWords: the desk card's category in words (item 5) and the
// notification's singulars (item 7).
func TestDiscordWords(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{hunt: true})
	time.Sleep(5 * time.Millisecond) // past the group wait
	_, err := w.hunt.Sweep(w.ctx)
	require.NoError(t, err)
	w.wait("the notification", w.has(channelID, "Hands-on-keyboard attack"))
	n, _ := w.find(channelID, "Hands-on-keyboard attack")
	require.Contains(t, text(n), "1 alert ")
	require.Contains(t, text(n), "on 1 device ")
	require.NotContains(t, text(n), "(s)")

	_, card := w.open("device", map[string]any{"device": "ws-017.fabrikam.local", "question": "beaconing?"}, "EOD-1")
	require.Contains(t, text(card), "Possible device compromise")
	require.NotContains(t, text(card), "device_compromise")
}

// TestDiscordEditsFollowRelays: MESSAGE_UPDATE edits the relay on the
// other side; MESSAGE_DELETE replaces its text (item 8).
func TestDiscordEditsFollowRelays(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	receipt, card := w.open("ask", map[string]any{"question": "edits?"}, "EOD-1")
	alice := discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"}
	msg := w.dfake.Say(receipt.ID, alice, "the host is ws-071")
	w.wait("relayed", w.has(card.ID, "the host is ws-071"))
	relay, _ := w.find(card.ID, "the host is ws-071")

	w.dfake.Edit(msg.ID, "the host is ws-017, sorry")
	w.wait("the relay is edited", func() bool {
		m, _ := w.dfake.Message(relay.ID)
		return strings.Contains(text(m), "the host is ws-017, sorry") && strings.Contains(text(m), "(edited)")
	})
	w.dfake.Delete(msg.ID)
	w.wait("the relay says it was deleted", func() bool {
		m, _ := w.dfake.Message(relay.ID)
		return strings.Contains(text(m), "(message deleted)") && !strings.Contains(text(m), "ws-017")
	})
	relays := 0
	for _, m := range w.dfake.Messages(card.ID) {
		if strings.Contains(text(m), "requester, Fabrikam") {
			relays++
		}
	}
	require.Equal(t, 1, relays, "edited in place, never posted again")
}

// TestDiscordAutoCloseAfterSetting: cases.auto_close_after closes a
// concluded case, said in its threads (item 9).
func TestDiscordAutoCloseAfterSetting(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	w := newDiscordWording(t, dWordingOpts{casework: casework.Config{AutoCloseAfter: 2 * time.Hour, Now: clock.Now}})
	receipt, card := w.open("ask", map[string]any{"question": "auto close?"}, "EOD-1")
	w.press(card, expertID, string(bot.ActTake))
	w.wait("taken", w.has(receipt.ID, "took EOD-1"))
	in, _ := w.command(expertID, deskID, "conclude", map[string]any{"case": "EOD-1", "summary": "Benign: the admin's patch tool."})
	w.wait("concluded", w.answered(in, "concluded"))
	clock.Advance(2*time.Hour + time.Minute)
	res, err := w.cw.SweepSLA(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Closed)
	w.wait("closed, said in the receipt thread", w.has(receipt.ID, "closed automatically 2 h"))
}

// TestDiscordAskChoices: an open case on the subject offers Follow (item
// 10); an unknown alert asks first (item 11); at zero credits a manager
// approves (item 12).
func TestDiscordAskChoices(t *testing.T) {
	t.Parallel()
	one := 1
	w := newDiscordWording(t, dWordingOpts{hunt: true, casework: casework.Config{Orgs: []casework.Org{{ID: "fabrikam", CreditsPerQuarter: &one}}}})

	in, _ := w.command(analystID, channelID, "alert", map[string]any{"id": flowAlert, "question": "is this bad?"})
	w.wait("unknown alert", w.answered(in, "threatdesk does not know this alert"))
	pin := w.pressAnswer(in, analystID, string(bot.ActAskAnyway))
	w.wait("opened on confirmation", w.answered(pin, "Opened EOD-1"))
	w.wait("the desk card", w.has(deskID, "EOD-1 · Fabrikam"))
	card, _ := w.find(deskID, "EOD-1 · Fabrikam")
	w.wait("the desk thread", func() bool { _, ok := w.dfake.Channel(card.ID); return ok })

	in, _ = w.command(dPeer, channelID, "alert", map[string]any{"id": flowAlert, "question": "still beaconing?"})
	w.wait("an open case is offered", w.answered(in, "Follow EOD-1"))
	pin = w.pressAnswer(in, dPeer, string(bot.ActFollow))
	w.wait("followed", w.answered(pin, "Added your question to EOD-1"))
	w.wait("the question reaches the desk thread", w.has(card.ID, "still beaconing?"))

	in, _ = w.command(analystID, channelID, "ask", map[string]any{"question": "help with this phishing wave?"})
	w.wait("kept for a manager", w.answered(in, "Your question is kept"))
	w.wait("the approval card", w.has(deskID, "Approve one more case for Fabrikam?"))
	approval, _ := w.find(deskID, "Approve one more case for Fabrikam?")
	w.press(approval, expertID, string(bot.ActApproveAsk))
	w.press(approval, managerID, string(bot.ActApproveAsk))
	w.press(approval, managerID, string(bot.ActApproveAsk))
	w.wait("the case opens", w.has(channelID, "EOD-2 ·"))
	w.wait("the card says who approved", func() bool { m, _ := w.dfake.Message(approval.ID); return strings.Contains(text(m), "Approved by Max") })
	w.settled("all delivered")
	_, three := w.find(channelID, "EOD-3")
	require.False(t, three, "approved once")
}

// TestDiscordAskFormPriority: the ask modal has the priority as a select
// of high, medium and low, the subject's default chosen; the chosen one is
// on the desk card with who chose it (item 13).
func TestDiscordAskFormPriority(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	_, cb := w.command(analystID, channelID, "ask", nil)
	m := modal(t, cb)
	var prio *discordfake.Component
	for _, c := range m.Components {
		if c.Component != nil && c.Component.CustomID == "priority" {
			prio = c.Component
		}
	}
	require.NotNil(t, prio, "the modal has the priority: %s", cb.Data)
	opts, err := json.Marshal(prio.Options)
	require.NoError(t, err)
	for _, want := range []string{`"value":"high"`, `"default":true,"description":"","label":"Medium","value":"medium"`, `"value":"low"`} {
		require.Contains(t, string(opts), want)
	}
	_, err = w.dfake.SubmitModal(channelID, analystID, m, map[string]string{"question": "is our VPN targeted?", "priority": "urgent"}, nil)
	require.Error(t, err, "a select offers only its options")
	sub, err := w.dfake.SubmitModal(channelID, analystID, m, map[string]string{"question": "is our VPN targeted?", "priority": "low"}, nil)
	require.NoError(t, err)
	in, err := w.dfake.Interact(sub)
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	w.wait("the desk card", w.has(deskID, "EOD-1 · Fabrikam"))
	card, _ := w.find(deskID, "EOD-1 · Fabrikam")
	require.Contains(t, text(card), "low · chosen by Alice")
}

// TestDiscordGreetings: joining a guild greets it once in three lines; a
// person's first /experts help starts with them (item 14).
func TestDiscordGreetings(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	const newGuild, newChannel = "1000000000000000501", "1000000000000000502"
	w.dfake.JoinGuild(discordfake.Guild{ID: newGuild, Channels: []string{newChannel}})
	w.wait("the new guild is greeted", w.has(newChannel, "Hello from threatdesk"))
	hello, _ := w.find(newChannel, "Hello from threatdesk")
	require.Contains(t, text(hello), "line to threat experts")
	require.Contains(t, text(hello), "/experts ask")
	w.dfake.DropSessions() // the gateway reconnects: the guilds it has are not new
	require.True(t, w.dfake.WaitSessions(1, 10*time.Second))
	w.settled("all delivered")
	for _, ch := range []string{channelID, deskID} {
		_, greeted := w.find(ch, "Hello from threatdesk")
		require.False(t, greeted, "a guild joined long ago is not greeted")
	}

	_, cb := w.command(analystID, channelID, "help", nil)
	require.Contains(t, string(cb.Data), "line to threat experts")
	_, cb = w.command(analystID, channelID, "help", nil)
	require.NotContains(t, string(cb.Data), "line to threat experts", "once per person")
}

// TestDiscordLongRelayArrivesWhole: a long thread message full of Windows
// paths (every backslash escaped) reaches the other side whole, in parts
// that Discord accepts, and its edit reaches every part. It was cut at
// 1,800 characters, and again after escaping.
func TestDiscordLongRelayArrivesWhole(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	receipt, card := w.open("ask", map[string]any{"question": "long paths?"}, "EOD-1")
	alice := discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"}
	var b strings.Builder
	for i := range 280 {
		fmt.Fprintf(&b, `C:\Users\p%03d `, i) // 280 x 14 runes (Nitro allows 4,000), each with two backslashes
	}
	long := strings.TrimSpace(b.String())
	msg := w.dfake.Say(receipt.ID, alice, long)
	w.wait("relayed in three parts", w.has(card.ID, "wrote (3 of 3):"))
	var got string
	for i := 1; i <= 3; i++ {
		m, ok := w.find(card.ID, fmt.Sprintf("wrote (%d of 3):", i))
		require.True(t, ok)
		require.NotContains(t, text(m), "…", "nothing cut")
		got += " " + text(m)
	}
	for i := range 280 {
		require.Contains(t, got, fmt.Sprintf(`C:\\Users\\p%03d`, i))
	}

	w.dfake.Edit(msg.ID, "shorter now")
	last, _ := w.find(card.ID, "wrote (3 of 3):")
	w.wait("every part edited", func() bool {
		m, _ := w.dfake.Message(last.ID)
		return strings.Contains(text(m), "no longer part of it")
	})
}

// TestRepliesMissedByTheGatewayAreCaughtUp: a reply posted in a case
// thread while no gateway session was connected (threatdesk restarting, a
// session that could not resume) never reached the bot: Discord replays
// only to a resumed session. A new session reads each case thread back
// after the newest message taken from it, and relays what it missed, once.
func TestRepliesMissedByTheGatewayAreCaughtUp(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	alice := discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice", Nick: "Ali of the SOC"}
	w.dfake.AddUser(alice)
	receipt, card := w.open("ask", map[string]any{"question": "missed replies?"}, "EOD-1")
	w.dfake.Say(receipt.ID, alice, "seen live")
	w.wait("the live reply relayed", w.has(card.ID, "seen live"))

	w.dfake.SayWhileOffline(receipt.ID, alice, "posted while threatdesk was down")
	botLine := w.dfake.SayWhileOffline(receipt.ID, discordfake.User{ID: "1000000000000000999", Username: "ci", Bot: true}, "a bot's line")
	w.dfake.DropSessions() // the client identifies again: a new session
	w.wait("the missed reply relayed", w.has(card.ID, "posted while threatdesk was down"))
	caught, _ := w.find(card.ID, "posted while threatdesk was down")
	require.Contains(t, text(caught), "**Ali of the SOC** (requester, Fabrikam) wrote:", "named as a live relay is: by the server nickname")

	reads := func() []string {
		var qs []string
		for _, c := range w.dfake.Calls() {
			if c.Method == "GET" && c.Path == "/channels/"+receipt.ID+"/messages" {
				qs = append(qs, c.Query)
			}
		}
		return qs
	}
	w.dfake.DropSessions() // and again: nothing is relayed twice
	w.wait("read back again", func() bool { return len(reads()) >= 2 })
	w.settled("all delivered")
	count := map[string]int{}
	for _, m := range w.dfake.Messages(card.ID) {
		for _, s := range []string{"seen live", "posted while threatdesk was down", "a bot's line"} {
			if strings.Contains(text(m), s) {
				count[s]++
			}
		}
	}
	require.Equal(t, map[string]int{"seen live": 1, "posted while threatdesk was down": 1}, count)
	require.Contains(t, reads()[1], "after="+botLine.ID, "read after what the last catch-up read through, not the whole thread")
}

// TestDiscordEditInAChannelGivenToAnotherOrg: a reload gave Fabrikam's
// channel to Northwind; an expert's edit of an answer relayed there before
// was still carried into that channel: on Discord a relayed message's ref
// names its thread, which no org lists, so the check let it through (from
// a review). The receipt's channel decides.
func TestDiscordEditInAChannelGivenToAnotherOrg(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	receipt, card := w.open("ask", map[string]any{"question": "moved?"}, "EOD-1")
	eve := discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"}
	in, _ := w.command(expertID, deskID, "case take", map[string]any{"case": "EOD-1"})
	w.wait("taken", w.answered(in, "EOD-1"))
	w.wait("the take is noted", w.has(receipt.ID, "took EOD-1"))
	answer := w.dfake.Say(card.ID, eve, "an earlier answer")
	w.wait("the answer relayed", w.has(receipt.ID, "an earlier answer"))
	relayed, _ := w.find(receipt.ID, "an earlier answer")
	require.NoError(t, w.bot.SetConfig(bot.Config{
		Orgs: []bot.Org{
			{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{"1000000000000000777"}}},
			{ID: "northwind", Name: "Northwind", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}},
		},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID}},
		Managers: bot.UserIDs{Discord: []string{managerID}},
	}))
	w.dfake.Edit(answer.ID, "the earlier answer, now naming ws-secret-42")
	w.settled("the edit worked")
	m, _ := w.dfake.Message(relayed.ID)
	require.NotContains(t, text(m), "ws-secret-42", "Northwind's channel gets none of Fabrikam's case")
}

// TestDiscordReadOnlyObserverIsNoMember: a press needs only View Channel
// on Discord, so someone who may read the org's channel but not write in
// it (an observer role denied Send Messages) acted as the org's member:
// opened cases on its credits, added details (from a review). A member
// is someone who speaks in the org's channel: the observer is told why
// not, and the analyst goes on as before.
func TestDiscordReadOnlyObserverIsNoMember(t *testing.T) {
	t.Parallel()
	w := newDiscordWording(t, dWordingOpts{})
	const observer, observers = "1000000000000000013", "1000000000000000777"
	w.dfake.AddUser(discordfake.User{ID: observer, Username: "olga"})
	w.dfake.AddRole(guildID, discordfake.Role{ID: observers, Name: "observers", Permissions: "0"})
	w.dfake.SetMemberRoles(observer, observers)
	w.dfake.SetOverwrites(channelID, discordfake.Overwrite{ID: observers, Type: 0, Deny: strconv.FormatInt(discordgo.PermissionSendMessages, 10)})

	const refusal = "You can read Fabrikam's channel but not write in it"
	in, _ := w.command(observer, channelID, "ask", map[string]any{"question": "may I?"})
	w.wait("the observer is told why not", w.answered(in, refusal))
	receipt, _ := w.open("ask", map[string]any{"question": "is this beacon normal?"}, "EOD-1")
	in, err := w.dfake.Interact(w.dfake.ComponentPayload(receipt, observer, customIDWithPrefix(receipt, string(bot.ActAddDetails))))
	require.NoError(t, err)
	w.wait("the observer's press is refused", w.answered(in, refusal))
	w.settled("all worked")
	var cases int
	require.NoError(t, w.db.QueryRow(w.ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.Equal(t, 1, cases, "only the analyst's case opened")
}
