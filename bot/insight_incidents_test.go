package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// A third org for the sightings of notified incidents: Northwind, on the
// Contoso Slack team, in its own channel.
const (
	northwindTenant = "c7d2e4f0-1111-4222-8333-944455556666"
	northwindSOC    = "C0NORTHWINDSOC"
)

// setupThreeOrgs is setupInsight with Northwind as a third org.
func setupThreeOrgs(t *testing.T, hcfg func(*hunting.Config)) *insightFixture {
	t.Helper()
	db := pgtest.New(t)
	cfg := hunting.Config{Orgs: []hunting.Org{
		{ID: "contoso", Tenants: []string{contosoTenant}}, {ID: "fabrikam", Tenants: []string{fabrikamTenant}},
		{ID: "northwind", Tenants: []string{northwindTenant}},
	}, GroupWait: time.Millisecond, GroupInterval: time.Millisecond}
	if hcfg != nil {
		hcfg(&cfg)
	}
	hunt, err := hunting.New(db, cfg, nil, nil)
	require.NoError(t, err)
	third := func(c *Config) {
		c.Orgs = append(c.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: slackTeam, Channels: []string{northwindSOC}}})
	}
	hf := &huntFixture{fixture: setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{}, third), hunt: hunt}
	in, err := insight.New(db, insight.Config{}, hunt, hf.cw, nil)
	require.NoError(t, err)
	hf.bot.SetInsight(NewInsightService(in))
	return &insightFixture{huntFixture: hf, in: in}
}

// deskSightings are the desk posts of the sightings message of incident id
// at org.
func (f *insightFixture) deskSightings(id, org string) []bottest.Call {
	return f.slack.Find(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Channel == deskChannel && c.Message.Title == "Incident "+id+" at "+org+": also seen at other orgs"
	})
}

// assertMembersSeeNoOtherOrg checks every message of each org's channel: no
// other org's name, no sighting, no count of other orgs.
func (f *insightFixture) assertMembersSeeNoOtherOrg(t *testing.T) {
	t.Helper()
	side := f.memberSide()
	for _, w := range []string{"seen at", "Also seen", "also seen", "other org", "experts only"} {
		require.NotContains(t, side, w)
	}
	channels := map[string][]string{contosoSOC: {"Fabrikam", "Northwind"}, northwindSOC: {"Contoso", "Fabrikam"}}
	for _, c := range f.slack.Calls() {
		for ch, others := range channels {
			if c.Dest.Channel != ch && c.Ref.Channel != ch {
				continue
			}
			for _, o := range others {
				require.NotContains(t, plain(c.Message), o, "a message in %s", ch)
			}
		}
	}
	for _, c := range f.discord.Calls() {
		require.NotContains(t, plain(c.Message), "Contoso")
		require.NotContains(t, plain(c.Message), "Northwind")
	}
}

