package discord_test

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

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/hunting"
)

const (
	fabrikamTenant = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
	northwindChan  = "1000000000000000004"
	bobID          = "1000000000000000012"
)

// fabrikamAlert is a Defender alert of Fabrikam's for the incident flow.
func fabrikamAlert(id, severity, category, device, title string, expert bool, at time.Time, status, class string, files ...string) hunting.RawAlert {
	sum := func(s string, long bool) string {
		if long {
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
		"machineId": sum(device, false), "computerDnsName": device, "aadTenantId": fabrikamTenant, "evidence": ev}
	if class != "" {
		m["classification"] = class
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestIncidentsOverDiscord runs incidents worked from chat with the real
// bot, hunting and casework on Postgres behind the adapter, against the
// fake Discord over its gateway: Resolve from the card through a modal
// whose classification is a string select in a label, the edited card
// without action buttons, the note when the source resolves every alert,
// the follow-up card naming the earlier incident, a merged card without
// buttons, /experts incidents quiet with score and why, Notify now from
// its select (twice: one card), Consult from it, and another org's member
// seeing and doing nothing of Fabrikam's.
func TestIncidentsOverDiscord(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID, northwindChan}}}})
	dfake.AddUser(discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"})
	dfake.AddUser(discordfake.User{ID: bobID, Username: "bob", GlobalName: "Bob"})
	dfake.AddUser(discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"})
	f, hunt, db := startHuntingFlow(t, ctx, dfake, bot.Config{
		Orgs: []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}},
			{ID: "northwind", Name: "Northwind", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{northwindChan}}}},
		Desk:    bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts: bot.UserIDs{Discord: []string{expertID}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}}, // the fake does not limit the rate
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "fabrikam", Tenants: []string{fabrikamTenant}}}, GroupWait: time.Millisecond}, false)

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
	cards := func(id string) []discordfake.Message {
		var out []discordfake.Message
		for _, m := range dfake.Messages(channelID) {
			if m.Interaction == "" && strings.Contains(text(m), "Incident "+id+" · threatdesk") {
				out = append(out, m)
			}
		}
		return out
	}
	card := func(id string) discordfake.Message {
		t.Helper()
		f.wait("the card of incident "+id, func() bool { return len(cards(id)) > 0 })
		return cards(id)[0]
	}
	customIDs := func(m discordfake.Message) []string {
		var out []string
		for _, r := range m.Components {
			for _, c := range r.Components {
				out = append(out, strings.Split(c.CustomID, ":")[0])
			}
		}
		return out
	}
	edited := func(id string, want ...string) discordfake.Message {
		t.Helper()
		var got discordfake.Message
		f.wait("the card edited to say "+strings.Join(want, ", "), func() bool {
			m, _ := dfake.Message(id)
			for _, w := range want {
				if !strings.Contains(text(m), w) {
					return false
				}
			}
			got = m
			return true
		})
		return got
	}
	interact := func(p map[string]any, err error) (*discordfake.Interaction, discordfake.Callback) {
		t.Helper()
		require.NoError(t, err)
		in, err := dfake.Interact(p)
		require.NoError(t, err)
		cb, err := in.Wait(5 * time.Second)
		require.NoError(t, err)
		return in, cb
	}
	// answer waits for an interaction's answer containing want and returns it.
	answer := func(in *discordfake.Interaction, want string) discordfake.Message {
		t.Helper()
		f.wait("the answer "+want, f.answered(in, want))
		msgs := dfake.FollowupMessages(in)
		if m, ok := dfake.OriginalResponse(in); ok {
			msgs = append(msgs, m)
		}
		for _, m := range msgs {
			if strings.Contains(strings.ToLower(text(m)), strings.ToLower(want)) {
				return m
			}
		}
		return discordfake.Message{}
	}
	now := time.Now()

	// 1. Resolve from the card, through a modal with a select.
	first := ingest(fabrikamAlert("da0000000000000201_1", "High", "LateralMovement", "ws-1.fabrikam.local", "PsExec spread", true, now.Add(-3*time.Hour), "New", "", "implant.dll"))[0]
	c1 := card(first)
	require.Contains(t, customIDs(c1), string(bot.ActResolve))
	_, cb := interact(dfake.ComponentPayload(c1, analystID, customIDWithPrefix(c1, string(bot.ActResolve))), nil)
	require.Equal(t, 9, cb.Type, "Resolve opens a modal: %s", cb.Data)
	var modal discordfake.ModalBody
	require.NoError(t, json.Unmarshal(cb.Data, &modal))
	require.Equal(t, 18, modal.Components[0].Type, "the classification is a select in a label")
	require.Equal(t, 3, modal.Components[0].Component.Type)
	sin, cb := interact(dfake.SubmitModal(channelID, analystID, modal, map[string]string{"classification": "true_positive", "comment": "Isolated ws-1 @everyone"}, &c1))
	require.Equal(t, 6, cb.Type, string(cb.Data))
	answer(sin, "Resolved incident "+first+" as true positive")
	m := edited(c1.ID, "Resolved by", "Alice", "true positive", "Isolated ws-1 @\u200beveryone")
	require.NotContains(t, customIDs(m), string(bot.ActResolve))
	require.NotContains(t, customIDs(m), string(bot.ActAcknowledge))
	f.wait("the resolution in the card's thread", f.has(c1.ID, "Resolved by Alice as true positive"))

	// 2. New activity on its device: a new incident whose card names it.
	follow := ingest(fabrikamAlert("da0000000000000201_2", "High", "CommandAndControl", "ws-1.fabrikam.local", "Beacon", true, now.Add(-2*time.Hour), "New", "", "implant.dll"))[0]
	require.NotEqual(t, first, follow)
	require.Contains(t, text(card(follow)), "Follows incident "+first+"** (PsExec spread on ws-1.fabrikam.local), which was closed")

	// 3. The source resolves every alert: the incident resolves itself.
	auto := ingest(fabrikamAlert("da0000000000000202_1", "High", "Execution", "ws-2.fabrikam.local", "Odd script", true, now.Add(-time.Hour), "New", ""))[0]
	c3 := card(auto)
	ingest(fabrikamAlert("da0000000000000202_1", "High", "Execution", "ws-2.fabrikam.local", "Odd script", true, now.Add(-time.Hour), "Resolved", "FalsePositive"))
	f.wait("the note in the card's thread", f.has(c3.ID, "resolved in the source (Defender or Graph) as false positive"))
	m = edited(c3.ID, "the source: every alert was resolved", "false positive")
	require.NotContains(t, customIDs(m), string(bot.ActResolve))

	// 4. A merged card keeps no button.
	mA := ingest(fabrikamAlert("da0000000000000203_1", "High", "Execution", "ws-3a.fabrikam.local", "A", true, now.Add(-time.Hour), "New", "", "a.exe"))[0]
	mB := ingest(fabrikamAlert("da0000000000000203_2", "High", "Execution", "ws-3b.fabrikam.local", "B", true, now.Add(-time.Hour), "New", "", "b.exe"))[0]
	card(mA)
	cB := card(mB)
	ingest(fabrikamAlert("da0000000000000203_3", "High", "Execution", "ws-3a.fabrikam.local", "C", true, now.Add(-50*time.Minute), "New", "", "b.exe"))
	m = edited(cB.ID, "Merged into incident "+mA)
	require.Empty(t, m.Components, "a merged card keeps no button")

	// 5. A quiet incident: listed with score and why; Notify now twice
	// posts one card; Consult opens a case.
	quiet := ingest(fabrikamAlert("da0000000000000204_1", "Low", "Discovery", "ws-9.fabrikam.local", "Share enumeration", false, now.Add(-20*time.Minute), "New", ""))[0]
	in, _ := f.command(analystID, channelID, "incidents", map[string]any{"filter": "quiet"})
	list := answer(in, "Quiet incidents: not notified · Fabrikam")
	require.Contains(t, text(list), "Incident "+quiet+"** · score ")
	require.Contains(t, text(list), "quiet: not posted")
	require.Contains(t, text(list), "why: +")
	notifyValue, ok := discordfake.OptionLabeled(list, string(bot.ActNotifyNow), "Incident "+quiet)
	require.True(t, ok, "a Notify now select names the incident: %+v", list.Components)

	// Bob, of Northwind, sees none of it; naming Fabrikam is answered as any word.
	in, _ = f.command(bobID, northwindChan, "incidents", map[string]any{"filter": "all"})
	other := answer(in, "No incidents.")
	require.NotContains(t, text(other), "Share enumeration")
	in, _ = f.command(bobID, northwindChan, "incidents", map[string]any{"filter": "quiet", "org": "fabrikam"})
	named := answer(in, "is not a list")
	in, _ = f.command(bobID, northwindChan, "incidents", map[string]any{"filter": "quiet", "org": "nosuchorg"})
	madeUp := answer(in, "is not a list")
	require.Equal(t, strings.ReplaceAll(text(named), "fabrikam", "X"), strings.ReplaceAll(text(madeUp), "nosuchorg", "X"))
	// Even choosing Notify now on Fabrikam's line from his channel gets "no such incident".
	elsewhere := list
	elsewhere.ChannelID = northwindChan
	in, _ = interact(dfake.SelectPayload(elsewhere, bobID, string(bot.ActNotifyNow), notifyValue))
	answer(in, "No such incident in your organisation")

	in1, _ := interact(dfake.SelectPayload(list, analystID, string(bot.ActNotifyNow), notifyValue))
	in2, _ := interact(dfake.SelectPayload(list, analystID, string(bot.ActNotifyNow), notifyValue))
	f.wait("both presses answered", func() bool {
		a, b := f.answered(in1, "is being posted"), f.answered(in2, "is being posted")
		c, d := f.answered(in1, "was already posted"), f.answered(in2, "was already posted")
		return (a() && d()) || (b() && c())
	})
	card(quiet)
	// The database signals nothing: poll it until the bot has sent what it had to.
	require.Eventually(t, func() bool {
		var n int
		return db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n) == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "the outbox drained")
	require.Len(t, cards(quiet), 1, "Notify now chosen twice posts one card")

	consultValue, ok := discordfake.OptionLabeled(list, string(bot.ActConsult), "Incident "+quiet)
	require.True(t, ok)
	_, cb = interact(dfake.SelectPayload(list, analystID, string(bot.ActConsult), consultValue))
	require.Equal(t, 9, cb.Type, "Consult opens a modal: %s", cb.Data)
	require.NoError(t, json.Unmarshal(cb.Data, &modal))
	sin, _ = interact(dfake.SubmitModal(channelID, analystID, modal, map[string]string{"question": "Is this enumeration the start of something?"}, &list))
	answer(sin, "Opened EOD-1")
	f.wait("the desk card names the incident", f.has(deskID, "EOD-1 · Fabrikam · Incident Share enumeration"))

	require.Empty(t, dfake.Pings())
	require.Empty(t, dfake.Violations())
}
