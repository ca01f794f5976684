package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/hunting"
)

// TestInsightSubjects: addresses, URLs, domains and actor names are
// normalised, and anything else is refused with what a valid one looks like.
func TestInsightSubjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind    SubjectKind
		in, out string
	}{
		{SubjectIP, " 198.51.100.7 ", "198.51.100.7"},
		{SubjectIP, "::ffff:198.51.100.7", "198.51.100.7"},
		{SubjectIP, "2001:DB8::7", "2001:db8::7"},
		{SubjectURL, "CDN.Evil.example.", "cdn.evil.example"},
		{SubjectURL, "https://cdn.evil.example/a?b=1", "https://cdn.evil.example/a?b=1"},
		{SubjectURL, "http://198.51.100.7:8080/x", "http://198.51.100.7:8080/x"},
		{SubjectActor, "  Midnight   Blizzard ", "Midnight Blizzard"},
	} {
		got, err := validSubject(tc.kind, tc.in)
		require.Nil(t, err, "%s %q", tc.kind, tc.in)
		require.Equal(t, tc.out, got)
	}
	for _, tc := range []struct {
		kind SubjectKind
		in   string
	}{
		{SubjectIP, "198.51.100"}, {SubjectIP, "fe80::1%eth0"}, {SubjectIP, "<!channel>"},
		{SubjectURL, "localhost"}, {SubjectURL, "javascript://x%0aalert(1)"}, {SubjectURL, "https://"}, {SubjectURL, "evil .example"},
		{SubjectActor, "x"}, {SubjectActor, "--"}, {SubjectActor, "a\u0000b"},
	} {
		_, err := validSubject(tc.kind, tc.in)
		require.NotNil(t, err, "%s %q", tc.kind, tc.in)
	}
}

// TestParseCampaign: the campaign verb's words, typed on Slack or arriving
// from Discord's verb group.
func TestParseCampaign(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]request{
		"campaign Storm-0501":                   {verb: vCampaign, action: campaignShow, text: "Storm-0501"},
		`campaign show "Midnight Blizzard"`:     {verb: vCampaign, action: campaignShow, text: "Midnight Blizzard"},
		"campaign tag EOD-12 Midnight Blizzard": {verb: vCampaign, action: campaignTag, id: "EOD-12", text: "Midnight Blizzard"},
		"campaign share storm-0501":             {verb: vCampaign, action: campaignShare, text: "storm-0501"},
		"campaign tag incident:14 Storm-0501":   {verb: vCampaign, action: campaignTag, id: "incident:14", text: "Storm-0501"},
	} {
		got, err := parse(Command{Text: in})
		require.Nil(t, err, in)
		require.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{
		"campaign":            "Which campaign?",
		"campaign tag EOD-12": "Usage: /experts campaign tag",
		"campaign share":      "is not a campaign name",
		"campaign x":          "is not a campaign name",
	} {
		_, err := parse(Command{Text: in})
		require.NotNil(t, err, in)
		require.Contains(t, err.msg, want, in)
	}
	// Discord: the verb group's subcommand first, then the options in order.
	got, err := parse(Command{Name: "campaign", Args: []string{"tag", "EOD-3", "Storm 0501"}, Options: map[string]string{"target": "EOD-3", "name": "Storm 0501"}})
	require.Nil(t, err)
	require.Equal(t, request{verb: vCampaign, action: campaignTag, id: "EOD-3", text: "Storm 0501"}, got)
}

// TestReportCountsNewSubjects: the service report names cases about
// addresses, URLs and actors.
func TestReportCountsNewSubjects(t *testing.T) {
	t.Parallel()
	require.Equal(t, "file 1 · address 2 · url 3 · actor 1", kindsText(map[SubjectKind]int{SubjectFile: 1, SubjectIP: 2, SubjectURL: 3, SubjectActor: 1}))
}

// TestSightingIndicatorsAreUserText: a sighting's indicators come from
// alerts (a domain out of a URL may hold markup), and went out as trusted
// text, formatted as markup on the desk card.
func TestSightingIndicatorsAreUserText(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: Config{Orgs: []Org{{ID: "fabrikam", Name: "Fabrikam"}}}}
	secs := b.insightSections(CaseView{Insight: &DeskInsight{Sightings: []Sighting{{
		Org: "fabrikam", Devices: 2, Indicators: []string{"domain *x*.<!channel>.example"}}}}})
	require.Len(t, secs, 1)
	require.Len(t, secs[0].Lines, 1)
	var found bool
	for _, sp := range secs[0].Lines[0] {
		if strings.Contains(sp.Text, "<!channel>") {
			found = true
			require.True(t, sp.Untrusted, "the indicator is user text: %q", sp.Text)
		}
	}
	require.True(t, found, "the indicator is shown")
}

