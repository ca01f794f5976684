package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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

// seenAlert is an alert for the insight tests, with files (by name: each
// becomes its hashes), addresses and URLs.
type seenAlert struct {
	id, tenant, device, title string
	files, ips, urls          []string
}

func (a seenAlert) raw() hunting.RawAlert {
	ev := []map[string]any{}
	for _, f := range a.files {
		ev = append(ev, map[string]any{"entityType": "File", "sha1": hexSum(f, 40), "sha256": hexSum(f, 64), "fileName": f, "filePath": `C:\Users\Public`})
	}
	for _, ip := range a.ips {
		ev = append(ev, map[string]any{"entityType": "Ip", "ipAddress": ip})
	}
	for _, u := range a.urls {
		ev = append(ev, map[string]any{"entityType": "Url", "url": u})
	}
	at := time.Now().Add(-30 * time.Minute)
	m := map[string]any{
		"id": a.id, "severity": "High", "status": "New", "detectionSource": "ThreatExperts", "category": "CommandAndControl",
		"title": cmpOr(a.title, "Suspicious connection "+a.id), "description": "test alert",
		"alertCreationTime": at.Add(time.Minute).Format(time.RFC3339Nano), "firstEventTime": at.Format(time.RFC3339Nano),
		"lastEventTime": at.Format(time.RFC3339Nano), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339Nano),
		"machineId": hexSum(a.device, 40), "computerDnsName": a.device, "aadTenantId": a.tenant, "evidence": ev,
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// insightFixture is the bot with hunting and insight on one database.
type insightFixture struct {
	*huntFixture
	in *insight.Service
}

func setupInsight(t *testing.T, hcfg func(*hunting.Config)) *insightFixture {
	t.Helper()
	db := pgtest.New(t)
	cfg := hunting.Config{Orgs: []hunting.Org{
		{ID: "contoso", Tenants: []string{contosoTenant}}, {ID: "fabrikam", Tenants: []string{fabrikamTenant}},
	}, GroupWait: time.Millisecond}
	if hcfg != nil {
		hcfg(&cfg)
	}
	hunt, err := hunting.New(db, cfg, nil, nil)
	require.NoError(t, err)
	hf := &huntFixture{fixture: setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{}), hunt: hunt}
	in, err := insight.New(db, insight.Config{}, hunt, hf.cw, nil)
	require.NoError(t, err)
	hf.bot.SetInsight(NewInsightService(in))
	return &insightFixture{huntFixture: hf, in: in}
}

// see ingests alerts (Contoso's unless they say) and sweeps; it returns
// the incident of each.
func (f *insightFixture) see(t *testing.T, as ...seenAlert) []string {
	t.Helper()
	raws := make([]hunting.RawAlert, len(as))
	for i, a := range as {
		a.tenant = cmpOr(a.tenant, contosoTenant)
		raws[i] = a.raw()
	}
	res, err := f.hunt.Ingest(context.Background(), raws)
	require.NoError(t, err)
	_, err = f.hunt.Sweep(context.Background())
	require.NoError(t, err)
	ids := make([]string, len(as))
	for i, it := range res.Items {
		require.NotZero(t, it.IncidentID, "alert %s: %+v", as[i].id, it)
		ids[i] = strconv.FormatInt(it.IncidentID, 10)
	}
	return ids
}

// openedRef reads the reference of an "Opened EOD-n" answer.
func openedRef(t *testing.T, answer string) string {
	t.Helper()
	require.Contains(t, answer, "Opened EOD-")
	i := strings.Index(answer, "EOD-")
	return strings.TrimRight(strings.Fields(answer[i:])[0], ".,")
}

// deskCardOf waits for the desk card of ref.
func (f *insightFixture) deskCardOf(t *testing.T, ref, org string) bottest.Call {
	t.Helper()
	return posted(t, f.slack, deskChannel, nil, ref+" · "+org)
}

