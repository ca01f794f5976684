package slack_test

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

const incContosoTenant = "a839b112-1253-6432-9bf6-94542403f21c"

// incidentAlert is a Defender alert of Contoso's for the incident flow.
func incidentAlert(id, severity, category, device, title string, expert bool, at time.Time, status, class string, files ...string) hunting.RawAlert {
	sum := func(s string, sha256sum bool) string {
		if sha256sum {
			h := sha256.Sum256([]byte(s))
			return hex.EncodeToString(h[:])
		}
		h := sha1.Sum([]byte(s))
		return hex.EncodeToString(h[:])
	}
	src := "WindowsDefenderAtp"
	if expert {
		src = "ThreatExperts"
	}
	ev := []map[string]any{}
	for _, f := range files {
		ev = append(ev, map[string]any{"entityType": "File", "sha1": sum(f, false), "sha256": sum(f, true), "fileName": f, "filePath": `C:\Temp`})
	}
	m := map[string]any{"id": id, "severity": severity, "status": status, "detectionSource": src, "category": category, "title": title,
		"alertCreationTime": at.Add(time.Minute).Format(time.RFC3339), "firstEventTime": at.Format(time.RFC3339),
		"lastEventTime": at.Format(time.RFC3339), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339),
		"machineId": sum(device, false), "computerDnsName": device, "aadTenantId": incContosoTenant, "evidence": ev}
	if class != "" {
		m["classification"] = class
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestIncidentsOverSlack runs incidents worked from chat with the real bot,
// hunting and casework on Postgres behind the adapter, against the fake
// Slack over Socket Mode: Resolve from the card through a modal with a
// select, the edited card without action buttons, the note when the source
// resolves every alert, the follow-up card naming the earlier incident, a
// merged card without buttons, /experts incidents quiet with score and why,
// Notify now from its overflow menu (twice: one card), Consult from it, and
// another org's member seeing and doing nothing of Contoso's.
func TestIncidentsOverSlack(t *testing.T) {
	t.Parallel()
	const (
		team   = "T0CONTOSO"
		soc    = "C0CONTOSOSOC"
		fabSOC = "C0FABRIKAMSOC"
		desk   = "C0EXPERTDESK"
		alice  = "U0ANALYST1"
		bob    = "U0FABANALYST"
		eve    = "U0EXPERT1"
	)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   team,
		Channels: []slackfake.Channel{{ID: soc, Name: "soc"}, {ID: fabSOC, Name: "fabrikam-soc"}, {ID: desk, Name: "expert-desk"}},
		Users: []slackfake.User{{ID: alice, Name: "alice", DisplayName: "Alice"}, {ID: bob, Name: "bob", DisplayName: "Bob"},
			{ID: eve, Name: "eve", RealName: "Eve Expert"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	db, hunt := startHuntingBot(t, ctx, fake, bot.Config{
		Orgs: []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: team, Channels: []string{soc}}},
			{ID: "fabrikam", Name: "Fabrikam", Slack: &bot.SlackPlace{Team: team, Channels: []string{fabSOC}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: desk}},
		Experts: bot.UserIDs{Slack: []string{eve}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}}, // the fake does not limit the rate
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{incContosoTenant}}}, GroupWait: time.Millisecond}, false)

	wait := func(what string, cond func() bool) {
		t.Helper()
		if !testwait.Until(20*time.Second, cond, fake) {
			for _, m := range fake.Messages("") {
				t.Logf("message %s %s thread=%q edits=%d: %s", m.Channel, m.TS, m.ThreadTS, m.Edits, texts(t, m.Blocks))
			}
			for _, r := range fake.Responses() {
				t.Logf("response: %s %s", r.Text, texts(t, r.Blocks))
			}
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	ingest := func(alerts ...hunting.RawAlert) []string {
		t.Helper()
		res, err := hunt.Ingest(ctx, alerts)
		require.NoError(t, err)
		_, err = hunt.Sweep(ctx)
		require.NoError(t, err)
		var ids []string
		for _, it := range res.Items {
			require.NotZero(t, it.IncidentID, "%+v", it)
			ids = append(ids, strconv.FormatInt(it.IncidentID, 10))
		}
		return ids
	}
	cards := func(id string) []slackfake.Message {
		var out []slackfake.Message
		for _, m := range fake.Messages(soc) {
			if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(texts(t, m.Blocks), "Incident "+id+" · threatdesk") {
				out = append(out, m)
			}
		}
		return out
	}
	card := func(id string) slackfake.Message {
		t.Helper()
		wait("the card of incident "+id, func() bool { return len(cards(id)) > 0 })
		return cards(id)[0]
	}
	inThread := func(ts, want string) func() bool {
		return func() bool {
			for _, m := range fake.Replies(soc, ts) {
				if strings.Contains(texts(t, m.Blocks), want) {
					return true
				}
			}
			return false
		}
	}
	// actionIDs are the action_ids of a message's buttons and menus.
	actionIDs := func(raw []byte) []string {
		var blocks []map[string]any
		require.NoError(t, json.Unmarshal(raw, &blocks))
		var out []string
		for _, bl := range blocks {
			els, _ := bl["elements"].([]any)
			if acc, ok := bl["accessory"]; ok {
				els = append(els, acc)
			}
			for _, e := range els {
				if id, _ := e.(map[string]any)["action_id"].(string); id != "" {
					out = append(out, strings.Split(id, "/")[0])
				}
			}
		}
		return out
	}
	edited := func(ts string, want ...string) slackfake.Message {
		t.Helper()
		var got slackfake.Message
		wait("the card edited to say "+strings.Join(want, ", "), func() bool {
			m, _ := fake.Message(soc, ts)
			all := texts(t, m.Blocks)
			for _, w := range want {
				if !strings.Contains(all, w) {
					return false
				}
			}
			got = m
			return true
		})
		return got
	}
	interact := func(p map[string]any, err error) slackfake.Ack {
		t.Helper()
		require.NoError(t, err)
		ack, err := fake.Interactive(ctx, p)
		require.NoError(t, err)
		return ack
	}
	responses := func(want string) int {
		n := 0
		for _, r := range fake.Responses() {
			if strings.Contains(r.Text+"\n"+texts(t, r.Blocks), want) {
				n++
			}
		}
		return n
	}
	command := func(user, channel, text string) slackfake.Response {
		t.Helper()
		before := len(fake.Responses())
		_, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, Text: text})
		require.NoError(t, err)
		wait("the answer to "+text, func() bool { return len(fake.Responses()) > before })
		return fake.Responses()[before]
	}
	now := time.Now()

	// 1. Resolve from the card, through the modal.
	first := ingest(incidentAlert("da0000000000000101_1", "High", "LateralMovement", "ws-1.contoso.local", "PsExec spread", true, now.Add(-3*time.Hour), "New", "", "implant.dll"))[0]
	c1 := card(first)
	require.Contains(t, actionIDs(c1.Blocks), string(bot.ActResolve))
	interact(fake.Press(soc, c1.TS, alice, string(bot.ActResolve)))
	wait("the Resolve form", func() bool { return len(fake.Views()) == 1 })
	view := fake.Views()[0]
	require.Contains(t, string(view.View), `"type":"static_select"`)
	require.Contains(t, texts(t, view.View), "Informational, expected activity")
	sub, err := fake.Submit(view, alice, map[string]string{"classification": "true_positive", "comment": "Isolated ws-1 <!here>"})
	require.NoError(t, err)
	ack, err := fake.Interactive(ctx, sub)
	require.NoError(t, err)
	require.Empty(t, ack.Payload, "the form closes: %s", ack.Payload)
	m := edited(c1.TS, "Resolved by", "Alice", "true positive", "Isolated ws-1 &lt;!here&gt;")
	ids := actionIDs(m.Blocks)
	require.NotContains(t, ids, string(bot.ActResolve))
	require.NotContains(t, ids, string(bot.ActAcknowledge))
	wait("the resolution in the card's thread", inThread(c1.TS, "Resolved by Alice as true positive"))

	// 2. New activity on its device: a new incident whose card names it.
	follow := ingest(incidentAlert("da0000000000000101_2", "High", "CommandAndControl", "ws-1.contoso.local", "Beacon", true, now.Add(-2*time.Hour), "New", "", "implant.dll"))[0]
	require.NotEqual(t, first, follow)
	require.Contains(t, texts(t, card(follow).Blocks), "Follows incident "+first+"* (PsExec spread on ws-1.contoso.local), which was closed")

	// 3. The source resolves every alert: the incident resolves itself.
	auto := ingest(incidentAlert("da0000000000000102_1", "High", "Execution", "ws-2.contoso.local", "Odd script", true, now.Add(-time.Hour), "New", ""))[0]
	c3 := card(auto)
	ingest(incidentAlert("da0000000000000102_1", "High", "Execution", "ws-2.contoso.local", "Odd script", true, now.Add(-time.Hour), "Resolved", "FalsePositive"))
	wait("the note in the card's thread", inThread(c3.TS, "resolved in the source (Defender or Graph) as false positive"))
	m = edited(c3.TS, "the source: every alert was resolved", "false positive")
	require.NotContains(t, actionIDs(m.Blocks), string(bot.ActResolve))

	// 4. Two posted incidents linked by a later alert: the younger one's
	// card points at the older and keeps no button.
	mA := ingest(incidentAlert("da0000000000000103_1", "High", "Execution", "ws-3a.contoso.local", "A", true, now.Add(-time.Hour), "New", "", "a.exe"))[0]
	mB := ingest(incidentAlert("da0000000000000103_2", "High", "Execution", "ws-3b.contoso.local", "B", true, now.Add(-time.Hour), "New", "", "b.exe"))[0]
	card(mA)
	cB := card(mB)
	ingest(incidentAlert("da0000000000000103_3", "High", "Execution", "ws-3a.contoso.local", "C", true, now.Add(-50*time.Minute), "New", "", "b.exe"))
	m = edited(cB.TS, "Merged into incident "+mA)
	require.Empty(t, actionIDs(m.Blocks), "a merged card keeps no button")

	// 5. A quiet incident: listed with score and why, Notify now twice
	// posts one card, Consult opens a case.
	quiet := ingest(incidentAlert("da0000000000000104_1", "Low", "Discovery", "ws-9.contoso.local", "Share enumeration", false, now.Add(-20*time.Minute), "New", ""))[0]
	list := command(alice, soc, "incidents quiet")
	all := texts(t, list.Blocks)
	require.Contains(t, all, "Quiet incidents: not notified · Contoso")
	require.Contains(t, all, "Incident "+quiet+"* · score ")
	require.Contains(t, all, "quiet: not posted")
	require.Contains(t, all, "why: +")
	require.Contains(t, string(list.Blocks), `"type":"overflow"`)

	// Bob, of Fabrikam, sees none of it; naming Contoso is answered as any word.
	other := command(bob, fabSOC, "incidents all")
	require.NotContains(t, texts(t, other.Blocks)+other.Text, "Share enumeration")
	require.Contains(t, texts(t, other.Blocks)+other.Text, "No incidents.")
	named := command(bob, fabSOC, "incidents quiet contoso")
	madeUp := command(bob, fabSOC, "incidents quiet nosuchorg")
	require.Equal(t, strings.ReplaceAll(texts(t, named.Blocks), "contoso", "X"), strings.ReplaceAll(texts(t, madeUp.Blocks), "nosuchorg", "X"))
	require.Contains(t, texts(t, named.Blocks), "is not a list")
	// Even choosing Notify now on Contoso's line from his channel gets "not found".
	before := len(fake.Responses())
	interact(fake.ChooseInResponse(list, fabSOC, bob, "Incident "+quiet+"*", "Notify now"))
	wait("Bob is answered", func() bool { return len(fake.Responses()) > before })
	require.Contains(t, fake.Responses()[before].Text, "No such incident")

	interact(fake.ChooseInResponse(list, soc, alice, "Incident "+quiet+"*", "Notify now"))
	interact(fake.ChooseInResponse(list, soc, alice, "Incident "+quiet+"*", "Notify now"))
	wait("both presses answered", func() bool {
		return responses("Incident "+quiet+" is being posted") == 1 && responses("Incident "+quiet+" was already posted") == 1
	})
	card(quiet)
	// The card is posted once: wait for everything the bot had to send.
	// The database signals nothing: poll it until the bot has sent what it had to.
	require.Eventually(t, func() bool {
		var n int
		return db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n) == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "the outbox drained")
	require.Len(t, cards(quiet), 1, "Notify now pressed twice posts one card")

	interact(fake.ChooseInResponse(list, soc, alice, "Incident "+quiet+"*", "Consult"))
	wait("the Consult form", func() bool { return len(fake.Views()) == 2 })
	sub, err = fake.Submit(fake.Views()[1], alice, map[string]string{"question": "Is this enumeration the start of something?"})
	require.NoError(t, err)
	_, err = fake.Interactive(ctx, sub)
	require.NoError(t, err)
	wait("the analyst is told the case is open", func() bool {
		for _, m := range fake.Messages(soc) {
			if m.Ephemeral && m.To == alice && strings.Contains(m.Text+texts(t, m.Blocks), "Opened EOD-1") {
				return true
			}
		}
		return false
	})
	wait("the desk card names the incident", func() bool {
		for _, m := range fake.Messages(desk) {
			if strings.Contains(texts(t, m.Blocks), "EOD-1 · Contoso · Incident Share enumeration") {
				return true
			}
		}
		return false
	})
	require.Empty(t, fake.Violations())
}