// TestCardTimesAreInTheConfiguredZone: a card's timeline and a case's
// "seen since" were written in UTC without saying so, and a New York SOC
// read them as its own time (from a review). They are written in the
// config's timezone, named.
func TestCardTimesAreInTheConfiguredZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("load America/New_York: %v", err)
	}
	at := time.Date(2026, 12, 4, 21, 24, 0, 0, time.UTC)
	if got := NewHuntingIncidents(nil).In(ny).stamp(at); got != "4 Dec 16:24 EST" {
		t.Errorf("stamp in New York = %q", got)
	}
	if got := NewHuntingIncidents(nil).stamp(at); got != "4 Dec 21:24 UTC" {
		t.Errorf("stamp without a zone = %q", got)
	}
}

// TestCampaignListsNewestFirst: a campaign lists its newest items first;
// it listed the oldest ten, and a growing campaign's latest incidents, the
// ones that matter, were behind "and N more" (from a review).
func TestCampaignListsNewestFirst(t *testing.T) {
	b := &Bot{}
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var c CampaignView
	for i := range 12 {
		at := t0.Add(time.Duration(i) * 24 * time.Hour)
		c.Items = append(c.Items, CampaignItem{Target: fmt.Sprintf("incident %d", i+1), Org: "contoso", Title: "t", Status: "open", First: at, Last: at})
	}
	c.Name, c.First, c.Last = "Storm-0501", t0, t0.Add(11*24*time.Hour)
	sec := b.campaignMessage(c).Sections[0]
	if sec.Title != "Tagged cases and incidents, newest first" || len(sec.Lines) == 0 {
		t.Fatalf("section %q with %d lines", sec.Title, len(sec.Lines))
	}
	if first := sec.Lines[0][0].Text; first != "incident 12" {
		t.Errorf("first line names %q, want the newest, incident 12", first)
	}
	if sec.More != 2 {
		t.Errorf("More = %d, want the two oldest", sec.More)
	}
}

// plainOf joins what a message shows: its text and its sections' lines.
func plainOf(m Message) string {
	var b strings.Builder
	for _, l := range m.Text {
		b.WriteString(plainLine(l) + "\n")
	}
	for _, s := range m.Sections {
		for _, l := range s.Lines {
			b.WriteString(plainLine(l) + "\n")
		}
	}
	return b.String()
}

// TestDeskShowsAlertWordsAsTheCardDoes: the card shows alert text on one
// line with URLs defanged (alertText); the desk's sightings message, the
// experts' incidents line and the desk card's "what threatdesk knows"
// showed indicators, titles and devices raw: a live link on Discord, a
// line break forging "false positive: closed", a bidi override (from a
// review). So did a card footer's non-portal alert address, and U+2028
// passed as a line break everywhere.
func TestDeskShowsAlertWordsAsTheCardDoes(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig(), core: &core{}}
	evil := "https://evil.example/x\nfalse positive: closed by soc\u202e"
	ind := indicatorText(hunting.Key{Kind: hunting.KeyURL, Value: evil})
	ss := []Sighting{{Org: "fabrikam", Devices: 1, Incidents: []string{"9"}, Indicators: []string{ind, indicatorText(hunting.Key{Kind: hunting.KeyDomain, Value: "evil.example"})}}}
	desk := plainOf(b.sightingsMessage(IncidentView{ID: "7", Org: "contoso", Title: "t"}, ss))
	require.Contains(t, desk, "hxxps[://]evil[.]example/x false positive", "defanged, on one line")
	require.Contains(t, desk, "domain evil[.]example")
	c := CaseView{Org: "contoso", Subject: Subject{Kind: SubjectURL, ID: "evil.example"}, Insight: &DeskInsight{
		Known: &Known{IncidentCount: 1, Incidents: []string{"12 Phish https://evil.example/login\u2028Resolved by Alice (score 80)"},
			DeviceCount: 1, Devices: []string{"ws-01\nResolved"}},
	}}
	var known strings.Builder
	for _, s := range b.insightSections(c) {
		for _, l := range s.Lines {
			known.WriteString(plainLine(l) + "\n")
		}
	}
	card := notificationCard(IncidentView{ID: "7", Org: "contoso", Title: "t", Severity: SeverityHigh, Score: 80,
		Link: "x\nResolved by Alice (SOC lead) as false positive"})
	for name, got := range map[string]string{"desk sightings message": desk, "incidents line": b.sightingsLine(ss),
		"desk card known": known.String(), "card footer": plainLine(card.Footer)} {
		require.NotContains(t, got, "https://", name)
		require.NotContains(t, got, "\nfalse positive", name)
		require.NotContains(t, got, "\nResolved", name)
		require.NotContains(t, got, "\u2028", name)
		require.NotContains(t, got, "\u202e", name)
	}
}