// TestNotifiedIncidentSightingsOnTheDesk: a rare file in Contoso's incident
// and then in Fabrikam's. Fabrikam's notification brings the expert desk
// one message naming Fabrikam, the incident (linked to its notification)
// and Contoso; when Northwind has the file too and Fabrikam's incident
// grows, that message is edited to name Northwind, never posted again.
// Contoso's incident, alone with the file when notified, posts nothing on
// the desk. No member's channel names another org or a sighting.
func TestNotifiedIncidentSightingsOnTheDesk(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	c := f.see(t, seenAlert{id: "da0000000000000701_1", device: "ws-71.contoso.local", files: []string{"stager71.dll"}})[0]
	f.card(t, c)
	fb := f.see(t, seenAlert{id: "da0000000000000702_1", tenant: fabrikamTenant, device: "fab-71", title: "Stager on fab-71", files: []string{"stager71.dll"}})[0]
	posted(t, f.discord, fabSOC, nil, "Incident "+fb+" · threatdesk targeted attack notification")
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+fb+" at Fabrikam: also seen at other orgs")
	got := plain(desk.Message)
	require.Contains(t, got, "Fabrikam · incident "+fb+" · Stager on fab-71")
	require.Contains(t, got, "Also seen at (experts only)")
	require.Contains(t, got, "Contoso (1 device, incident "+c)
	require.Contains(t, got, "by file "+hexSum("stager71.dll", 64)[:12])
	require.Contains(t, got, "Open the notification", "linked to the notification")
	require.NotContains(t, got, "Northwind")
	f.settledOutbox(t)
	require.Empty(t, f.deskSightings(c, "Contoso"), "Contoso's incident was alone with the file when notified")

	// Northwind has it too: its own notification brings its own message,
	// naming both others.
	nw := f.see(t, seenAlert{id: "da0000000000000703_1", tenant: northwindTenant, device: "nw-71", files: []string{"stager71.dll"}})[0]
	nwDesk := plain(posted(t, f.slack, deskChannel, nil, "Incident "+nw+" at Northwind: also seen at other orgs").Message)
	require.Contains(t, nwDesk, "Contoso (1 device, incident "+c)
	require.Contains(t, nwDesk, "Fabrikam (1 device, incident "+fb)

	// Fabrikam's incident grows (a new device): its desk message is
	// edited, not reposted.
	grown := f.see(t, seenAlert{id: "da0000000000000704_1", tenant: fabrikamTenant, device: "fab-72", files: []string{"stager71.dll"}})[0]
	require.Equal(t, fb, grown, "the new alert joins Fabrikam's incident")
	edit := f.edited(t, desk.Ref, "Northwind (1 device, incident "+nw, "Contoso (1 device, incident "+c)
	require.Contains(t, plain(edit), "Incident "+fb+" at Fabrikam")
	f.settledOutbox(t)
	require.Len(t, f.deskSightings(fb, "Fabrikam"), 1, "posted once, then edited")
	require.Len(t, f.deskSightings(nw, "Northwind"), 1)

	f.assertMembersSeeNoOtherOrg(t)
}

// TestMergedIncidentSightingsFollowTheSurvivor: an incident whose desk
// sightings message was posted, merged into another, had that message
// edited to "no longer seen at other orgs" (its entities had moved to the
// survivor) while the survivor's message named the same sightings (from
// a review). It now says where they went.
func TestMergedIncidentSightingsFollowTheSurvivor(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	o := f.see(t, seenAlert{id: "da0000000000000b01_1", device: "ws-b1.contoso.local", files: []string{"first-b1.dll"}})[0]
	f.card(t, o)
	f.see(t, seenAlert{id: "da0000000000000b02_1", tenant: fabrikamTenant, device: "fab-b1", files: []string{"shared-b2.dll"}})
	a := f.see(t, seenAlert{id: "da0000000000000b03_1", device: "ws-b2.contoso.local", files: []string{"shared-b2.dll"}})[0]
	require.NotEqual(t, o, a)
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+a+" at Contoso: also seen at other orgs")
	f.see(t, seenAlert{id: "da0000000000000b04_1", device: "ws-b1.contoso.local", files: []string{"first-b1.dll", "shared-b2.dll"}})
	edit := f.edited(t, desk.Ref, "merged into incident "+o)
	require.Contains(t, plain(edit), "its sightings at other orgs follow on that incident's message")
	f.settledOutbox(t)
	for _, c := range f.slack.Calls() {
		if c.Op == bottest.OpUpdate && c.Ref == desk.Ref {
			require.NotContains(t, plain(c.Message), "no longer seen", "the merge is not an end of its sightings")
		}
	}
	f.assertMembersSeeNoOtherOrg(t)
}

// TestCampaignTagFollowsAMerge: an incident tagged with a campaign and
// then merged into another: the survivor's card, the one people follow,
// says it is linked, and sharing the campaign names it there. The tag
// stayed on the merged card, and the share edited only that frozen card
// (from a review).
func TestCampaignTagFollowsAMerge(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	o := f.see(t, seenAlert{id: "da0000000000000c01_1", device: "ws-c1.contoso.local", files: []string{"first-c1.dll"}})[0]
	survivor := f.card(t, o)
	a := f.see(t, seenAlert{id: "da0000000000000c02_1", device: "ws-c2.contoso.local", files: []string{"tagged-c2.dll"}})[0]
	f.card(t, a)
	_, m := f.run(t, Slack, expert1, deskChannel, "campaign tag incident:"+a+" Storm-0501")
	require.Contains(t, plain(m), "with the campaign Storm-0501")
	f.see(t, seenAlert{id: "da0000000000000c03_1", device: "ws-c1.contoso.local", files: []string{"first-c1.dll", "tagged-c2.dll"}})
	f.edited(t, survivor.Ref, "Linked by the threat experts to a campaign they track.")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign share Storm-0501")
	require.Contains(t, plain(m), "Storm-0501")
	f.edited(t, survivor.Ref, "Storm-0501")
	f.assertMembersSeeNoOtherOrg(t)
}

