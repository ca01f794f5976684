package discord_test

import (
	"context"
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
	contosoTenant = "a839b112-1253-6432-9bf6-94542403f21c"
	contosoChan   = "1000000000000000095"
)

// TestIncidentSightingsOverDiscord: three orgs in one guild. Fabrikam's
// incident holds an address; Northwind's notified incident holds it too,
// so the expert desk gets one message naming Northwind, its incident
// (linked to the notification) and Fabrikam; Contoso's incident with the
// address comes, Northwind's grows, and that desk message is edited (not
// posted again) to name Contoso. An expert's /experts incidents shows the
// sightings; a member's listing and channel name no other org.
func TestIncidentSightingsOverDiscord(t *testing.T) {
	t.Parallel()
	const ip = "203.0.113.99"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, deskID, northwindChan, contosoChan}}}})
	dfake.AddUser(discordfake.User{ID: bobID, Username: "bob", GlobalName: "Bob"})
	dfake.AddUser(discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"})
	f, hunt, _ := startHuntingFlow(t, ctx, dfake, bot.Config{
		Orgs: []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}},
			{ID: "northwind", Name: "Northwind", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{northwindChan}}},
			{ID: "contoso", Name: "Contoso", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{contosoChan}}}},
		Desk:    bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts: bot.UserIDs{Discord: []string{expertID}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}},
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "fabrikam", Tenants: []string{fabrikamTenant}},
			{ID: "northwind", Tenants: []string{northwindTenant}}, {ID: "contoso", Tenants: []string{contosoTenant}}},
			GroupWait: time.Millisecond, GroupInterval: time.Millisecond}, true)

	see := func(alerts ...hunting.RawAlert) string {
		t.Helper()
		res, err := hunt.Ingest(ctx, alerts)
		require.NoError(t, err)
		_, err = hunt.Sweep(ctx)
		require.NoError(t, err)
		return strconv.FormatInt(res.Items[0].IncidentID, 10)
	}
	// tops counts the bot's own (not interaction) messages of channel
	// containing want.
	tops := func(channel, want string) int {
		n := 0
		for _, m := range f.dfake.Messages(channel) {
			if m.Interaction == "" && strings.Contains(text(m), want) {
				n++
			}
		}
		return n
	}

	fab := see(networkAlert("da0000000000000981_1", fabrikamTenant, "fab-ws-98", ip))
	f.wait("Fabrikam's notification", f.has(channelID, "Incident "+fab+" · threatdesk"))
	nw := see(networkAlert("da0000000000000982_2", northwindTenant, "nw-ws-98", ip))
	f.wait("Northwind's notification", f.has(northwindChan, "Incident "+nw+" · threatdesk"))
	card, _ := f.find(northwindChan, "Incident "+nw+" · threatdesk")
	f.wait("the desk message", f.has(deskID, "Incident "+nw+" at Northwind: also seen at other orgs"))
	desk, _ := f.find(deskID, "Incident "+nw+" at Northwind")
	got := text(desk)
	require.Contains(t, got, "Also seen at (experts only)")
	require.Contains(t, got, "**Fabrikam** (1 device, incident "+fab)
	require.Contains(t, got, "https://discord.com/channels/"+guildID+"/"+northwindChan+"/"+card.ID, "linked to the notification")
	require.NotContains(t, got, "Contoso")

	inBefore, _ := f.command(bobID, northwindChan, "incidents", nil)
	f.wait("Bob's list", f.answered(inBefore, "Incident "+nw))

	con := see(networkAlert("da0000000000000983_3", contosoTenant, "ws-98.contoso.local", ip))
	f.wait("Contoso's desk message", f.has(deskID, "Incident "+con+" at Contoso"))
	grown := see(networkAlert("da0000000000000984_4", northwindTenant, "nw-ws-99", ip))
	require.Equal(t, nw, grown)
	f.wait("the desk message is edited to name Contoso", func() bool {
		m, ok := f.find(deskID, "Incident "+nw+" at Northwind")
		return ok && m.Edits > 0 && strings.Contains(text(m), "**Contoso** (1 device, incident "+con)
	})
	require.Equal(t, 1, tops(deskID, "Incident "+nw+" at Northwind"), "one desk message for the incident, edited")
	require.Zero(t, tops(deskID, "Incident "+fab+" at Fabrikam"), "Fabrikam's incident was alone with the address when notified")

	// The expert's list shows sightings; the member's does not.
	inList, _ := f.command(expertID, deskID, "incidents", nil)
	f.wait("the expert's list", f.answered(inList, "also seen at:"))
	f.wait("the expert's list names Contoso", f.answered(inList, "Contoso (1 device, incident "+con))
	inAfter, _ := f.command(bobID, northwindChan, "incidents", nil)
	f.wait("Bob's list again", f.answered(inAfter, "Incident "+nw))
	var answers []discordfake.Message
	for _, in := range []*discordfake.Interaction{inBefore, inAfter} {
		answers = append(answers, f.dfake.FollowupMessages(in)...)
		if m, ok := f.dfake.OriginalResponse(in); ok {
			answers = append(answers, m)
		}
	}
	for _, m := range answers {
		for _, w := range []string{"seen at", "Fabrikam", "Contoso"} {
			require.NotContains(t, text(m), w)
		}
	}

	// No org's channel names another org or a sighting.
	for ch, others := range map[string][]string{channelID: {"Northwind", "Contoso"}, northwindChan: {"Fabrikam", "Contoso"}, contosoChan: {"Fabrikam", "Northwind"}} {
		for _, m := range f.dfake.Messages(ch) {
			require.NotContains(t, text(m), "seen at", ch)
			for _, o := range others {
				require.NotContains(t, text(m), o, ch)
			}
		}
	}
}