// memberSide is everything posted, edited or answered to the members: every
// call of either adapter outside the desk channel.
func (f *insightFixture) memberSide() string {
	var sb strings.Builder
	for _, a := range []*bottest.Adapter{f.slack, f.discord} {
		for _, c := range a.Calls() {
			if c.Dest.Channel == deskChannel || c.Ref.Channel == deskChannel {
				continue
			}
			sb.WriteString(plain(c.Message))
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

// TestSightingOnTheDeskCardOnly: a rare file in two orgs' alerts. A case
// about it from either org shows the experts, on its desk card, where else
// it was seen ("Also seen at: Fabrikam (1 device, incident N, ...)"); the
// members of both orgs see nothing of it: not on their receipts, not in
// their answers, which are the same as for a file no other org has.
func TestSightingOnTheDeskCardOnly(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, nil)
	c := f.see(t, seenAlert{id: "da0000000000000001_1", device: "ws-1.contoso.local", files: []string{"stager.dll"}})
	fb := f.see(t, seenAlert{id: "da0000000000000002_1", tenant: fabrikamTenant, device: "fab-1", files: []string{"stager.dll"}},
		seenAlert{id: "da0000000000000003_1", tenant: fabrikamTenant, device: "fab-2", files: []string{"lonely.exe"}})
	hash := hexSum("stager.dll", 64)

	_, m := f.run(t, Slack, analyst, contosoSOC, "file "+hash+" is this the stager?")
	contosoAnswer := plain(m)
	ref := openedRef(t, contosoAnswer)
	desk := f.deskCardOf(t, ref, "Contoso")
	got := plain(desk.Message)
	require.Contains(t, got, "Also seen at (experts only)")
	require.Contains(t, got, "Fabrikam (1 device, incident "+fb[0])
	require.NotContains(t, got, "incident "+fb[1], "Fabrikam's other incident does not hold the file")
	posted(t, f.slack, contosoSOC, nil, ref+" ·")

	// From Fabrikam's side (Discord), the same file: the desk names Contoso,
	// with the Contoso case about it.
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "file "+hash)
	fabAnswer := plain(m)
	fref := openedRef(t, fabAnswer)
	fdesk := plain(f.deskCardOf(t, fref, "Fabrikam").Message)
	require.Contains(t, fdesk, "Contoso (1 device, incident "+c[0])
	require.Contains(t, fdesk, ref, "the Contoso case about the file")
	posted(t, f.discord, fabSOC, nil, fref+" ·")

	// A file only Fabrikam has: the same answer, and no sighting.
	lonely := hexSum("lonely.exe", 64)
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "file "+lonely)
	lref := openedRef(t, plain(m))
	require.Equal(t, strings.ReplaceAll(fabAnswer, fref, "X"), strings.ReplaceAll(plain(m), lref, "X"),
		"a member's answer does not change with what other orgs hold")
	require.NotContains(t, plain(f.deskCardOf(t, lref, "Fabrikam").Message), "Also seen at")

	// Nothing on either org's side names the other org or a sighting.
	side := f.memberSide()
	require.NotContains(t, side, "Also seen")
	require.NotContains(t, side, "seen at")
	for _, call := range f.slack.Calls() {
		if call.Dest.Channel == contosoSOC || call.Ref.Channel == contosoSOC {
			require.NotContains(t, plain(call.Message), "Fabrikam")
		}
	}
	for _, call := range f.discord.Calls() {
		require.NotContains(t, plain(call.Message), "Contoso")
	}
	require.NotContains(t, contosoAnswer, "Fabrikam")
	require.NotContains(t, fabAnswer, "Contoso")
}