// TestCommonBinaryNotifiesNoSightings: a file on the guard's number of
// Contoso's devices (a common installer) that Fabrikam's notified incident
// holds too brings nothing to the desk.
func TestCommonBinaryNotifiesNoSightings(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, func(c *hunting.Config) { c.CommonEntityDevices = 3 })
	var batch []seenAlert
	for i := range 4 {
		batch = append(batch, seenAlert{id: fmt.Sprintf("da00000000000008%02d_1", i), device: fmt.Sprintf("ws-8%d", i), files: []string{"setup80.exe"}})
	}
	f.see(t, batch...)
	fb := f.see(t, seenAlert{id: "da0000000000000890_1", tenant: fabrikamTenant, device: "fab-80", files: []string{"setup80.exe"}})[0]
	posted(t, f.discord, fabSOC, nil, "Incident "+fb+" · threatdesk targeted attack notification")
	f.settledOutbox(t)
	for _, c := range f.slack.Calls() {
		if c.Dest.Channel == deskChannel || c.Ref.Channel == deskChannel {
			require.NotContains(t, plain(c.Message), "also seen at", "a common binary is no sighting")
		}
	}
	f.assertMembersSeeNoOtherOrg(t)
}

// TestIncidentListSightings: /experts incidents, as an expert runs it,
// shows each incident's sightings; a member's listing is the same whatever
// other orgs hold.
func TestIncidentListSightings(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	fb := f.see(t, seenAlert{id: "da0000000000000901_1", tenant: fabrikamTenant, device: "fab-91", files: []string{"implant91.dll"}})[0]
	f.settledOutbox(t)
	_, before := f.run(t, Discord, fabAnalyst, fabSOC, "incidents")
	require.Contains(t, plain(before), "Incident "+fb)

	c := f.see(t, seenAlert{id: "da0000000000000902_1", device: "ws-92.contoso.local", files: []string{"implant91.dll"}})[0]
	f.see(t, seenAlert{id: "da0000000000000903_1", device: "ws-93.contoso.local", files: []string{"alone93.dll"}})

	_, m := f.run(t, Slack, expert1, deskChannel, "incidents")
	var fabLine, contosoLine, aloneLine string
	for _, it := range m.Items {
		l := bottest.Plain(Message{Text: []Line{it.Line}})
		switch {
		case strings.HasPrefix(l, "Incident "+fb+" "):
			fabLine = l
		case strings.HasPrefix(l, "Incident "+c+" "):
			contosoLine = l
		case strings.Contains(l, "alone93") || strings.Contains(l, "ws-93"):
			aloneLine = l
		}
	}
	require.Contains(t, fabLine, "also seen at: Contoso (1 device, incident "+c, "items: %+v", m.Items)
	require.Contains(t, contosoLine, "also seen at: Fabrikam (1 device, incident "+fb)
	require.NotEmpty(t, aloneLine)
	require.NotContains(t, aloneLine, "also seen at")
	_, m = f.run(t, Slack, expert1, deskChannel, "incidents all fabrikam")
	require.Contains(t, plain(m), "also seen at: Contoso")

	// The member's listing: unchanged, nothing of Contoso.
	_, after := f.run(t, Discord, fabAnalyst, fabSOC, "incidents")
	require.Equal(t, plain(before), plain(after))
	require.NotContains(t, plain(after), "Contoso")
	require.NotContains(t, plain(after), "seen at")
	_, m = f.run(t, Slack, analyst, contosoSOC, "incidents all")
	require.NotContains(t, plain(m), "Fabrikam")
	require.NotContains(t, plain(m), "seen at")
	f.assertMembersSeeNoOtherOrg(t)
}

