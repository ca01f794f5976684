package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Expert insight (issue 19): what only an expert service can see.
//
//   - New subjects: "/experts ip <address>", "/experts url <url or domain>"
//     (a suspicious network connection) and "/experts actor <name>" (a
//     threat actor or campaign) open cases as the other subjects do; the
//     desk card shows what threatdesk knows of the subject in the case's
//     org (its incidents, devices, alerts).
//   - Sightings: the desk card shows the experts where else (at which other
//     orgs) the indicators of a case were seen: "Also seen at: Fabrikam (2
//     devices, incident 14, EOD-9)".
//   - Campaigns: experts tag cases and incidents with a campaign or actor
//     ("/experts campaign tag EOD-3 Storm-0501"), list one across orgs
//     ("/experts campaign Storm-0501") and share its name with the
//     customers ("/experts campaign share Storm-0501"). A tagged incident's
//     notification says it was "linked by the threat experts to a campaign
//     they track", naming it once it is shared; nothing more.
//
// Tenancy: everything naming another org is on the desk card or in an
// expert's private answer; campaign commands are experts' only (the
// permission table), and a member's answers never change with what other
// orgs hold: opening a case about an address says the same whatever any
// other org has seen.

// Verbs.
const (
	vIP       = "ip"
	vURL      = "url"
	vActor    = "actor"
	vCampaign = "campaign"
)

// Hints shown with bad input.
const (
	hintIP    = "an address is an IPv4 or IPv6 address, e.g. 198.51.100.7 or 2001:db8::7"
	hintURL   = "a URL starts with http:// or https:// (defanged, hxxps[://]…, is fine too), a domain looks like cdn.example.com"
	hintActor = "an actor or campaign is its name, 2 to 80 characters, e.g. Storm-0501 or \"Midnight Blizzard\""
	hintTag   = "Usage: /experts campaign tag <EOD-n or incident id> <campaign or actor name>, e.g. /experts campaign tag EOD-12 Storm-0501"
)

// Limits of the new subjects.
const (
	maxURLLen       = 2048
	minActorRunes   = 2
	maxActorRunes   = 80
	maxSightingsRow = 5 // orgs named on a desk card
)

// validInsightSubject checks an address, a URL or domain or an actor name,
// and returns it normalised (an address or URL defanged is taken back).
func validInsightSubject(kind SubjectKind, id string) (string, *usageError) {
	id = strings.TrimSpace(id)
	if kind == SubjectIP || kind == SubjectURL {
		id = refang(id) // as copied from a card or a threat report
	}
	switch kind {
	case SubjectIP:
		ip, err := netip.ParseAddr(id)
		if err != nil || ip.Zone() != "" {
			return "", badInput("%q is not an IP address: %s.", cut(id, 80), hintIP)
		}
		return ip.Unmap().String(), nil
	case SubjectURL:
		if len(id) > maxURLLen || !utf8.ValidString(id) || strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return "", badInput("%q is not a URL or a domain: %s.", cut(id, 80), hintURL)
		}
		if strings.Contains(id, "://") {
			u, err := url.Parse(id)
			if err != nil || u.Hostname() == "" || !validHost(u.Hostname()) {
				return "", badInput("%q is not a URL: %s.", cut(id, 80), hintURL)
			}
			switch strings.ToLower(u.Scheme) {
			case "http", "https", "ftp", "ws", "wss":
			default:
				return "", badInput("%q is not a web URL (http, https or ftp): %s.", cut(id, 80), hintURL)
			}
			return id, nil
		}
		d := strings.ToLower(strings.TrimSuffix(id, "."))
		if !strings.Contains(d, ".") || !validHost(d) {
			return "", badInput("%q is not a URL or a domain: %s.", cut(id, 80), hintURL)
		}
		return d, nil
	case SubjectActor:
		name := strings.Join(strings.Fields(id), " ")
		n := utf8.RuneCountInString(name)
		ok := n >= minActorRunes && n <= maxActorRunes && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsControl) < 0 &&
			strings.IndexFunc(name, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
		if !ok {
			return "", badInput("%q is not an actor or campaign name: %s.", cut(id, 80), hintActor)
		}
		return name, nil
	}
	return id, nil
}