// TestCommonBinaryIsNeverASighting: a file on the guard's number of
// Contoso's devices (a common installer) that Fabrikam also has is no
// sighting on the desk card of a case about it, from either org.
func TestCommonBinaryIsNeverASighting(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, func(c *hunting.Config) { c.CommonEntityDevices = 3 })
	var batch []seenAlert
	for i := range 4 {
		batch = append(batch, seenAlert{id: fmt.Sprintf("da00000000000001%02d_1", i), device: fmt.Sprintf("ws-%d", i), files: []string{"setup.exe"}})
	}
	f.see(t, batch...)
	f.see(t, seenAlert{id: "da0000000000000200_1", tenant: fabrikamTenant, device: "fab-1", files: []string{"setup.exe"}})
	hash := hexSum("setup.exe", 64)

	_, m := f.run(t, Discord, fabAnalyst, fabSOC, "file "+hash)
	ref := openedRef(t, plain(m))
	got := plain(f.deskCardOf(t, ref, "Fabrikam").Message)
	require.NotContains(t, got, "Also seen at")
	require.NotContains(t, got, "Contoso")

	_, m = f.run(t, Slack, analyst, contosoSOC, "file "+hash)
	ref = openedRef(t, plain(m))
	require.NotContains(t, plain(f.deskCardOf(t, ref, "Contoso").Message), "Also seen at")
}

// TestAskAboutAddressURLActor: the new subjects open cases; the desk card
// shows what threatdesk knows of the subject in the case's org (its
// incidents, devices, alerts), and only that org's: a Fabrikam analyst
// asking about Contoso's address gets the answer an unknown address gets,
// and their desk card says Fabrikam has no incident with it. Bad input is
// told plainly.
func TestAskAboutAddressURLActor(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, nil)
	inc := f.see(t, seenAlert{id: "da0000000000000301_1", device: "ws-7.contoso.local", title: "Connection to a C2 server",
		ips: []string{"198.51.100.7"}, urls: []string{"https://cdn.evil.example/p.bin"}})[0]

	for _, tc := range []struct{ cmd, kind string }{
		{"ip 198.51.100.7 who is this?", "IP 198.51.100.7"},
		{"url cdn.evil.example what was downloaded?", "URL cdn[.]evil[.]example"},
		{"url https://cdn.evil.example/p.bin", "URL hxxps[://]cdn[.]evil[.]example/p[.]bin"},
	} {
		_, m := f.run(t, Slack, analyst, contosoSOC, tc.cmd)
		ref := openedRef(t, plain(m))
		desk := f.deskCardOf(t, ref, "Contoso")
		got := plain(desk.Message)
		require.Contains(t, got, ref+" · Contoso · "+tc.kind, tc.cmd)
		require.Contains(t, got, "What threatdesk knows of it at Contoso", tc.cmd)
		require.Contains(t, got, "1 incident: "+inc+" Connection to a C2 server", tc.cmd)
		require.Contains(t, got, "ws-7.contoso.local", tc.cmd)
		require.Contains(t, got, "da0000000000000301_1", tc.cmd)
		require.Contains(t, got, "Suspicious network connection", tc.cmd)
	}

	_, m := f.run(t, Slack, analyst, contosoSOC, `actor "Midnight Blizzard" are we targeted?`)
	ref := openedRef(t, plain(m))
	got := plain(f.deskCardOf(t, ref, "Contoso").Message)
	require.Contains(t, got, "Actor Midnight Blizzard")
	require.Contains(t, got, "Threat intelligence")

	// Fabrikam asks about Contoso's address, and about one nobody has.
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "ip 198.51.100.7")
	known := plain(m)
	fref := openedRef(t, known)
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "ip 192.0.2.200")
	require.Equal(t, strings.ReplaceAll(known, fref, "X"), strings.ReplaceAll(plain(m), openedRef(t, plain(m)), "X"))
	fdesk := plain(f.deskCardOf(t, fref, "Fabrikam").Message)
	require.Contains(t, fdesk, "No incident of Fabrikam involves it")
	require.NotContains(t, fdesk, "ws-7", "Contoso's device is not Fabrikam's knowledge")
	require.Contains(t, fdesk, "Contoso (1 device, incident "+inc, "the experts see the sighting")
	require.NotContains(t, f.memberSide(), "ws-7.contoso.local\nFab")
	for _, call := range f.discord.Calls() {
		require.NotContains(t, plain(call.Message), "Contoso")
		require.NotContains(t, plain(call.Message), "ws-7")
	}

	// Bad input: a clear error, nothing opened.
	for cmd, want := range map[string]string{
		"ip 999.1.1.1":            "is not an IP address",
		"ip":                      "Which ip?",
		"url javascript:alert(1)": "is not a URL or a domain",
		"url ftp//x":              "is not a URL or a domain",
		"actor -":                 "is not an actor or campaign name",
	} {
		ack, m := f.run(t, Slack, analyst, contosoSOC, cmd)
		require.True(t, ack.Private, cmd)
		require.Contains(t, plain(m), want, cmd)
	}
}