// TestIncidentSightingsDeliveredOnce: the desk's post of a notified
// incident's sightings message is stored by the platform but its answer is
// lost (a dropped connection, a crash mid-call): the retry finds it and
// records it instead of posting it again, and the incident's next event
// edits that very message.
func TestIncidentSightingsDeliveredOnce(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	c := f.see(t, seenAlert{id: "da0000000000000a01_1", device: "ws-a1.contoso.local", files: []string{"once.dll"}})[0]
	f.card(t, c)
	f.settledOutbox(t)
	// Fabrikam's card goes to Discord; the next Slack post is the desk's.
	f.slack.LoseAnswers(1)
	fb := f.see(t, seenAlert{id: "da0000000000000a02_1", tenant: fabrikamTenant, device: "fab-a1", files: []string{"once.dll"}})[0]
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+fb+" at Fabrikam: also seen at other orgs")
	f.settledOutbox(t)
	require.Len(t, f.deskSightings(fb, "Fabrikam"), 1, "the lost answer's post was found, not posted again")

	nw := f.see(t, seenAlert{id: "da0000000000000a03_1", tenant: northwindTenant, device: "nw-a1", files: []string{"once.dll"}})[0]
	f.see(t, seenAlert{id: "da0000000000000a04_1", tenant: fabrikamTenant, device: "fab-a2", files: []string{"once.dll"}})
	f.edited(t, desk.Ref, "Northwind (1 device, incident "+nw)
	f.settledOutbox(t)
	require.Len(t, f.deskSightings(fb, "Fabrikam"), 1)
}

// TestSightingsPostFoundWhenTheRetryCannotLook: the desk's post of a
// notified incident's sightings message is stored by the platform but its
// answer is lost, and on the retry the sightings lookup fails, so the part
// is not rendered at all. The post must still be found and recorded as the
// incident's sightings message: it used to be left unrecorded, and the
// incident's next event posted a second desk message.
func TestSightingsPostFoundWhenTheRetryCannotLook(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	lostPosts := func() int {
		return f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
			return c.Dest.Channel == deskChannel && strings.HasSuffix(c.Message.Title, " at Fabrikam: also seen at other orgs")
		})
	}
	var failed atomic.Bool
	f.bot.SetInsight(scriptedSightings{Insight: NewInsightService(f.in), fail: func(org string) bool {
		// Fabrikam's first lookup after the lost post: the retry's.
		return org == "fabrikam" && lostPosts() == 1 && failed.CompareAndSwap(false, true)
	}})
	c := f.see(t, seenAlert{id: "da0000000000000b01_1", device: "ws-b1.contoso.local", files: []string{"twice.dll"}})[0]
	f.card(t, c)
	f.settledOutbox(t)
	f.slack.LoseAnswers(1)
	fb := f.see(t, seenAlert{id: "da0000000000000b02_1", tenant: fabrikamTenant, device: "fab-b1", files: []string{"twice.dll"}})[0]
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+fb+" at Fabrikam: also seen at other orgs")
	f.settledOutbox(t)
	require.True(t, failed.Load(), "the retry's lookup failed")

	nw := f.see(t, seenAlert{id: "da0000000000000b03_1", tenant: northwindTenant, device: "nw-b1", files: []string{"twice.dll"}})[0]
	f.see(t, seenAlert{id: "da0000000000000b04_1", tenant: fabrikamTenant, device: "fab-b2", files: []string{"twice.dll"}})
	f.edited(t, desk.Ref, "Northwind (1 device, incident "+nw)
	f.settledOutbox(t)
	require.Len(t, f.deskSightings(fb, "Fabrikam"), 1, "one desk message, edited: not a second one")
}

// scriptedSightings is an insight service whose sightings lookup fails
// when fail says so.
type scriptedSightings struct {
	Insight
	fail func(org string) bool
}

func (f scriptedSightings) Sightings(ctx context.Context, org string, s Subject) ([]Sighting, int, error) {
	if f.fail(org) {
		return nil, 0, errors.New("sightings: context deadline exceeded")
	}
	return f.Insight.Sightings(ctx, org, s)
}

// failingSightings is an insight service whose sightings lookup fails
// while fail is set (a timeout under load, a database error).
type failingSightings struct {
	Insight
	fail *atomic.Bool
}

