package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/hunting"
)

func TestPortalLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://security.microsoft.com/alerts/da637551227677560813_-961444813", true},
		{"https://securitycenter.windows.com/alerts/da637472900382838869_1364969609/details", true},
		{"https://securitycenter.microsoft.com/alert/da1", true},
		{"https://SECURITY.Microsoft.COM/incidents/12", true},
		{"https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/1", true},
		{"https://portal.azure.com/#create/Microsoft.Template/uri/https%3A%2F%2Fevil.example%2Ft.json", false}, // a one-click deployment
		{"https://security.microsoft.us/alerts/1", true},
		// Other microsoft.com hosts are not portals: a sign-in page would
		// carry a consent-phishing link on an attack card.
		{"https://login.microsoftonline.com/common/oauth2/authorize?client_id=x", false},
		{"https://login.microsoft.com/common/oauth2/authorize?client_id=x", false},
		{"https://portal.azure.microsoft.com/x", false},
		{"http://security.microsoft.com/alerts/1", false},                 // not https
		{"https://security.microsoft.com.evil.example/alerts/1", false},   // suffix trick
		{"https://evilmicrosoft.com/alerts/1", false},                     // not a subdomain
		{"https://microsoft.com/", false},                                 // not a portal host
		{"https://security.microsoft.com@evil.example/alerts/1", false},   // the host is evil.example
		{"https://user@security.microsoft.com/alerts/1", false},           // user information
		{"https://security.microsoft.com:8443/alerts/1", false},           // explicit port
		{"https://securitycenter.windows.com.evil.example/", false},       // suffix trick
		{"https://evil.example/?u=https://security.microsoft.com", false}, // the query does not count
		{"javascript:alert(1)", false},
		{"security.microsoft.com/alerts/1", false}, // no scheme
		{"", false},
	} {
		_, got := portalLink(tc.url)
		require.Equal(t, tc.want, got, tc.url)
	}
}

func TestDefang(t *testing.T) {
	t.Parallel()
	require.Equal(t, "hxxps[://]login[.]evil[.]example/reset?a=b", defang("https://login.evil.example/reset?a=b"))
	require.Equal(t, "hxxp[://]1[.]2[.]3[.]4/x", defang("HTTP://1.2.3.4/x"))
	require.Equal(t, "ftp[://]files[.]example", defang("ftp://files.example"))
}

// linked lists every link a message carries, wherever it is.
func linked(m Message) []string {
	var out []string
	add := func(l Line) {
		for _, s := range l {
			if s.Link != "" {
				out = append(out, s.Link)
			}
		}
	}
	for _, l := range m.Text {
		add(l)
	}
	for _, f := range m.Fields {
		add(f.Value)
	}
	for _, s := range m.Sections {
		for _, l := range s.Lines {
			add(l)
		}
	}
	add(m.Footer)
	return out
}

func allText(m Message) string {
	var b strings.Builder
	add := func(l Line) {
		for _, s := range l {
			b.WriteString(s.Text)
		}
		b.WriteString("\n")
	}
	b.WriteString(m.Title + "\n")
	for _, l := range m.Text {
		add(l)
	}
	for _, f := range m.Fields {
		add(f.Value)
	}
	for _, s := range m.Sections {
		for _, l := range s.Lines {
			add(l)
		}
	}
	add(m.Footer)
	return b.String()
}