// TestAskAboutThisAddressButton: a notification whose scope names an
// address offers "Ask about this address"; it opens the ask form about it,
// and the case it opens is about the address, in the member's org.
func TestAskAboutThisAddressButton(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, nil)
	id := f.see(t, seenAlert{id: "da0000000000000401_1", device: "ws-8", ips: []string{"203.0.113.44"}})[0]
	card := f.card(t, id)
	var btn *Button
	for i, b := range card.Message.Buttons {
		if b.Label == "Ask about this address" {
			btn = &card.Message.Buttons[i]
		}
	}
	require.NotNil(t, btn, "buttons: %+v", card.Message.Buttons)
	require.Equal(t, ActAskEntity, btn.Action)
	ack, _ := f.press(t, Slack, analyst, btn.Action, btn.Value, card.Ref)
	require.NotNil(t, ack.Form)
	require.Equal(t, "Ask about this address", ack.Form.Title)
	_, r := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "Is this address a C2 server?", "priority": "high"})
	ref := openedRef(t, answerText(t, r))
	require.Contains(t, plain(f.deskCardOf(t, ref, "Contoso").Message), "IP 203.0.113.44")

	// A member of another org with the button's value (it names only the
	// address) asks in their own org: their desk card knows nothing of
	// Contoso's incident.
	fack, _ := f.press(t, Discord, fabAnalyst, btn.Action, btn.Value, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "m1"})
	require.NotNil(t, fack.Form)
	_, r = f.submit(t, Discord, fabAnalyst, *fack.Form, map[string]string{"question": "Is this address a C2 server?"})
	fref := openedRef(t, answerText(t, r))
	fdesk := plain(f.deskCardOf(t, fref, "Fabrikam").Message)
	require.Contains(t, fdesk, "No incident of Fabrikam involves it", "Fabrikam's case knows nothing of Contoso's incident")
}