func (f failingSightings) Sightings(ctx context.Context, org string, s Subject) ([]Sighting, int, error) {
	if f.fail.Load() {
		return nil, 0, errors.New("sightings: context deadline exceeded")
	}
	return f.Insight.Sightings(ctx, org, s)
}

// TestFailedLookupKeepsTheSightings: a lookup that failed on an incident's
// later event was taken for "no other org": the desk message that named
// Contoso was edited to "no longer seen at other orgs", and the experts
// dropped a live lead. Now a failed lookup leaves the message as it was.
func TestFailedLookupKeepsTheSightings(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	var fail atomic.Bool
	f.bot.SetInsight(failingSightings{Insight: NewInsightService(f.in), fail: &fail})
	c := f.see(t, seenAlert{id: "da0000000000000801_1", device: "ws-81.contoso.local", files: []string{"stager81.dll"}})[0]
	f.card(t, c)
	fb := f.see(t, seenAlert{id: "da0000000000000802_1", tenant: fabrikamTenant, device: "fab-81", files: []string{"stager81.dll"}})[0]
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+fb+" at Fabrikam: also seen at other orgs")
	require.Contains(t, plain(desk.Message), "Contoso (1 device, incident "+c)
	f.settledOutbox(t)
	edits := f.slack.Count(bottest.OpUpdate, func(cl bottest.Call) bool { return cl.Ref == desk.Ref })

	fail.Store(true)
	grown := f.see(t, seenAlert{id: "da0000000000000803_1", tenant: fabrikamTenant, device: "fab-82", files: []string{"stager81.dll"}})[0]
	require.Equal(t, fb, grown)
	f.settledOutbox(t)
	for _, cl := range f.slack.Calls() {
		require.NotContains(t, plain(cl.Message), "no longer seen", "a failed lookup is not an answer")
	}
	require.Equal(t, edits, f.slack.Count(bottest.OpUpdate, func(cl bottest.Call) bool { return cl.Ref == desk.Ref }),
		"the desk message keeps its last answer")
}

// TestUnchangedSightingsAreNotEdited: an event of a notified incident that
// leaves its desk message as it was (Fabrikam acknowledges it; no other org
// changed) sends no edit of that message: every edit used to be sent, and
// Discord marks each one "(edited)". The incident's own card, which
// changed, is edited.
func TestUnchangedSightingsAreNotEdited(t *testing.T) {
	t.Parallel()
	f := setupThreeOrgs(t, nil)
	c := f.see(t, seenAlert{id: "da0000000000000901_1", device: "ws-91.contoso.local", files: []string{"stager91.dll"}})[0]
	f.card(t, c)
	fb := f.see(t, seenAlert{id: "da0000000000000902_1", tenant: fabrikamTenant, device: "fab-91", title: "Stager on fab-91", files: []string{"stager91.dll"}})[0]
	card := posted(t, f.discord, fabSOC, nil, "Incident "+fb+" · threatdesk targeted attack notification")
	desk := posted(t, f.slack, deskChannel, nil, "Incident "+fb+" at Fabrikam: also seen at other orgs")
	f.settledOutbox(t)
	deskEdits := func() int {
		return f.slack.Count(bottest.OpUpdate, func(cl bottest.Call) bool { return cl.Ref == desk.Ref })
	}
	cardEdits := func() int {
		return f.discord.Count(bottest.OpUpdate, func(cl bottest.Call) bool { return cl.Ref == card.Ref })
	}
	before, cardBefore := deskEdits(), cardEdits()

	_, r := f.press(t, Discord, fabAnalyst, ActAcknowledge, fb, card.Ref)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Acknowledged incident "+fb)
	require.True(t, f.discord.WaitFor(tenSeconds, func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op == bottest.OpUpdate && c.Ref == card.Ref && strings.Contains(plain(c.Message), "Acknowledged by") {
				return true
			}
		}
		return false
	}), dump(f.discord.Calls()))
	f.settledOutbox(t)
	require.Greater(t, cardEdits(), cardBefore, "the card, now acknowledged, is edited")
	require.Equal(t, before, deskEdits(), "the desk message would show the same: no edit")
	require.Len(t, f.deskSightings(fb, "Fabrikam"), 1)
}