// validHost accepts a domain name or an IP address.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	return len(h) <= 253 && hostPattern.MatchString(h)
}

// kindLabel is a subject kind as a label: "IP", "URL", "Actor", "File".
func kindLabel(k SubjectKind) string {
	switch k {
	case SubjectIP:
		return "IP"
	case SubjectURL:
		return "URL"
	case "":
		return ""
	}
	return strings.ToUpper(string(k[:1])) + string(k[1:])
}

// askEntityLabel is the label of a notification card's "Ask about" button.
// It names the entity as people know it: a device's host name, a file's
// name (its path's last part), else the id shortened.
func askEntityLabel(kind SubjectKind, it ScopeItem) string {
	if kind == SubjectIP {
		return "Ask about this address"
	}
	name := it.Name
	if i := strings.LastIndexAny(name, `\/`); i >= 0 && i < len(name)-1 {
		name = name[i+1:]
	}
	if name == "" {
		name = it.ID
	}
	return "Ask about " + string(kind) + " " + cut(name, 24)
}

// askEntityTitle is the title of the form that button opens.
func askEntityTitle(kind string) string {
	if kind == string(SubjectIP) {
		return "Ask about this address"
	}
	return "Ask about this " + kind
}

// askAboutCommand opens a case about an address, a URL or domain or an
// actor, as /experts file opens one about a file.
func (b *Bot) askAboutCommand(ctx context.Context, w who, c Command, r request) (Message, error) {
	cv, pending, err := b.ask(ctx, w, askInput{key: inboundKey(c.User.Platform, "command", c.Key), subject: Subject{Kind: r.kind, ID: r.id},
		question: r.text, channel: c.Channel, thread: c.Thread})
	if err != nil || pending != nil {
		return deref(pending), err
	}
	return textMessage(fmt.Sprintf("Opened %s (%s priority). A threat expert will answer in the thread of its receipt in this channel.", cv.Ref, cv.Priority)), nil
}

// Campaign actions.
const (
	campaignShow  = "show"
	campaignTag   = "tag"
	campaignShare = "share"
)

// parseCampaign reads "/experts campaign [show] <name>", "campaign tag
// <EOD-n|incident> <name>" and "campaign share <name>". On Discord the
// verb group's subcommand is the first word and the options follow in
// order, so the same words arrive.
func parseCampaign(args []string, r *request) *usageError {
	if len(args) == 0 {
		return badInput("Which campaign? Usage: /experts campaign <name> lists it; /experts campaign tag <EOD-n or incident id> <name>; /experts campaign share <name>.")
	}
	r.action = campaignShow
	switch strings.ToLower(args[0]) {
	case campaignShow:
		args = args[1:]
	case campaignTag:
		r.action = campaignTag
		if len(args) < 3 {
			return badInput("%s.", hintTag)
		}
		r.id, args = args[1], args[2:]
	case campaignShare:
		r.action, args = campaignShare, args[1:]
	}
	name, uerr := validInsightSubject(SubjectActor, strings.Join(args, " "))
	if uerr != nil {
		return badInput("%s Usage: /experts campaign [show|share] <name>, or /experts campaign tag <EOD-n or incident id> <name>.",
			strings.Replace(uerr.msg, "an actor or campaign name", "a campaign name", 1))
	}
	r.text = name
	return nil
}

// ---- the domain ----