// TestCampaigns: experts tag a case and incidents of two orgs with a
// campaign; "/experts campaign <name>" lists them across orgs with first
// and last seen; the tagged incident's notification says it is linked to a
// campaign the experts track, without its name until it is shared, and
// never anything of the other org. Members may not use the campaign
// commands, and are told the same whether the campaign exists or not.
func TestCampaigns(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, nil)
	c := f.see(t, seenAlert{id: "da0000000000000501_1", device: "ws-5", title: "Qakbot loader", files: []string{"qak.dll"}})
	fb := f.see(t, seenAlert{id: "da0000000000000502_1", tenant: fabrikamTenant, device: "fab-5", title: "Qakbot at Fabrikam", files: []string{"qak2.dll"}})
	card := f.card(t, c[0])
	ref, _, _ := f.openCase(t, "incident "+c[0]+" is this Qakbot?")

	_, m := f.run(t, Slack, expert1, deskChannel, "campaign tag "+ref+" Storm-0501")
	require.Contains(t, plain(m), "Tagged "+ref+" (Contoso")
	require.Contains(t, plain(m), "with the campaign Storm-0501")
	desk := posted(t, f.slack, deskChannel, nil, ref+" · Contoso")
	f.waitFor(t, "the desk card names the campaign", func() bool {
		for _, call := range f.slack.Find(bottest.OpUpdate, nil) {
			if call.Ref == desk.Ref && strings.Contains(plain(call.Message), "Campaigns") && strings.Contains(plain(call.Message), "Storm-0501") {
				return true
			}
		}
		return false
	})
	posted(t, f.slack, deskChannel, &desk.Ref, "tagged "+ref+" with the campaign Storm-0501")

	_, m = f.run(t, Slack, expert1, deskChannel, "campaign tag "+c[0]+" storm-0501")
	require.Contains(t, plain(m), "incident "+c[0]+" (Contoso, Qakbot loader on ws-5) with the campaign Storm-0501", "the name as first given")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign tag incident:"+fb[0]+" Storm-0501")
	require.Contains(t, plain(m), "incident "+fb[0]+" (Fabrikam")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign tag "+c[0]+" Storm-0501")
	require.Contains(t, plain(m), "already carries the campaign Storm-0501")

	// The notification: linked, not named.
	linked := f.edited(t, card.Ref, "Linked by the threat experts to a campaign they track.")
	require.NotContains(t, plain(linked), "Storm-0501")
	require.NotContains(t, plain(linked), "Fabrikam")

	// The list, across orgs, first seen first.
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign Storm-0501")
	got := plain(m)
	require.Contains(t, got, "Campaign Storm-0501")
	require.Contains(t, got, "3 cases and incidents")
	require.Contains(t, got, ref+" · Contoso")
	require.Contains(t, got, "incident "+c[0]+" · Contoso · Qakbot loader")
	require.Contains(t, got, "incident "+fb[0]+" · Fabrikam · Qakbot at Fabrikam")
	require.Contains(t, got, "First seen")
	require.Contains(t, got, "Last seen")
	require.Contains(t, got, "not shared")

	// Members: refused, the same for a campaign that exists and one that
	// does not, and for tagging their own incident.
	var answers []string
	for _, cmd := range []string{"campaign Storm-0501", "campaign NoSuchThing", "campaign share Storm-0501", "campaign tag " + c[0] + " Storm-0501"} {
		_, m := f.run(t, Slack, analyst, contosoSOC, cmd)
		answers = append(answers, plain(m))
		require.Contains(t, plain(m), "Only threat experts can work campaigns", cmd)
	}
	for _, a := range answers[1:] {
		require.Equal(t, answers[0], a)
	}
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "campaign Storm-0501")
	require.Equal(t, answers[0], plain(m))

	// Share: the notification names it now.
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign share storm-0501")
	require.Contains(t, plain(m), "Shared the campaign Storm-0501")
	require.Contains(t, plain(m), "2 tagged incidents")
	named := f.edited(t, card.Ref, "Linked by the threat experts to a campaign they track: Storm-0501.")
	require.NotContains(t, plain(named), "Fabrikam")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign share Storm-0501")
	require.Contains(t, plain(m), "already shared")

	// The desk card's Tag campaign button: a form for the name; a member
	// pressing it (with the card's value) is refused.
	var tagBtn *Button
	for i, bt := range desk.Message.Buttons {
		if bt.Action == ActTagCampaign {
			tagBtn = &desk.Message.Buttons[i]
		}
	}
	require.NotNil(t, tagBtn, "the desk card offers Tag campaign: %+v", desk.Message.Buttons)
	ack, _ := f.press(t, Slack, expert1, ActTagCampaign, tagBtn.Value, desk.Ref)
	require.NotNil(t, ack.Form)
	require.Equal(t, "Campaign for "+ref, ack.Form.Title)
	_, r := f.submit(t, Slack, expert1, *ack.Form, map[string]string{"text": "Midnight Blizzard"})
	require.Contains(t, answerText(t, r), "Tagged "+ref+" (Contoso")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign Midnight Blizzard")
	require.Contains(t, plain(m), ref+" · Contoso")
	mack, mr := f.press(t, Slack, analyst, ActTagCampaign, tagBtn.Value, Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1.2"})
	refusal := ""
	if mack.Message != nil {
		refusal = plain(*mack.Message)
	} else {
		refusal = answerText(t, mr)
	}
	require.Contains(t, refusal, "Only threat experts can work campaigns")

	// A case about the actor shows the experts the org's tagged cases and
	// incidents of that name (Contoso's two, not Fabrikam's).
	_, m = f.run(t, Slack, analyst, contosoSOC, "actor storm-0501 are we a target?")
	aref := openedRef(t, plain(m))
	require.Contains(t, plain(f.deskCardOf(t, aref, "Contoso").Message), "Tagged by the experts: Storm-0501 (2 cases and incidents)")

	// Bad input and unknown campaigns.
	for cmd, want := range map[string]string{
		"campaign":                         "Which campaign?",
		"campaign tag EOD-1":               "Usage: /experts campaign tag",
		"campaign tag EOD-99999 X1":        "is neither a case nor an incident",
		"campaign tag nonsense Storm-0501": "is neither a case nor an incident",
		"campaign Nothing-Here":            "There is no campaign",
		"campaign share Nothing-Here":      "There is no campaign",
	} {
		_, m := f.run(t, Slack, expert1, deskChannel, cmd)
		require.Contains(t, plain(m), want, cmd)
	}
}

