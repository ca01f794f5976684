package bot_test

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

const fabrikamTenant = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"

// defenderAlert is a Defender /api/alerts alert for the incident tests.
type defenderAlert struct {
	ID, Severity, Category, Title, Device string
	// Expert: raised by the expert hunting service (always posted at once).
	Expert        bool
	Tenant        string
	Status, Class string
	At            time.Time
	Files         []string // names: each becomes a file with its hashes
}

func hexSum(s string, n int) string {
	if n == 40 {
		h := sha1.Sum([]byte(s))
		return hex.EncodeToString(h[:])
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (a defenderAlert) raw() hunting.RawAlert {
	src := "WindowsDefenderAtp"
	if a.Expert {
		src = "ThreatExperts"
	}
	ev := []map[string]any{}
	for _, f := range a.Files {
		ev = append(ev, map[string]any{"entityType": "File", "sha1": hexSum(f, 40), "sha256": hexSum(f, 64), "fileName": f, "filePath": `C:\Users\Public`})
	}
	m := map[string]any{
		"id": a.ID, "severity": a.Severity, "status": a.Status, "detectionSource": src, "category": a.Category, "title": a.Title,
		"description": "test alert", "alertCreationTime": a.At.Add(time.Minute).Format(time.RFC3339Nano),
		"firstEventTime": a.At.Format(time.RFC3339Nano), "lastEventTime": a.At.Format(time.RFC3339Nano),
		"lastUpdateTime": a.At.Add(2 * time.Minute).Format(time.RFC3339Nano),
		"machineId":      hexSum(a.Device, 40), "computerDnsName": a.Device, "aadTenantId": a.Tenant, "evidence": ev,
	}
	if a.Class != "" {
		m["classification"] = a.Class
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// huntFixture is the bot with hunting on one database.
type huntFixture struct {
	*fixture
	hunt *hunting.Service
}

func setupHunting(t *testing.T) *huntFixture {
	t.Helper()
	db := pgtest.New(t)
	hunt, err := hunting.New(db, hunting.Config{Orgs: []hunting.Org{
		{ID: "contoso", Tenants: []string{contosoTenant}}, {ID: "fabrikam", Tenants: []string{fabrikamTenant}},
	}, GroupWait: time.Millisecond}, nil, nil)
	require.NoError(t, err)
	return &huntFixture{fixture: setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{}), hunt: hunt}
}

// ingest takes alerts in (Contoso's unless they say) and runs the sweep;
// it returns the incident of each.
func (f *huntFixture) ingest(t *testing.T, as ...defenderAlert) []string {
	t.Helper()
	raws := make([]hunting.RawAlert, len(as))
	for i, a := range as {
		a.Tenant = cmp.Or(a.Tenant, contosoTenant)
		a.Severity = cmp.Or(a.Severity, "High")
		a.Status = cmp.Or(a.Status, "New")
		a.Title = cmp.Or(a.Title, "Suspicious activity "+a.ID)
		if a.At.IsZero() {
			a.At = time.Now().Add(-30 * time.Minute)
		}
		raws[i] = a.raw()
	}
	res, err := f.hunt.Ingest(context.Background(), raws)
	require.NoError(t, err)
	_, err = f.hunt.Sweep(context.Background())
	require.NoError(t, err)
	ids := make([]string, len(as))
	for i, it := range res.Items {
		require.NotZero(t, it.IncidentID, "alert %s: %+v", as[i].ID, it)
		ids[i] = strconv.FormatInt(it.IncidentID, 10)
	}
	return ids
}

// card waits for the notification card of incident id in Contoso's channel.
func (f *huntFixture) card(t *testing.T, id string) bottest.Call {
	t.Helper()
	return posted(t, f.slack, contosoSOC, nil, "Incident "+id+" · threatdesk targeted attack notification")
}

// edited waits for an edit of ref whose text contains every one of want,
// and returns the latest such edit.
func (f *huntFixture) edited(t *testing.T, ref Ref, want ...string) Message {
	t.Helper()
	var got Message
	ok := f.slack.WaitFor(tenSeconds, func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op != bottest.OpUpdate || c.Ref != ref {
				continue
			}
			all := true
			for _, w := range want {
				all = all && strings.Contains(plain(c.Message), w)
			}
			if all {
				got = c.Message
			}
		}
		return got.Title != ""
	})
	require.True(t, ok, "no edit of %s with %q: %s", ref.Message, want, dump(f.slack.Calls()))
	return got
}

func actionIDs(bs []Button) []ActionID {
	out := []ActionID{}
	for _, b := range bs {
		out = append(out, b.Action)
	}
	return out
}

// answerText waits for the first answer through r, as plain text.
func answerText(t *testing.T, r *bottest.Responder) string {
	t.Helper()
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok, "no answer")
	return plain(got.Message)
}