// Insight is what the bot needs of the insight service (insight package,
// shim InsightService). Only experts see what it returns of other orgs.
type Insight interface {
	// Sightings are the other orgs (than org) where the indicators of a
	// case subject of org were seen within the window, the latest first,
	// and how many indicators were left out as common.
	Sightings(ctx context.Context, org string, s Subject) ([]Sighting, int, error)
	// Known is what org's own data says of a subject (ip, url, actor,
	// file); zero when nothing.
	Known(ctx context.Context, org string, s Subject) (Known, error)
	// CaseCampaigns are the campaigns case ref is tagged with.
	CaseCampaigns(ctx context.Context, ref string) ([]CampaignTag, error)
	// IncidentLinked is what org's incident id may say of its campaigns.
	IncidentLinked(ctx context.Context, org, id string) (CampaignLink, error)
	// Tag tags a case (EOD-n) or an incident (its id) of any org.
	Tag(ctx context.Context, target, name string, by User) (Tagged, error)
	// Campaign lists a campaign across orgs; ErrNotFound when none.
	Campaign(ctx context.Context, name string) (CampaignView, error)
	// Share shares a campaign's name with the customers; changed is false
	// when it was shared already.
	Share(ctx context.Context, name string, by User) (c CampaignView, changed bool, err error)
	// DecodeEvent turns an outbox row of the insight service's into an
	// InsightEvent; ok is false for kinds that are not its.
	DecodeEvent(kind string, payload json.RawMessage) (ev InsightEvent, ok bool, err error)
}

// Sighting is one other org where a case's indicators were seen.
type Sighting struct {
	Org string
	// Indicators are what was seen there ("file 4b6f…", "domain x.example").
	Indicators []string
	Devices    int
	// Incidents are the ids of the org's incidents holding them (the most
	// recent few), IncidentCount all of them; Cases and CaseCount the same
	// for its cases about them.
	Incidents     []string
	IncidentCount int
	Cases         []string
	CaseCount     int
	Last          time.Time
}

// Known is what one org's own data says of a subject.
type Known struct {
	// Incidents are "14 · title" lines, IncidentCount all of them.
	Incidents     []string
	IncidentCount int
	Devices       []string
	DeviceCount   int
	// Alerts are "id · title" lines, AlertCount all of them.
	Alerts     []string
	AlertCount int
	// Campaigns are, for an actor, the campaigns of that name the experts
	// tagged on the org's cases and incidents, with how many: "Storm-0501 (2)".
	Campaigns []string
}

// CampaignTag is a campaign a case carries.
type CampaignTag struct {
	Name   string
	Shared bool
}

// CampaignLink is what an incident's notification says of its campaigns:
// linked to one, and the names of the shared ones.
type CampaignLink struct {
	Linked bool
	Shared []string
}

// Tagged is what a tag did.
type Tagged struct {
	Campaign string
	Shared   bool
	// Target is "EOD-12" or "incident 14"; Org its org; Title what it is.
	Target string
	Org    string
	Title  string
	// New is false when it carried the tag already.
	New bool
}

// CampaignView is a campaign across orgs, for experts.
type CampaignView struct {
	Name     string
	Shared   bool
	SharedBy string
	Items    []CampaignItem
	// First and Last bound its items' activity.
	First, Last time.Time
}

// CampaignItem is one tagged case or incident.
type CampaignItem struct {
	Target      string // "EOD-12" or "incident 14"
	Org         string
	Title       string
	Status      string
	First, Last time.Time
	TaggedBy    string
}

// InsightEvent is an insight outbox event: a case was tagged (Ref set;
// its desk card is edited) or an incident tagged or its campaign shared
// (IncidentID set; its notification is edited).
type InsightEvent struct {
	Org        string
	Ref        string
	IncidentID string
	Campaign   string
	Shared     bool
	By         string
}

// DeskInsight is what the desk card shows experts of a case's subject.
type DeskInsight struct {
	Sightings []Sighting
	// Common counts the indicators left out for being common.
	Common    int
	Known     *Known
	Campaigns []CampaignTag
}

// SetInsight hands the bot the insight service; without one there are no
// sightings, no campaigns (the command says insight is not enabled), and
// cases about addresses, URLs and actors still open. Call it before the
// adapters start.
func (b *Bot) SetInsight(in Insight) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.insight = in
}

func (b *Bot) insightSvc() Insight {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.insight
}

// insightWait bounds the insight reads of one desk card: a slow read
// leaves them off rather than hold the card.
const insightWait = 3 * time.Second