// TestAlertLinksOnlyOnPortals: an alertWebUrl that is not a Microsoft
// portal is shown as defanged text, never as a link, on the targeted attack
// notification and on both cards of a case about the alert (the adapters
// render exactly these Messages); a portal URL is a link.
func TestAlertLinksOnlyOnPortals(t *testing.T) {
	t.Parallel()
	const phish = "https://contoso-security.example/login?next=reset"
	const portal = "https://security.microsoft.com/alerts/da637551227677560813_-961444813"
	b := &Bot{cfg: unitConfig(), core: &core{now: time.Now}}
	inc := func(link string) Message {
		return notificationCard(IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90, Link: link})
	}
	cs := func(link string) CaseView {
		return CaseView{Ref: "EOD-7", Org: "contoso", Priority: "high", Status: StatusNew, Question: "is this real?",
			Subject:   Subject{Kind: SubjectAlert, ID: "da637551227677560813_-961444813", Name: "Suspicious sign-in", Link: link},
			Requester: User{Platform: Slack, ID: "U0ANALYST"}}
	}
	for name, m := range map[string]Message{
		"notification": inc(phish),
		"receipt":      b.receiptCard(cs(phish)),
		"desk card":    b.deskCard(cs(phish)),
	} {
		require.Empty(t, linked(m), "%s: a non-portal URL is never a link", name)
		text := allText(m)
		require.Contains(t, text, "hxxps[://]contoso-security[.]example/login?next=reset", name)
		require.Contains(t, text, "not a Microsoft portal, so not linked", name)
		require.NotContains(t, text, "https://contoso-security", "%s: not even as clickable text", name)
	}
	for name, m := range map[string]Message{
		"notification": inc(portal),
		"receipt":      b.receiptCard(cs(portal)),
		"desk card":    b.deskCard(cs(portal)),
	} {
		require.Equal(t, []string{portal}, linked(m), name)
		require.NotContains(t, allText(m), "not linked", name)
	}
}

// TestScopeURLsAreDefanged: a URL in an incident's scope of compromise is
// an indicator, shown defanged on the notification card and in the full
// scope, so that no chat client makes it clickable (it was shown as sent,
// and Slack and Discord link a bare URL).
func TestScopeURLsAreDefanged(t *testing.T) {
	t.Parallel()
	scope := scopeGroups(hunting.Scope{
		URLs:    hunting.ScopeGroup{Kind: hunting.EntityURL, Count: 1, Values: []hunting.ScopeEntity{{Value: "http://payload.evil.example/x.ps1", Display: "HTTP://Payload.Evil.example/x.ps1"}}},
		Devices: hunting.ScopeGroup{Kind: hunting.EntityDevice, Count: 1, Values: []hunting.ScopeEntity{{Value: "4a1b", Display: "ws-01.contoso.local"}}},
	})
	card := notificationCard(IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90, Scope: scope})
	for name, m := range map[string]Message{"card": card, "full scope": scopeMessages("12", scope)[0]} {
		text := allText(m)
		require.Contains(t, text, "hxxp[://]Payload[.]Evil[.]example/x[.]ps1", name)
		require.NotContains(t, strings.ToLower(text), "http://payload", name)
		require.Contains(t, text, "ws-01.contoso.local · 4a1b", "%s: other kinds are shown as before", name)
		require.Empty(t, linked(m), name)
	}
}

// TestScopeNamesComeFirst: a card's scope read "1e5bc9d7e413ddd7902c2932e418702b84d0cc07 fin-ws…"
// and "3f2a…(64 hex) C:\Users\…", the name cut away, and its buttons said
// "Ask about device 1e5bc9d7e413". Names come first, as people know them,
// with the id after; the button names the host or the file, and still
// asks by id.
func TestScopeNamesComeFirst(t *testing.T) {
	t.Parallel()
	dev, hash := "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", strings.Repeat("3f", 32)
	scope := scopeGroups(hunting.Scope{
		Devices: hunting.ScopeGroup{Kind: hunting.EntityDevice, Count: 2, Values: []hunting.ScopeEntity{{Value: dev, Display: "fin-ws-07.contoso.local"}, {Value: "name:kiosk-3", Display: "kiosk-3"}}},
		Files:   hunting.ScopeGroup{Kind: hunting.EntityFile, Count: 1, Values: []hunting.ScopeEntity{{Value: hash, Display: `C:\Users\ana\AppData\Local\Temp\Quarterly Review Q3 2026\invoice-viewer.exe`}}},
		Users:   hunting.ScopeGroup{Kind: hunting.EntityUser, Count: 1, Values: []hunting.ScopeEntity{{Value: "aad:0f8fad5b-d9cb-469f-a165-70867728950e", Display: "ana@contoso.example"}}},
	})
	card := notificationCard(IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90, Scope: scope})
	text := allText(card)
	require.Contains(t, text, "Devices (2): fin-ws-07.contoso.local · "+dev[:12], "the host name first, its id after")
	require.Contains(t, text, ", kiosk-3\n", "a device known by name alone shows it once")
	require.Contains(t, text, `invoice-viewer.exe · 3f3f`, "a long path keeps the file's name, then its hash")
	require.Contains(t, text, "Users (1): ana@contoso.example\n", "an account's internal key is not shown")
	labels := map[string]string{}
	for _, b := range card.Buttons {
		if b.Action == ActAskEntity {
			labels[b.Label] = b.Value
		}
	}
	require.Equal(t, map[string]string{"Ask about device fin-ws-07.contoso.local": "device:" + dev, "Ask about file invoice-viewer.exe": "file:" + hash}, labels)

	full := allText(scopeMessages("12", scope)[0])
	require.Contains(t, full, "invoice-viewer.exe · "+hash, "the full scope gives the whole hash")
	require.Contains(t, full, "fin-ws-07.contoso.local · "+dev)
}

