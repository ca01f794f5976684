package slack_test

import (
	"context"
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

const insNorthwindTenant = "c7d2e4f0-1111-4222-8333-944455556666"

// TestIncidentSightingsOverSlack: three orgs on one Slack team. Contoso's
// incident holds an address; Fabrikam's notified incident holds it too, so
// the expert desk gets one message (org, incident linked to its
// notification's permalink, "Also seen at: Contoso (…)"); Northwind's
// incident with the address comes, Fabrikam's incident grows, and that
// desk message is edited (never posted twice) to name Northwind. An
// expert's /experts incidents shows each incident's sightings; a member's
// listing does not change; no org's channel names another org.
func TestIncidentSightingsOverSlack(t *testing.T) {
	t.Parallel()
	const (
		team   = "T0CONTOSO"
		soc    = "C0CONTOSOSOC"
		fabSOC = "C0FABRIKAMSOC"
		nwSOC  = "C0NORTHWINDSOC"
		desk   = "C0EXPERTDESK"
		bob    = "U0FABANALYST"
		eve    = "U0EXPERT1"
		ip     = "198.51.100.77"
	)
	fake := slackfake.New(t, slackfake.Options{
		TeamID: team,
		Channels: []slackfake.Channel{{ID: soc, Name: "soc"}, {ID: fabSOC, Name: "fabrikam-soc"}, {ID: nwSOC, Name: "northwind-soc"},
			{ID: desk, Name: "expert-desk"}},
		Users: []slackfake.User{{ID: bob, Name: "bob", DisplayName: "Bob"}, {ID: eve, Name: "eve", RealName: "Eve Expert"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	_, hunt := startHuntingBot(t, ctx, fake, bot.Config{
		Orgs: []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: team, Channels: []string{soc}}},
			{ID: "fabrikam", Name: "Fabrikam", Slack: &bot.SlackPlace{Team: team, Channels: []string{fabSOC}}},
			{ID: "northwind", Name: "Northwind", Slack: &bot.SlackPlace{Team: team, Channels: []string{nwSOC}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: desk}},
		Experts: bot.UserIDs{Slack: []string{eve}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
	},
		hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{incContosoTenant}},
			{ID: "fabrikam", Tenants: []string{insFabrikamTenant}}, {ID: "northwind", Tenants: []string{insNorthwindTenant}}},
			GroupWait: time.Millisecond, GroupInterval: time.Millisecond}, true)

	wait := func(what string, cond func() bool) {
		t.Helper()
		if !testwait.Until(20*time.Second, cond, fake) {
			for _, m := range fake.Messages("") {
				t.Logf("message %s %s thread=%q edits=%d: %s", m.Channel, m.TS, m.ThreadTS, m.Edits, texts(t, m.Blocks))
			}
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	// tops are the top-level messages of channel containing want.
	tops := func(channel, want string) []slackfake.Message {
		var out []slackfake.Message
		for _, m := range fake.Messages(channel) {
			if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(texts(t, m.Blocks), want) {
				out = append(out, m)
			}
		}
		return out
	}
	posted := func(channel, want string) slackfake.Message {
		t.Helper()
		wait(want+" in "+channel, func() bool { return len(tops(channel, want)) > 0 })
		return tops(channel, want)[0]
	}
	command := func(user, channel, text, want string) string {
		t.Helper()
		before := len(fake.Responses())
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, Text: text})
		require.NoError(t, err)
		if strings.Contains(string(ack.Payload), want) {
			return string(ack.Payload)
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
	see := func(alerts ...hunting.RawAlert) []string {
		t.Helper()
		res, err := hunt.Ingest(ctx, alerts)
		require.NoError(t, err)
		_, err = hunt.Sweep(ctx)
		require.NoError(t, err)
		ids := make([]string, len(res.Items))
		for i, it := range res.Items {
			ids[i] = strconv.FormatInt(it.IncidentID, 10)
		}
		return ids
	}

	con := see(c2Alert("da0000000000000971_1", incContosoTenant, "ws-97.contoso.local", ip))[0]
	posted(soc, "Incident "+con+" · threatdesk")
	fab := see(c2Alert("da0000000000000972_2", insFabrikamTenant, "fab-97", ip))[0]
	fabCard := posted(fabSOC, "Incident "+fab+" · threatdesk")
	deskMsg := posted(desk, "Incident "+fab+" at Fabrikam: also seen at other orgs")
	d := texts(t, deskMsg.Blocks)
	require.Contains(t, d, "Also seen at (experts only)")
	require.Contains(t, d, "*Contoso* (1 device, incident "+con)
	require.Contains(t, d, "by ip "+ip)
	require.Contains(t, d, slackfake.PermalinkOf(fabSOC, fabCard.TS, ""), "linked to the notification")
	require.NotContains(t, d, "Northwind")

	// The members' lists, before Northwind has the address.
	fabBefore := command(bob, fabSOC, "incidents", "Incident "+fab)

	nw := see(c2Alert("da0000000000000973_3", insNorthwindTenant, "nw-97", ip))[0]
	posted(nwSOC, "Incident "+nw+" · threatdesk")
	nwDesk := texts(t, posted(desk, "Incident "+nw+" at Northwind").Blocks)
	require.Contains(t, nwDesk, "*Fabrikam* (1 device, incident "+fab)
	require.Contains(t, nwDesk, "*Contoso* (1 device, incident "+con)

	// Fabrikam's incident grows: the desk message is edited in place.
	grown := see(c2Alert("da0000000000000974_4", insFabrikamTenant, "fab-98", ip))[0]
	require.Equal(t, fab, grown)
	wait("the desk message names Northwind", func() bool {
		m, _ := fake.Message(desk, deskMsg.TS)
		return m.Edits > 0 && strings.Contains(texts(t, m.Blocks), "*Northwind* (1 device, incident "+nw)
	})
	require.Len(t, tops(desk, "Incident "+fab+" at Fabrikam"), 1, "one desk message for the incident, edited")
	require.Empty(t, tops(desk, "Incident "+con+" at Contoso"), "Contoso's incident was alone with the address when notified")

	// An expert's list shows the sightings; a member's is unchanged.
	list := command(eve, desk, "incidents", "Open incidents")
	require.Contains(t, list, "also seen at:")
	require.Contains(t, list, "Northwind (1 device, incident "+nw)
	fabAfter := command(bob, fabSOC, "incidents", "Incident "+fab)
	require.NotContains(t, fabAfter, "seen at")
	require.NotContains(t, fabAfter, "Contoso")
	require.NotContains(t, fabAfter, "Northwind")
	require.Equal(t, strings.Count(fabBefore, "Incident "), strings.Count(fabAfter, "Incident "))

	// No org's channel names another org or a sighting.
	for ch, others := range map[string][]string{soc: {"Fabrikam", "Northwind"}, fabSOC: {"Contoso", "Northwind"}, nwSOC: {"Contoso", "Fabrikam"}} {
		for _, m := range fake.Messages(ch) {
			s := m.Text + texts(t, m.Blocks)
			require.NotContains(t, s, "seen at", ch)
			for _, o := range others {
				require.NotContains(t, s, o, ch)
			}
		}
	}
}