// TestResolveFromTheCard: Resolve on the notification card opens a form
// with Defender's classifications and a comment; submitting it resolves the
// incident in hunting, edits the card to say who resolved it and how, with
// no button left that acts on the incident, and says so in its thread. A
// member of another org gets the answer an unknown incident gets.
func TestResolveFromTheCard(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	id := f.ingest(t, defenderAlert{ID: "da0000000000000001_1", Expert: true, Category: "LateralMovement", Device: "ws-1.contoso.local",
		Title: "Hands-on-keyboard attack"})[0]
	card := f.card(t, id)
	require.Contains(t, actionIDs(card.Message.Buttons), ActResolve, "an open incident's card offers Resolve")

	ack, _ := f.press(t, Slack, analyst, ActResolve, id, card.Ref)
	require.NotNil(t, ack.Form)
	form := *ack.Form
	require.Equal(t, "Resolve incident "+id, form.Title)
	require.Len(t, form.Fields, 2)
	require.Equal(t, InputSelect, form.Fields[0].Kind)
	var choices []string
	for _, o := range form.Fields[0].Options {
		choices = append(choices, o.Label)
	}
	require.Equal(t, []string{"True positive", "Informational, expected activity", "False positive"}, choices)

	// Bad input keeps the form open and loses nothing.
	sack, _ := f.submit(t, Slack, analyst, form, map[string]string{"classification": "maybe", "comment": "x"})
	require.Contains(t, sack.Errors, "classification")

	// A Fabrikam analyst, with a form naming Contoso's incident, is told
	// what an unknown incident gets.
	foreign := form
	foreign.State = "c=" + fabSOC + "&i=" + id
	unknown := form
	unknown.State = "c=" + fabSOC + "&i=999999"
	_, r := f.submit(t, Discord, fabAnalyst, foreign, map[string]string{"classification": "false_positive"})
	other := answerText(t, r)
	_, r = f.submit(t, Discord, fabAnalyst, unknown, map[string]string{"classification": "false_positive"})
	require.Equal(t, answerText(t, r), other)
	require.Contains(t, other, "No such incident in your organisation")

	_, r = f.submit(t, Slack, analyst, form, map[string]string{"classification": "true_positive", "comment": "Contained: <!channel> ws-1 isolated, passwords reset."})
	require.Contains(t, answerText(t, r), "Resolved incident "+id+" as true positive")

	n, _ := strconv.ParseInt(id, 10, 64)
	v, err := f.hunt.Incident(context.Background(), "contoso", n)
	require.NoError(t, err)
	require.Equal(t, "closed", v.Status)
	require.Equal(t, hunting.ClassTruePositive, v.Classification)
	require.Equal(t, "Ana Lyst", v.ResolvedBy)

	m := f.edited(t, card.Ref, "Resolved by", "Ana Lyst", "true positive", "ws-1 isolated")
	require.NotContains(t, actionIDs(m.Buttons), ActResolve)
	require.NotContains(t, actionIDs(m.Buttons), ActAcknowledge)
	for _, sec := range m.Sections {
		for _, l := range sec.Lines {
			for _, sp := range l {
				if strings.Contains(sp.Text, "<!channel>") {
					require.True(t, sp.Untrusted, "the comment is the analyst's text")
				}
			}
		}
	}
	note := posted(t, f.slack, contosoSOC, &card.Ref, "Resolved by Ana Lyst as true positive")
	require.True(t, note.Message.Text[0][0].Untrusted)

	// Resolving again says by whom and how it was resolved, and gives back
	// what was written: the form is gone by then.
	_, r = f.submit(t, Slack, analyst, form, map[string]string{"classification": "false_positive", "comment": "Checked with IT:\nthe <@U0BOSS> test."})
	got := answerText(t, r)
	require.Contains(t, got, "already resolved by Ana Lyst as true positive")
	require.Contains(t, got, "What you wrote, to send it again:\nChecked with IT:\nthe <@U0BOSS> test.\n")
}