// TestInvisibleDeviceIDRendersACard: a device whose id is nothing but a
// control or invisible character (as hostile or broken alerts send) leaves
// no word to ask about; the card is still drawn, without that button. It
// panicked, and every post and edit of the incident went dead.
func TestInvisibleDeviceIDRendersACard(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"\u0001", "\u200b", "\u00ad", " "} {
		scope := scopeGroups(hunting.Scope{
			Devices: hunting.ScopeGroup{Kind: hunting.EntityDevice, Count: 1, Values: []hunting.ScopeEntity{{Value: id, Display: id}}},
		})
		card := notificationCard(IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90, Scope: scope})
		for _, b := range card.Buttons {
			require.NotEqual(t, ActAskEntity, b.Action, "%q: nothing to ask about", id)
		}
	}
}

// TestEveryAlertURLIsDefanged: a URL in alert text is defanged wherever it
// starts (Discord links "_https://…" and "x1https://…", which the word
// boundary let through), and a case about a URL shows it defanged.
func TestEveryAlertURLIsDefanged(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"see _https://evil.example/login", "x1https://evil.example/a", "(https://evil.example)", "HTTP://evil.example"} {
		out := alertText(in)
		require.NotContains(t, strings.ToLower(out), "http://", in)
		require.NotContains(t, strings.ToLower(out), "https://", in)
		require.Contains(t, out, "evil[.]example", in)
	}
	s := Subject{Kind: SubjectURL, ID: "https://evil.example/x"}
	require.Equal(t, "URL hxxps[://]evil[.]example/x", subjectLabel(s))
	for _, f := range subjectLines(s) {
		for _, sp := range f.Value {
			require.NotContains(t, sp.Text, "https://", "the desk card's subject")
		}
	}
}

// TestRefang: an indicator copied defanged, from a card or a threat
// report, is taken as it is. They were refused ("is not a URL").
func TestRefang(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"https://login.evil.example/reset.php?a=b", "http://1.2.3.4/x"} {
		require.Equal(t, raw, refang(defang(raw)))
	}
	// Only the scheme and host: a path's own text stays as written, and a
	// domain that starts with hxxp is a domain.
	require.Equal(t, "https://x.example/a(.)b.c", refang("hxxps[://]x[.]example/a(.)b[.]c"))
	require.Equal(t, "hxxpool.example", refang("hxxpool.example"))
	require.Equal(t, "http://evil.com/a", refang("hxxp[:]//evil[.]com/a"), "the [:]// form of threat reports")
	for in, want := range map[string]string{
		"hXXps://evil(.)example/x": "https://evil.example/x",
		"evil[dot]example":         "evil.example",
		"10[.]0[.]0[.]5":           "10.0.0.5",
		"2001:db8[:]:7":            "2001:db8::7",
	} {
		require.Equal(t, want, refang(in))
	}
	got, err := validInsightSubject(SubjectURL, "hxxps[://]example[.]com/x")
	require.Nil(t, err)
	require.Equal(t, "https://example.com/x", got)
	got, err = validInsightSubject(SubjectIP, "10[.]0[.]0[.]5")
	require.Nil(t, err)
	require.Equal(t, "10.0.0.5", got)
	got, err = validInsightSubject(SubjectURL, "evil[.]example")
	require.Nil(t, err)
	require.Equal(t, "evil.example", got)
}