// withInsight fills c.Insight for the desk card. It fails soft: what it
// cannot read is left off the card, and logged.
func (b *Bot) withInsight(ctx context.Context, c *CaseView) {
	in := b.insightSvc()
	if in == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, insightWait)
	defer cancel()
	d := &DeskInsight{}
	var errs []error
	if c.Subject.Kind != SubjectNone && c.Subject.Kind != "" {
		s, common, err := in.Sightings(ctx, c.Org, c.Subject)
		d.Sightings, d.Common = s, common
		errs = append(errs, err)
		switch c.Subject.Kind {
		case SubjectIP, SubjectURL, SubjectActor:
			k, err := in.Known(ctx, c.Org, c.Subject)
			if err == nil {
				d.Known = &k
			}
			errs = append(errs, err)
		}
	}
	tags, err := in.CaseCampaigns(ctx, c.Ref)
	d.Campaigns = tags
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		b.log.Warn("insight for a desk card: part of it is left off", "ref", c.Ref, "err", err)
	}
	c.Insight = d
}

// insightSections are the desk card's insight: only ever on the desk.
func (b *Bot) insightSections(c CaseView) []Section {
	d := c.Insight
	if d == nil {
		return nil
	}
	var out []Section
	if k := d.Known; k != nil && (c.Subject.Kind == SubjectIP || c.Subject.Kind == SubjectURL || c.Subject.Kind == SubjectActor) {
		sec := Section{Title: "What threatdesk knows of it at " + b.orgName(c.Org)}
		if len(k.Campaigns) > 0 {
			sec.Lines = append(sec.Lines, Line{B("Tagged by the experts: "), U(cut(strings.Join(k.Campaigns, ", "), maxListLineRunes))})
		}
		if k.IncidentCount == 0 {
			sec.Lines = append(sec.Lines, Line{T("No incident of " + b.orgName(c.Org) + " involves it within the insight window.")})
		} else {
			// Titles and device names are alerts' words: shown as the
			// card shows them (alertText).
			sec.Lines = append(sec.Lines, Line{B(plural.S(k.IncidentCount, "incident") + ": "), U(cut(alertText(listMore(k.Incidents, k.IncidentCount)), maxListLineRunes*2))})
			if k.DeviceCount > 0 {
				sec.Lines = append(sec.Lines, Line{B(plural.S(k.DeviceCount, "device") + ": "), U(cut(alertText(listMore(k.Devices, k.DeviceCount)), maxListLineRunes*2))})
			}
			if k.AlertCount > 0 {
				sec.Lines = append(sec.Lines, Line{B(plural.S(k.AlertCount, "alert") + ": "), U(cut(alertText(listMore(k.Alerts, k.AlertCount)), maxListLineRunes*2))})
			}
		}
		out = append(out, sec)
	}
	if len(d.Sightings) > 0 {
		sec := Section{Title: "Also seen at (experts only)"}
		for i, s := range d.Sightings {
			if i == maxSightingsRow {
				sec.More = len(d.Sightings) - i
				break
			}
			// The indicators come from alerts: user text, never markup.
			sec.Lines = append(sec.Lines, Line{B(b.orgName(s.Org)), T(" ("), U(sightingText(s)), T(")")})
		}
		out = append(out, sec)
	}
	if len(d.Campaigns) > 0 {
		names := make([]string, len(d.Campaigns))
		for i, t := range d.Campaigns {
			names[i] = t.Name
			if t.Shared {
				names[i] += " (shared)"
			}
		}
		out = append(out, Section{Title: "Campaigns", Lines: []Line{{U(cut(strings.Join(names, ", "), maxListLineRunes*2))}}})
	}
	return out
}

// sightingText is "2 devices, incident 14, EOD-9".
func sightingText(s Sighting) string {
	var parts []string
	if s.Devices > 0 {
		parts = append(parts, plural.S(s.Devices, "device"))
	}
	for _, id := range s.Incidents {
		parts = append(parts, "incident "+id)
	}
	if more := s.IncidentCount - len(s.Incidents); more > 0 {
		parts = append(parts, fmt.Sprintf("%d more %s", more, plural.Word(more, "incident", "incidents")))
	}
	parts = append(parts, s.Cases...)
	if more := s.CaseCount - len(s.Cases); more > 0 {
		parts = append(parts, fmt.Sprintf("%d more %s", more, plural.Word(more, "case", "cases")))
	}
	if len(s.Indicators) > 0 {
		parts = append(parts, "by "+strings.Join(s.Indicators, ", "))
	}
	return strings.Join(parts, ", ")
}