// TestIncidentResolvesItselfUpstream: when every alert of a posted incident
// is resolved in the source, the incident closes, its card says so without
// its action buttons, and a note goes in the card's thread.
func TestIncidentResolvesItselfUpstream(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	a := defenderAlert{ID: "da0000000000000002_1", Expert: true, Category: "Execution", Device: "ws-2.contoso.local", At: time.Now().Add(-time.Hour)}
	id := f.ingest(t, a)[0]
	card := f.card(t, id)

	a.Status, a.Class = "Resolved", "FalsePositive"
	require.Equal(t, id, f.ingest(t, a)[0])
	posted(t, f.slack, contosoSOC, &card.Ref, "were resolved in the source (Defender or Graph) as false positive: the incident is closed")
	m := f.edited(t, card.Ref, "Resolved by", "the source", "false positive")
	require.Equal(t, []ActionID{ActConsult, ActShowScope, ActAskEntity}, actionIDs(m.Buttons),
		"a closed card keeps only the buttons that still work")
}

// TestFollowUpCardNamesTheEarlierIncident: new activity on the entities of
// a resolved incident opens a new incident, whose card names the one it
// follows.
func TestFollowUpCardNamesTheEarlierIncident(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	at := time.Now().Add(-3 * time.Hour)
	old := f.ingest(t, defenderAlert{ID: "da0000000000000003_1", Expert: true, Category: "Persistence", Device: "ws-3.contoso.local",
		Title: "Implant persistence", At: at, Files: []string{"implant.dll"}})[0]
	f.card(t, old)
	n, _ := strconv.ParseInt(old, 10, 64)
	require.NoError(t, f.hunt.Resolve(context.Background(), "contoso", n, hunting.ClassTruePositive, "reimaged", "Ana Lyst"))

	id := f.ingest(t, defenderAlert{ID: "da0000000000000003_2", Expert: true, Category: "CommandAndControl", Device: "ws-3.contoso.local",
		Title: "Beacon again", At: at.Add(time.Hour), Files: []string{"implant.dll"}})[0]
	require.NotEqual(t, old, id, "a closed incident is never reopened")
	card := f.card(t, id)
	require.Contains(t, plain(card.Message), "Follows incident "+old+" (Implant persistence on ws-3.contoso.local), which was closed")
}