// TestTaggingAQuietIncident: an expert tags an incident that has no card
// (under the bar, never posted). It is tagged, nothing is sent and nothing
// goes dead: the edit of a card that did not exist used to end as a dead
// outbox row, telling an operator to act for nothing. Posted later, its
// card says it is linked.
func TestTaggingAQuietIncident(t *testing.T) {
	t.Parallel()
	f := setupInsight(t, nil)
	quiet := f.ingest(t, defenderAlert{ID: "da0000000000000c01_1", Severity: "Low", Category: "Discovery", Device: "ws-c1.contoso.local", Title: "Net view enumeration"})[0]
	_, m := f.run(t, Slack, expert1, deskChannel, "campaign tag "+quiet+" Storm-0501")
	require.Contains(t, plain(m), "incident "+quiet+" (Contoso")
	f.settledOutbox(t)
	require.Zero(t, f.count(t, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`), "no dead row")
	require.Empty(t, f.slack.Find(bottest.OpUpdate, nil), "no card to edit")

	n, err := strconv.ParseInt(quiet, 10, 64)
	require.NoError(t, err)
	require.NoError(t, f.hunt.NotifyNow(context.Background(), "contoso", n, "U0ANALYST"))
	card := f.card(t, quiet)
	require.Contains(t, plain(card.Message), "Linked by the threat experts to a campaign they track.")

	// An incident posted (in hunting's eyes) whose card could never be
	// posted: that one failure is the only dead row; the tag adds none.
	other := f.ingest(t, defenderAlert{ID: "da0000000000000c02_1", Severity: "Low", Category: "Discovery", Device: "ws-c2.contoso.local", Title: "Net view enumeration"})[0]
	n, err = strconv.ParseInt(other, 10, 64)
	require.NoError(t, err)
	f.slack.Fail(bottest.Permanent("channel_not_found"))
	require.NoError(t, f.hunt.NotifyNow(context.Background(), "contoso", n, "U0ANALYST"))
	f.settledOutbox(t)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`), "the card that could not be posted")
	_, m = f.run(t, Slack, expert1, deskChannel, "campaign tag "+other+" Storm-0501")
	require.Contains(t, plain(m), "incident "+other+" (Contoso")
	f.settledOutbox(t)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`), "no second alarm for the same missing card")
}
