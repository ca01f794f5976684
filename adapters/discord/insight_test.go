package discord_test

import (
	"context"
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

const northwindTenant = "0d3f5e0a-4c1b-4f7e-9a55-6b2f3c9e1d21"

// networkAlert is an expert-raised alert of tenant about a connection to
// ip from device.
func networkAlert(id, tenant, device, ip string) hunting.RawAlert {
	at := time.Now().Add(-20 * time.Minute)
	m := map[string]any{"id": id, "severity": "High", "status": "New", "detectionSource": "ThreatExperts", "category": "CommandAndControl",
		"title": "Connection to a C2 server", "alertCreationTime": at.Add(time.Minute).Format(time.RFC3339),
		"firstEventTime": at.Format(time.RFC3339), "lastEventTime": at.Format(time.RFC3339), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339),
		"machineId": strings.Repeat("a", 39) + id[len(id)-1:], "computerDnsName": device, "aadTenantId": tenant,
		"evidence": []map[string]any{{"entityType": "Ip", "ipAddress": ip}}}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestInsightOverDiscord runs the insight subcommands with their typed
// options against the fake Discord: /experts ip, url and actor open cases
// whose desk card shows what the org knows and, for the experts, where else
// the address was seen; the notification card offers "Ask about this
// address"; the campaign verb group tags an incident (its card then says it
// is linked to a campaign the experts track) and lists it. Northwind's
// member sees nothing of Fabrikam's, and is refused the campaign commands.
func TestInsightOverDiscord(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID, northwindChan}}}})
	dfake.AddUser(discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"})
	dfake.AddUser(discordfake.User{ID: bobID, Username: "bob", GlobalName: "Bob"})
	dfake.AddUser(discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"})
	f, hunt, _ := startHuntingFlow(t, ctx, dfake, bot.Config{
		Orgs: []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}},
			{ID: "northwind", Name: "Northwind", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{northwindChan}}}},
		Desk:    bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts: bot.UserIDs{Discord: []string{expertID}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}},
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "fabrikam", Tenants: []string{fabrikamTenant}},
			{ID: "northwind", Tenants: []string{northwindTenant}}}, GroupWait: time.Millisecond}, true)

	res, err := hunt.Ingest(ctx, []hunting.RawAlert{
		networkAlert("da0000000000000901_1", fabrikamTenant, "fab-ws-1", "198.51.100.7"),
		networkAlert("da0000000000000902_2", northwindTenant, "nw-ws-2", "198.51.100.7"),
	})
	require.NoError(t, err)
	_, err = hunt.Sweep(ctx)
	require.NoError(t, err)
	fabInc, nwInc := strconv.FormatInt(res.Items[0].IncidentID, 10), strconv.FormatInt(res.Items[1].IncidentID, 10)
	f.wait("Fabrikam's notification", f.has(channelID, "Incident "+fabInc+" · threatdesk"))
	card, _ := f.find(channelID, "Incident "+fabInc+" · threatdesk")
	require.NotEmpty(t, customIDWithPrefix(card, "ask_entity"), "the card offers Ask about this address")
	labels := []string{}
	for _, r := range card.Components {
		for _, c := range r.Components {
			labels = append(labels, c.Label)
		}
	}
	require.Contains(t, labels, "Ask about this address")

	// /experts ip with typed options.
	inIP, _ := f.command(analystID, channelID, "ip", map[string]any{"ip": "198.51.100.7", "question": "Is this our C2?"})
	f.wait("the ip case opens", f.answered(inIP, "Opened EOD-"))
	f.wait("its desk card", f.has(deskID, "IP 198.51.100.7"))
	desk, _ := f.find(deskID, "IP 198.51.100.7")
	got := text(desk)
	require.Contains(t, got, "Fabrikam")
	require.Contains(t, got, "What threatdesk knows of it at Fabrikam")
	require.Contains(t, got, "fab-ws-1")
	require.Contains(t, got, "Also seen at (experts only)")
	require.Contains(t, got, "**Northwind** (1 device, incident "+nwInc)

	// /experts url and /experts actor, from Northwind.
	inURL, _ := f.command(bobID, northwindChan, "url", map[string]any{"url": "https://cdn.evil.example/p.bin"})
	f.wait("the url case opens", f.answered(inURL, "Opened EOD-"))
	f.wait("its desk card", f.has(deskID, `URL hxxps\[://\]cdn\[.\]evil\[.\]example/p\[.\]bin`)) // defanged, and escaped for Discord
	inActor, _ := f.command(bobID, northwindChan, "actor", map[string]any{"actor": "Midnight Blizzard", "question": "Are we targeted?"})
	f.wait("the actor case opens", f.answered(inActor, "Opened EOD-"))
	f.wait("its desk card", f.has(deskID, "Actor Midnight Blizzard"))
	inBad, _ := f.command(bobID, northwindChan, "ip", map[string]any{"ip": "300.1.1.1"})
	f.wait("bad input is told", f.answered(inBad, "is not an IP address"))

	// Campaigns, through the verb group.
	inTag, _ := f.command(expertID, deskID, "campaign tag", map[string]any{"target": fabInc, "name": "Storm-0501"})
	f.wait("tagged", f.answered(inTag, "Tagged incident "+fabInc+" (Fabrikam"))
	f.wait("the card says it is linked", func() bool {
		m, ok := f.find(channelID, "Incident "+fabInc+" · threatdesk")
		return ok && strings.Contains(text(m), "Linked by the threat experts to a campaign they track.")
	})
	inShow, _ := f.command(expertID, deskID, "campaign show", map[string]any{"name": "storm-0501"})
	f.wait("the campaign list", f.answered(inShow, "**incident "+fabInc+"** · Fabrikam"))
	inMember, _ := f.command(bobID, northwindChan, "campaign show", map[string]any{"name": "Storm-0501"})
	f.wait("a member is refused", f.answered(inMember, "Only threat experts can work campaigns"))

	// Northwind's side names nothing of Fabrikam's.
	for _, m := range dfake.Messages(northwindChan) {
		require.NotContains(t, text(m), "Fabrikam")
		require.NotContains(t, text(m), "fab-ws-1")
		require.NotContains(t, text(m), "Storm-0501")
	}
	for _, in := range []*discordfake.Interaction{inURL, inActor, inBad, inMember} {
		for _, m := range dfake.FollowupMessages(in) {
			require.NotContains(t, text(m), "Fabrikam")
		}
		if m, ok := dfake.OriginalResponse(in); ok {
			require.NotContains(t, text(m), "Fabrikam")
		}
	}
}