// TestMergedCardKeepsNoButtons: a posted incident folded into another has
// its card edited to point at that one, with no buttons at all.
func TestMergedCardKeepsNoButtons(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	at := time.Now().Add(-time.Hour)
	first := f.ingest(t, defenderAlert{ID: "da0000000000000004_1", Expert: true, Category: "Execution", Device: "ws-4a.contoso.local", At: at, Files: []string{"a.exe"}})[0]
	f.card(t, first)
	second := f.ingest(t, defenderAlert{ID: "da0000000000000004_2", Expert: true, Category: "Execution", Device: "ws-4b.contoso.local", At: at, Files: []string{"b.exe"}})[0]
	require.NotEqual(t, first, second)
	card := f.card(t, second)
	// One alert on the first incident's device with the second's file links them.
	f.ingest(t, defenderAlert{ID: "da0000000000000004_3", Expert: true, Category: "LateralMovement", Device: "ws-4a.contoso.local", At: at.Add(time.Minute), Files: []string{"b.exe"}})
	m := f.edited(t, card.Ref, "Merged into incident "+first)
	require.Empty(t, m.Buttons, "a merged card keeps no button")

	// Pressed before the edit came (an older copy of the card): Consult
	// opens the case about the incident it went into, and Show full scope
	// points there; they opened a case about an empty incident and posted
	// an empty scope.
	ack, _ := f.press(t, Slack, analyst, ActConsult, second, card.Ref)
	require.NotNil(t, ack.Form)
	_, r := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "is this contained?"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	ref := openedRef(t, plain(got.Message))
	desk := posted(t, f.slack, deskChannel, nil, ref+" · Contoso")
	require.Contains(t, plain(desk.Message), "Incident: "+first)
	require.Contains(t, plain(desk.Message), "incident "+second+" was merged into it")
	_, r = f.press(t, Slack, analyst, ActShowScope, second, card.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Incident "+second+" was merged into incident "+first)
}

// TestIncidentsListQuietNotifyNowConsult: /experts incidents quiet lists a
// quiet incident with its score and why; Notify now posts it once however
// often it is pressed; Consult opens a case about it. Another org's member
// sees none of it and gets the answers unknown ones get.
func TestIncidentsListQuietNotifyNowConsult(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	ids := f.ingest(t,
		defenderAlert{ID: "da0000000000000005_1", Severity: "Low", Category: "Discovery", Device: "ws-5.contoso.local", Title: "Net view enumeration"},
		defenderAlert{ID: "da0000000000000005_2", Expert: true, Category: "Execution", Device: "ws-6.contoso.local", Title: "Expert finding"})
	quiet, loud := ids[0], ids[1]
	f.card(t, loud)

	_, m := f.run(t, Slack, analyst, contosoSOC, "incidents quiet")
	require.Equal(t, "Quiet incidents: not notified · Contoso", m.Title)
	require.Len(t, m.Items, 1)
	it := m.Items[0]
	line := plain(Message{Items: []Item{it}})
	require.Contains(t, line, "Incident "+quiet+" · score ")
	require.Contains(t, line, "quiet: not posted")
	require.Contains(t, line, "Net view enumeration")
	require.Contains(t, line, "why: +")
	require.Equal(t, []ActionID{ActNotifyNow, ActConsult}, actionIDs(it.Actions))

	_, m = f.run(t, Slack, analyst, contosoSOC, "incidents")
	require.Contains(t, plain(m), "Incident "+loud+" · score 100 · high · posted")
	require.Equal(t, 1, strings.Count(plain(m), "raised by the expert hunting service"), "the why says it once: %s", plain(m))
	require.Contains(t, plain(m), "Incident "+quiet)
	require.Equal(t, []ActionID{ActConsult}, actionIDs(m.Items[0].Actions), "a posted incident offers no Notify now")

	// Tenancy: a Fabrikam member sees none of Contoso's incidents, and an
	// org named by a member is answered as any made-up word.
	_, m = f.run(t, Discord, fabAnalyst, fabSOC, "incidents all")
	require.NotContains(t, plain(m), "Incident "+quiet)
	require.Contains(t, plain(m), "No incidents.")
	_, named := f.run(t, Discord, fabAnalyst, fabSOC, "incidents quiet contoso")
	_, madeUp := f.run(t, Discord, fabAnalyst, fabSOC, "incidents quiet nosuchorg")
	require.Equal(t, strings.ReplaceAll(plain(named), "contoso", "X"), strings.ReplaceAll(plain(madeUp), "nosuchorg", "X"))
	onFab := Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "list"}
	notFound := func(value string) string {
		_, r := f.press(t, Discord, fabAnalyst, ActNotifyNow, value, onFab)
		return answerText(t, r)
	}
	require.Contains(t, notFound("fabrikam/999999"), "No such incident in your organisation")
	require.Equal(t, notFound("fabrikam/999999"), notFound(it.Actions[0].Value))
	require.Equal(t, notFound("fabrikam/999999"), notFound("fabrikam/"+quiet))

	// Notify now, pressed twice: one card.
	onList := Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "list"}
	_, r1 := f.press(t, Slack, analyst, ActNotifyNow, it.Actions[0].Value, onList)
	_, r2 := f.press(t, Slack, analyst, ActNotifyNow, it.Actions[0].Value, onList)
	got := []string{answerText(t, r1), answerText(t, r2)}
	require.Contains(t, strings.Join(got, "\n"), "Incident "+quiet+" is being posted to Contoso's notification channel now;", "no raw channel id")
	require.Contains(t, strings.Join(got, "\n"), "Incident "+quiet+" was already posted as a notification")
	card := f.card(t, quiet)
	require.Contains(t, plain(card.Message), "Net view enumeration")
	var notifies int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE kind = 'incident.notify' AND stream = $1`, "incident:"+quiet).Scan(&notifies))
	require.Equal(t, 1, notifies)
	f.waitFor(t, "the outbox drained", func() bool {
		var n int
		_ = f.db.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n)
		return n == 0
	})
	require.Len(t, f.slack.Find(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Thread == nil && strings.Contains(plain(c.Message), "Incident "+quiet+" · threatdesk")
	}), 1, "posted once")
	_, m = f.run(t, Slack, analyst, contosoSOC, "incidents quiet")
	require.Contains(t, plain(m), "No quiet incidents")

	// Consult from the list: a form, then a case about the incident.
	ack, _ := f.press(t, Slack, analyst, ActConsult, it.Actions[1].Value, onList)
	require.NotNil(t, ack.Form)
	_, r := f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "is this enumeration part of something?"})
	require.Contains(t, answerText(t, r), "Opened EOD-1")
	posted(t, f.slack, deskChannel, nil, "EOD-1 · Contoso · Incident Net view enumeration")

	// Experts and managers may name an org; a manager only looks.
	_, m = f.run(t, Slack, manager, deskChannel, "incidents all contoso")
	require.Equal(t, "All incidents · Contoso", m.Title)
	require.Len(t, m.Items, 2)
	for _, it := range m.Items {
		require.Empty(t, it.Actions, "a manager on the desk neither notifies nor consults")
	}
	_, m = f.run(t, Slack, expert1, deskChannel, "incidents all nosuchorg")
	require.Contains(t, plain(m), "the org ids are contoso, fabrikam")
}

// TestOlderIncidentsPageThroughTheList: a list longer than a page says how
// many more there are and offers Older incidents, which shows the next
// page of the same list; a member's button naming another org is answered
// as the command would be.
func TestOlderIncidentsPageThroughTheList(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	var alerts []defenderAlert
	for i := range 12 {
		alerts = append(alerts, defenderAlert{ID: fmt.Sprintf("da00000000000001%02d_1", i), Severity: "Low", Category: "Discovery",
			Device: fmt.Sprintf("ws-q%d.contoso.local", i), Title: fmt.Sprintf("Odd LDAP queries %d", i)})
	}
	ids := f.ingest(t, alerts...)
	_, m := f.run(t, Slack, analyst, contosoSOC, "incidents quiet")
	require.Len(t, m.Items, 10)
	require.Contains(t, plainLine(m.Footer), "and 2 more (Older incidents shows the next 2)")
	require.Equal(t, []ActionID{ActOlderIncidents}, actionIDs(m.Buttons))

	onList := Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "list"}
	_, r := f.press(t, Slack, analyst, ActOlderIncidents, m.Buttons[0].Value, onList)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Len(t, got.Message.Items, 2, plain(got.Message))
	shown := plain(got.Message)
	seen := map[string]bool{}
	for _, id := range ids {
		if strings.Contains(shown, "Incident "+id+" ·") {
			seen[id] = true
		}
	}
	require.Len(t, seen, 2, "the two oldest: %s", shown)
	require.Empty(t, got.Message.Buttons, "the last page")

	_, r = f.press(t, Discord, fabAnalyst, ActOlderIncidents, "quiet:contoso:"+ids[len(ids)-1], Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "x"})
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), `"contoso" is not a list`, "as the command answers a member naming another org")
}

func plainLine(l Line) string { return plain(Message{Text: []Line{l}}) }

// TestExpertNotifiesFromTheDesk: an expert lists every org's quiet
// incidents from the desk and posts one into its org's channel.
func TestExpertNotifiesFromTheDesk(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	quiet := f.ingest(t, defenderAlert{ID: "da0000000000000006_1", Severity: "Low", Category: "Discovery", Device: "ws-7.contoso.local", Title: "Odd LDAP queries"})[0]
	_, m := f.run(t, Slack, expert1, deskChannel, "incidents quiet")
	require.Equal(t, "Quiet incidents: not notified", m.Title, "every org's, without an org")
	require.Len(t, m.Items, 1)
	require.Contains(t, plain(m), "Incident "+quiet+" (Contoso)")
	require.Equal(t, []ActionID{ActNotifyNow}, actionIDs(m.Items[0].Actions), "an expert on the desk notifies but does not open cases")
	_, r := f.press(t, Slack, expert1, ActNotifyNow, m.Items[0].Actions[0].Value, Ref{Platform: Slack, Workspace: slackTeam, Channel: deskChannel, Message: "list"})
	require.Contains(t, answerText(t, r), "is being posted")
	f.card(t, quiet)
}

// TestAlertTextCannotForgeCardLines: an alert's title and file names come
// from the sender, or from an attacker on a watched host; a line break in
// them made a line of the card of its own ("Resolved by …", "Status:
// Closed"), a direction override disguised a file name, and a bare address
// became a link. They are shown on one line, the override dropped, the
// address defanged.
func TestAlertTextCannotForgeCardLines(t *testing.T) {
	t.Parallel()
	f := setupHunting(t)
	id := f.ingest(t, defenderAlert{ID: "da0000000000000999_1", Device: "ws-9.contoso.local", Expert: true, Category: "Execution",
		Title: "Suspicious PowerShell\n\n*Resolved by* Eve Expert (threat expert) visit https://evil.example/reset",
		Files: []string{"inv\u202egpj.exe\r\n*Status:* Closed"}})[0]
	text := plain(f.card(t, id).Message)
	for _, forged := range []string{"\n*Resolved by*", "\nResolved by", "\n*Status:*", "\nStatus:", "\u202e"} {
		require.NotContains(t, text, forged)
	}
	require.Contains(t, text, "Suspicious PowerShell  *Resolved by* Eve Expert (threat expert)", "the title on one line")
	require.Contains(t, text, "invgpj.exe  *Status:* Closed", "the file name on one line, without the override")
	require.NotContains(t, text, "https://evil.example", "an address in alert text is not made a link")
	require.Contains(t, text, "visit hxxps[://]evil[.]example/reset")

	// The category reaches "Why you are seeing this": one that still reads
	// as ransomware to the score, with a line of its own after it, forged
	// a line there (it was not made one line).
	// (Letters outside ASCII do not count for the score's key: these are
	// mathematical sans-serif ones.)
	id = f.ingest(t, defenderAlert{ID: "da0000000000000999_2", Device: "ws-8.contoso.local", Severity: "High",
		Category: "Ransomware\n\u202e✅ 𝖱𝖾𝗌𝗈𝗅𝗏𝖾𝖽", Title: "Ransomware behavior"})[0]
	text = plain(f.card(t, id).Message)
	require.Contains(t, text, "High Ransomware alert")
	for _, forged := range []string{"\n✅", "\u202e", "𝖱𝖾𝗌"} {
		require.NotContains(t, text, forged)
	}
}