// listMore joins items and says how many more there are of total.
func listMore(items []string, total int) string {
	s := strings.Join(items, ", ")
	if total > len(items) {
		s += fmt.Sprintf(" and %d more", total-len(items))
	}
	return s
}

// ---- campaigns ----

// formCampaign is the desk card's Tag campaign form.
const formCampaign = "campaign"

// campaignButton is the desk card's Tag campaign, when insight is on.
func (b *Bot) campaignButton(c CaseView) []Button {
	if b.insightSvc() == nil {
		return nil
	}
	return []Button{{Action: ActTagCampaign, Label: "Tag campaign", Value: c.Ref}}
}

// campaignForm asks an expert for the campaign to tag case ref with.
func campaignForm(ref, channel string) Form {
	return Form{ID: formCampaign, State: url.Values{"ref": {ref}, "c": {channel}}.Encode(), Title: "Campaign for " + ref, Submit: "Tag",
		Fields: []FormField{{ID: fieldText, Label: "Campaign or actor name", Kind: InputShort, Required: true, MinLength: minActorRunes, MaxLength: maxActorRunes,
			Placeholder: "e.g. Storm-0501"}}}
}

// campaignCommand runs "/experts campaign ...", experts only (the
// permission table).
func (b *Bot) campaignCommand(ctx context.Context, w who, r request) (Message, error) {
	in := b.insightSvc()
	if in == nil {
		return textMessage("Campaigns are not enabled on this threatdesk: ask your threatdesk admin to turn expert insight on."), nil
	}
	switch r.action {
	case campaignTag:
		t, err := in.Tag(ctx, r.id, r.text, b.named(ctx, w.user))
		if errors.Is(err, ErrNotFound) {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is neither a case nor an incident threatdesk knows. %s.", cut(r.id, 40), hintTag)}
		}
		if err != nil {
			return Message{}, err
		}
		what := t.Target + " (" + b.orgName(t.Org) + ", " + alertText(t.Title) + ")"
		if !t.New {
			return note(U(what), T(" already carries the campaign "), U(t.Campaign), T(".")), nil
		}
		tail := ". Its customer is not told the name until you share it (/experts campaign share)."
		if t.Shared {
			tail = ". The campaign is shared: the customer's notification names it."
		}
		if strings.HasPrefix(t.Target, "EOD-") {
			tail = ". The customer is not told: a case's tag shows on its desk card only."
		}
		return note(T("Tagged "), U(what), T(" with the campaign "), U(t.Campaign), T(tail)), nil
	case campaignShare:
		c, changed, err := in.Share(ctx, r.text, b.named(ctx, w.user))
		if errors.Is(err, ErrNotFound) {
			return Message{}, &usageError{msg: fmt.Sprintf("There is no campaign %q: tag a case or incident with it first (/experts campaign tag).", r.text)}
		}
		if err != nil {
			return Message{}, err
		}
		if !changed {
			return note(T("The campaign "), U(c.Name), T(" is already shared with the customers.")), nil
		}
		n := 0
		for _, it := range c.Items {
			if strings.HasPrefix(it.Target, "incident ") {
				n++
			}
		}
		return note(T("Shared the campaign "), U(c.Name), T(fmt.Sprintf(": the notifications of its %s now name it, and so will those tagged later.", plural.S(n, "tagged incident")))), nil
	}
	c, err := in.Campaign(ctx, r.text)
	if errors.Is(err, ErrNotFound) {
		return Message{}, &usageError{msg: fmt.Sprintf("There is no campaign %q yet: /experts campaign tag <EOD-n or incident id> %s starts it.", r.text, r.text)}
	}
	if err != nil {
		return Message{}, err
	}
	return b.campaignMessage(c), nil
}