// TestFullScopeShowsItAll: "Show full scope" of a ransomware incident on
// 200 devices showed 50 a kind on Slack and 14 on Discord (a field holds
// 1,024 characters). It is every item, in sections that fit a Discord
// field, over as many messages as needed, up to 500 items; what is left
// is counted (from a review).
func TestFullScopeShowsItAll(t *testing.T) {
	t.Parallel()
	var devs []ScopeItem
	for i := range 200 {
		devs = append(devs, ScopeItem{Name: fmt.Sprintf("ws-%04d.corp.contoso.example", i), ID: fmt.Sprintf("%040x", i)})
	}
	ms := scopeMessages("7", []ScopeGroup{{Kind: "devices", Items: devs}, {Kind: "users", Items: []ScopeItem{{Name: "CONTOSO\\ana"}}}})
	require.Len(t, ms, 5, "200 devices in sections of 10, five a message, then the user")
	require.Equal(t, "Full scope of incident 7 (1 of 5)", ms[0].Title)
	lines, seen := 0, map[string]bool{}
	for _, m := range ms {
		require.LessOrEqual(t, len(m.Sections), 5)
		for _, s := range m.Sections {
			text := 0
			for _, l := range s.Lines {
				lines++
				seen[l[0].Text] = true
				text += len(l[0].Text) + 1
			}
			require.LessOrEqual(t, text, 1024, "a section fits a Discord field")
		}
	}
	require.Equal(t, 201, lines)
	require.True(t, seen[devs[199].text(maxListLineRunes)], "the last device is shown")
	require.Equal(t, "ws-0199.corp.contoso.example · "+devs[199].ID, devs[199].text(maxListLineRunes), "its name first, then its id whole")
	require.Equal(t, "Devices (1–10 of 200)", ms[0].Sections[0].Title)
	require.Empty(t, ms[4].Footer, "nothing left out")

	for i := 200; i < 700; i++ {
		devs = append(devs, ScopeItem{Name: fmt.Sprintf("ws-%04d.corp.contoso.example", i), ID: fmt.Sprintf("%040x", i)})
	}
	// Discord escapes markdown characters: paths full of backslashes take
	// twice their length there, and a section still fits a field.
	var paths []ScopeItem
	for i := range 40 {
		paths = append(paths, ScopeItem{Name: fmt.Sprintf(`C:\Windows\System32\cmd.exe /c copy \\fs01\c$\Users\Public\*.* \\10.0.0.%d\admin$\x_%d`, i, i)})
	}
	for _, m := range scopeMessages("9", []ScopeGroup{{Kind: "files", Items: paths}}) {
		for _, s := range m.Sections {
			escaped := 0
			for _, l := range s.Lines {
				escaped += len(l[0].Text) + strings.Count(l[0].Text, `\`) + strings.Count(l[0].Text, "_") + strings.Count(l[0].Text, "*") + 1
			}
			require.LessOrEqual(t, escaped, 1024, "%s fits a Discord field escaped", s.Title)
		}
	}

	big := scopeMessages("8", []ScopeGroup{{Kind: "devices", Items: devs, Count: 5000}})
	require.Len(t, big, 10, "at most ten messages")
	require.Equal(t, "4500 more items not shown (500 shown).", plainLine(big[9].Footer))
}

// TestCardScopeShowsEveryItemItCounts: the card's scope line joined three
// items and cut the line at 180 characters; with file items (a hash and a
// path) the third vanished in the "…" while "and N more" counted only
// past three (from a review). Each item is cut on its own.
func TestCardScopeShowsEveryItemItCounts(t *testing.T) {
	t.Parallel()
	var files []ScopeItem
	for i := range 4 {
		files = append(files, ScopeItem{Name: fmt.Sprintf("C:\\Users\\Public\\stage%d.dll", i), ID: fmt.Sprintf("f%d%s", i, strings.Repeat("ab", 31))})
	}
	card := notificationCard(IncidentView{ID: "12", Org: "contoso", Title: "Targeted attack", Severity: SeverityHigh, Score: 90,
		Scope: []ScopeGroup{{Kind: "files", Items: files}}})
	var text string
	for _, sec := range card.Sections {
		if sec.Title == "Scope of compromise" {
			text = plainLine(sec.Lines[0])
		}
	}
	for i := range 3 {
		require.Contains(t, text, fmt.Sprintf("stage%d.dll · f%dabab", i, i), "item %d is shown, its name first", i+1)
	}
	require.Contains(t, text, "and 1 more")
}
