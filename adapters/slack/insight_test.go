package slack_test

import (
	"context"
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

const insFabrikamTenant = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"

// c2Alert is an expert-raised alert of tenant about a connection from
// device to ip.
func c2Alert(id, tenant, device, ip string) hunting.RawAlert {
	at := time.Now().Add(-20 * time.Minute)
	m := map[string]any{"id": id, "severity": "High", "status": "New", "detectionSource": "ThreatExperts", "category": "CommandAndControl",
		"title": "Connection to a C2 server", "alertCreationTime": at.Add(time.Minute).Format(time.RFC3339),
		"firstEventTime": at.Format(time.RFC3339), "lastEventTime": at.Format(time.RFC3339), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339),
		"machineId": strings.Repeat("b", 39) + id[len(id)-1:], "computerDnsName": device, "aadTenantId": tenant,
		"evidence": []map[string]any{{"entityType": "Ip", "ipAddress": ip}}}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestInsightOverSlack runs the insight commands as typed in Slack against
// the fake over Socket Mode: /experts ip, url and actor open cases whose
// desk card shows what the org knows and, for the experts, where else the
// address was seen; the notification card offers "Ask about this address";
// "/experts campaign tag" links an incident (its card says so, and names
// the campaign once shared); a member of the other org is refused the
// campaign commands and sees nothing of Contoso's.
func TestInsightOverSlack(t *testing.T) {
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
	_, hunt := startHuntingBot(t, ctx, fake, bot.Config{
		Orgs: []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: team, Channels: []string{soc}}},
			{ID: "fabrikam", Name: "Fabrikam", Slack: &bot.SlackPlace{Team: team, Channels: []string{fabSOC}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: desk}},
		Experts: bot.UserIDs{Slack: []string{eve}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{incContosoTenant}},
			{ID: "fabrikam", Tenants: []string{insFabrikamTenant}}}, GroupWait: time.Millisecond}, true)

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
	// posted waits for a top-level message in channel containing want.
	posted := func(channel, want string) slackfake.Message {
		t.Helper()
		var got slackfake.Message
		wait(want+" in "+channel, func() bool {
			for _, m := range fake.Messages(channel) {
				if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(texts(t, m.Blocks), want) {
					got = m
					return true
				}
			}
			return false
		})
		return got
	}
	// command runs /experts text and waits for an answer containing want.
	command := func(user, channel, text, want string) string {
		t.Helper()
		before := len(fake.Responses())
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, Text: text})
		require.NoError(t, err)
		if strings.Contains(string(ack.Payload), want) {
			return string(ack.Payload) // answered in the acknowledgement
		}
		var got string
		wait("the answer to "+text, func() bool {
			for _, r := range fake.Responses()[before:] {
				if s := r.Text + "\n" + texts(t, r.Blocks); strings.Contains(s, want) {
					got = s
					return true
				}
			}
			return false
		})
		return got
	}

	res, err := hunt.Ingest(ctx, []hunting.RawAlert{
		c2Alert("da0000000000000801_1", incContosoTenant, "ws-c2.contoso.local", "198.51.100.7"),
		c2Alert("da0000000000000802_2", insFabrikamTenant, "fab-c2", "198.51.100.7"),
	})
	require.NoError(t, err)
	_, err = hunt.Sweep(ctx)
	require.NoError(t, err)
	conInc, fabInc := strconv.FormatInt(res.Items[0].IncidentID, 10), strconv.FormatInt(res.Items[1].IncidentID, 10)
	card := posted(soc, "Incident "+conInc+" · threatdesk")
	require.Contains(t, texts(t, card.Blocks), "Ask about this address")

	// /experts ip, url, actor.
	answer := command(alice, soc, "ip 198.51.100.7 is this our C2?", "Opened EOD-")
	require.NotContains(t, answer, "Fabrikam")
	d := texts(t, posted(desk, "IP 198.51.100.7").Blocks)
	require.Contains(t, d, "What threatdesk knows of it at Contoso")
	require.Contains(t, d, "ws-c2.contoso.local")
	require.Contains(t, d, "Also seen at (experts only)")
	require.Contains(t, d, "*Fabrikam* (1 device, incident "+fabInc)
	answer = command(bob, fabSOC, "url cdn.evil.example what did it download?", "Opened EOD-")
	require.NotContains(t, answer, "Contoso")
	posted(desk, "URL cdn[.]evil[.]example")
	command(bob, fabSOC, `actor "Midnight Blizzard" are we targeted?`, "Opened EOD-")
	posted(desk, "Actor Midnight Blizzard")
	command(bob, fabSOC, "ip 10.0.0.300", "is not an IP address")

	// Campaigns.
	command(eve, desk, "campaign tag "+conInc+" Storm-0501", "Tagged incident "+conInc+" (Contoso")
	wait("the card says it is linked", func() bool {
		m, _ := fake.Message(soc, card.TS)
		return strings.Contains(texts(t, m.Blocks), "Linked by the threat experts to a campaign they track.")
	})
	got := command(eve, desk, "campaign Storm-0501", "Campaign Storm-0501")
	require.Contains(t, got, "incident "+conInc)
	refused := command(bob, fabSOC, "campaign Storm-0501", "Only threat experts can work campaigns")
	require.Equal(t, refused, command(bob, fabSOC, "campaign NoSuchCampaign", "Only threat experts can work campaigns"))
	command(eve, desk, "campaign share Storm-0501", "Shared the campaign Storm-0501")
	wait("the card names the campaign", func() bool {
		m, _ := fake.Message(soc, card.TS)
		return strings.Contains(texts(t, m.Blocks), "Storm-0501")
	})
	m, _ := fake.Message(soc, card.TS)
	require.Contains(t, texts(t, m.Blocks), "Linked by the threat experts to a campaign they track")

	// Fabrikam's side names nothing of Contoso's.
	for _, m := range fake.Messages(fabSOC) {
		require.NotContains(t, texts(t, m.Blocks)+m.Text, "Contoso")
		require.NotContains(t, texts(t, m.Blocks)+m.Text, "ws-c2")
		require.NotContains(t, texts(t, m.Blocks)+m.Text, "Storm-0501")
	}
}