// campaignMessage lists a campaign for an expert.
func (b *Bot) campaignMessage(c CampaignView) Message {
	loc := cmp.Or(b.cfg.Location, time.UTC)
	day := func(t time.Time) string { return t.In(loc).Format("2 Jan 2006 15:04 MST") }
	shared := "not shared: customers are told only that it is linked"
	if c.Shared {
		shared = "shared with the customers by " + c.SharedBy
	}
	m := Message{
		Title: cut("Campaign "+c.Name, maxTitleRunes),
		Fields: []Field{
			{Label: "Tagged", Value: Line{T(plural.Count(len(c.Items), "case or incident", "cases and incidents"))}},
			{Label: "First seen", Value: Line{T(day(c.First))}},
			{Label: "Last seen", Value: Line{T(day(c.Last))}},
			{Label: "Name", Value: Line{U(cut(shared, maxListLineRunes))}},
		},
		Fallback: cut(fmt.Sprintf("Campaign %s: %d tagged", c.Name, len(c.Items)), maxListLineRunes),
	}
	// Newest first: a growing campaign's latest items are the ones that
	// matter, and only the first maxListed are shown.
	items := slices.Clone(c.Items)
	slices.SortStableFunc(items, func(x, y CampaignItem) int { return y.Last.Compare(x.Last) })
	sec := Section{Title: "Tagged cases and incidents, newest first"}
	for i, it := range items {
		if i == maxListed {
			sec.More = len(c.Items) - i
			break
		}
		sec.Lines = append(sec.Lines, Line{B(it.Target), T(" · " + b.orgName(it.Org) + " · "), U(cut(alertText(it.Title), maxTitleRunes)),
			T(fmt.Sprintf(" · %s · %s to %s", it.Status, day(it.First), day(it.Last)))})
	}
	m.Sections = append(m.Sections, sec)
	return m
}

// renderInsight renders an insight outbox event: a tagged case's desk card
// is edited (with a note in its desk thread), a tagged incident's
// notification card is edited to say it is linked (naming a shared
// campaign).
func (b *Bot) renderInsight(ctx context.Context, ev InsightEvent) ([]part, error) {
	if ev.Ref != "" {
		c, err := b.cases.Get(ctx, Scope{All: true}, ev.Ref)
		if err != nil {
			return nil, fmt.Errorf("load %s to render its campaign tag: %w", ev.Ref, err)
		}
		if err := b.withSamples(ctx, &c); err != nil {
			return nil, err
		}
		b.withInsight(ctx, &c)
		deskMsg, err := b.deskCardNow(ctx, c)
		if err != nil {
			return nil, err
		}
		return []part{
			{key: "desk.card", update: targetDesk, msg: deskMsg},
			{key: "desk.note", thread: targetDesk, msg: note(B(ev.By), T(" tagged "+c.Ref+" with the campaign "), U(ev.Campaign), T("."))},
		}, nil
	}
	if b.hunt == nil {
		return nil, nil
	}
	// Only a card that exists is edited. The stream's rows go in order, so
	// when none is recorded now no earlier row will post it; a card posted
	// later (the incident was quiet, or is about to be posted) says it is
	// linked, and a card that failed for good already alerted an operator.
	if _, ok, err := b.anchorOf(ctx, "incident:"+ev.IncidentID, targetNotification); err != nil || !ok {
		return nil, err
	}
	return b.renderIncident(ctx, IncidentEvent{IncidentID: ev.IncidentID, Org: ev.Org, Action: "update"})
}

// withCampaign fills what an incident's notification says of campaigns.
func (b *Bot) withCampaign(ctx context.Context, inc *IncidentView) error {
	in := b.insightSvc()
	if in == nil {
		return nil
	}
	l, err := in.IncidentLinked(ctx, inc.Org, inc.ID)
	if err != nil {
		return err
	}
	if l.Linked {
		inc.Campaign = &l
	}
	return nil
}

// campaignLine is the notification card's line on a linked incident:
// that the experts linked it to a campaign they track, and its name once
// shared; nothing more.
func campaignLine(l *CampaignLink) []Line {
	if l == nil || !l.Linked {
		return nil
	}
	if len(l.Shared) == 0 {
		return []Line{{B("Linked by the threat experts to a campaign they track.")}}
	}
	return []Line{{B("Linked by the threat experts to a campaign they track"), T(": "), U(cut(strings.Join(l.Shared, ", "), maxListLineRunes)), T(".")}}
}
