package bot

// Incidents worked from chat (README.md, "Incidents from chat"): Resolve on
// the notification card (a form with Defender's classification and a
// comment), the card that says who resolved it and how and keeps no button
// that can no longer work, and /experts incidents, which lists incidents
// with their score, why, and whether they were posted, with Notify now and
// Consult on each line.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Incident classifications, as Microsoft Defender names them (hunting
// stores the same words).
const (
	ClassTruePositive  = "true_positive"
	ClassInformational = "informational_expected_activity"
	ClassFalsePositive = "false_positive"
)

// classifications are the Resolve form's choices, in Defender's order.
var classifications = []Option{
	{Label: "True positive", Value: ClassTruePositive},
	{Label: "Informational, expected activity", Value: ClassInformational},
	{Label: "False positive", Value: ClassFalsePositive},
}

func validClassification(v string) bool {
	return slices.ContainsFunc(classifications, func(o Option) bool { return o.Value == v })
}

// Resolution is how a closed incident was resolved.
type Resolution struct {
	// By is who resolved it (a display name); empty when Upstream.
	By string
	// Upstream: every alert of it was resolved in the source (Defender or
	// Graph), and it resolved itself.
	Upstream bool
	// How is the classification in words ("true positive"); empty when
	// the source's alerts did not agree on one.
	How     string
	Comment string
}

// Incident list filters (/experts incidents open|quiet|all).
const (
	IncidentsOpen  = "open"
	IncidentsQuiet = "quiet"
	IncidentsAll   = "all"
)

// IncidentLine is one incident of a list.
type IncidentLine struct {
	ID       string
	Org      string
	Title    string
	Severity Severity
	Score    int
	// Reasons is the score's breakdown, one reason each ("+25 severity: high").
	Reasons []string
	// Status is open, closed or merged; Posted says whether a card was
	// posted (the score crossed the bar, or someone pressed Notify now).
	Status string
	Posted bool
	// CardLost: its card's post went dead (the channel was gone, the
	// platform refused for hours); Notify now posts it again.
	CardLost   bool
	Resolution *Resolution
	MergedInto string
	Follows    string
	// LastActivity is the latest alert activity.
	LastActivity time.Time
	// Sightings are the other orgs where its indicators were seen: filled
	// for an expert's listing only (insight_incidents.go).
	Sightings []Sighting
}

// IncidentList is one page of incidents and how many more matched.
type IncidentList struct {
	Incidents []IncidentLine
	More      int
	// Capped: More counts only up to the domain's listing cap; there may
	// be more still.
	Capped bool
}

// Resolve form.
const (
	formResolveIncident = "resolve_incident"
	fieldClassification = "classification"
	fieldComment        = "comment"
	// maxResolveComment is hunting's cap on a resolution comment.
	maxResolveComment = 1000
)

// Listing limits: a page of incidents per message keeps a Slack answer far
// under its 50 blocks (one section a line) and a Discord one under its
// embed's 6000 characters and its 25 select options.
const (
	maxIncidentsListed = 10
	maxIncidentLine    = 380 // runes of one line: title and why
)

const hintIncidents = "the list is one of open, quiet or all, e.g. /experts incidents quiet"

// msgNoIncident answers an incident that does not exist and one of another
// org alike.
const msgNoIncident = "No such incident in your organisation: /experts incidents lists its incidents (all of them with all)."

// incidentNotFound gives a missing incident (or another org's) its one answer.
func incidentNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return &Refusal{Msg: msgNoIncident, Err: err}
	}
	return err
}

func resolveForm(id, channel string) Form {
	return Form{ID: formResolveIncident, State: url.Values{"i": {id}, "c": {channel}}.Encode(), Title: "Resolve incident " + id, Submit: "Resolve",
		Fields: []FormField{
			{ID: fieldClassification, Label: "Classification", Kind: InputSelect, Required: true, Options: classifications,
				Placeholder: "How was it classified?"},
			{ID: fieldComment, Label: "Comment", Kind: InputParagraph, MaxLength: maxResolveComment,
				Placeholder: "What you found and did, e.g. device isolated, passwords reset."},
		}}
}

// checkResolveForm checks a submitted Resolve form; ok is false with the
// errors to show when it cannot be worked.
func checkResolveForm(s Submission) (SubmitAck, bool) {
	if !validClassification(strings.TrimSpace(s.Values[fieldClassification])) {
		return SubmitAck{Errors: map[string]string{fieldClassification: "Choose a classification: true positive, informational (expected activity) or false positive."}}, false
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(s.Values[fieldComment])); n > maxResolveComment {
		return SubmitAck{Errors: map[string]string{fieldComment: fmt.Sprintf("Keep the comment to %d characters (it has %d).", maxResolveComment, n)}}, false
	}
	return SubmitAck{}, true
}

func classificationLabel(v string) string {
	for _, o := range classifications {
		if o.Value == v {
			return strings.ToLower(o.Label)
		}
	}
	return v
}

// resolveAction answers Resolve on a card with its form.
func (b *Bot) resolveAction(ctx context.Context, a Action, key string) Ack {
	if _, err := validSubject(SubjectIncident, a.Value); err != nil || a.Value == "" {
		return Ack{Message: ptr(textMessage("That button does not name an incident.")), Private: true}
	}
	return b.formAck(ctx, a.User.Platform, key, resolveForm(a.Value, a.actsIn()))
}

// resolveSubmitted resolves an incident from its submitted form. The org is
// the one of the channel the form came from: a member resolves only their
// own org's incidents, and another org's is "not found", as an unknown one.
func (b *Bot) resolveSubmitted(ctx context.Context, w who, s Submission, state url.Values, comment string) (Message, error) {
	if b.hunt == nil {
		return Message{}, &Refusal{Msg: "Notifications are not enabled in this deployment."}
	}
	if w.org == nil {
		return Message{}, &Refusal{Msg: "Resolve an incident from its notification in your organisation's channel."}
	}
	id, uerr := validSubject(SubjectIncident, state.Get("i"))
	if uerr != nil || id == "" {
		return Message{}, incidentNotFound(fmt.Errorf("resolve: %w", ErrNotFound))
	}
	class := strings.TrimSpace(s.Values[fieldClassification])
	if !validClassification(class) {
		return Message{}, &usageError{msg: "Choose a classification: true positive, informational (expected activity) or false positive."}
	}
	if err := b.hunt.Resolve(ctx, w.org.ID, id, class, comment, inboundKey(s.User.Platform, kindSubmit, s.Key), b.named(ctx, w.user)); err != nil {
		return Message{}, incidentNotFound(err)
	}
	return textMessage(fmt.Sprintf("Resolved incident %s as %s. Its card now says so; new activity on its devices, users or files opens a new incident that follows it.",
		id, classificationLabel(class))), nil
}

// listIncidents answers /experts incidents [open|quiet|all] [org]. Members
// see their own org's incidents only, and an org named by a member is
// answered as any other word that is not a list, whether that org exists or
// not; experts and managers may name an org, and see every org's without one
// outside an org's channel.
func (b *Bot) listIncidents(ctx context.Context, w who, r request) (Message, error) {
	return b.listIncidentsBefore(ctx, w, r, 0)
}

// olderIncidents answers Older incidents under a list: the next page of
// the same list, checked as the command was (a member's value naming
// another org gets the command's answer).
func (b *Bot) olderIncidents(ctx context.Context, w who, value string) (*Message, error) {
	filter, rest, _ := strings.Cut(value, ":")
	org, last, _ := strings.Cut(rest, ":")
	before, ok := parseIncidentNum(last)
	if !ok || (filter != IncidentsOpen && filter != IncidentsQuiet && filter != IncidentsAll) {
		return nil, &Refusal{Msg: "That button does not name a list of incidents; run /experts incidents again."}
	}
	m, err := b.listIncidentsBefore(ctx, w, request{verb: vIncidents, filter: filter, org: org}, before)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// listIncidentsBefore lists from the incident before before on (0: the
// newest).
func (b *Bot) listIncidentsBefore(ctx context.Context, w who, r request, before int64) (Message, error) {
	if b.hunt == nil {
		return Message{}, &Refusal{Msg: "Incidents are not enabled in this deployment: hunting is not configured."}
	}
	var orgs []string
	switch {
	case r.org != "" && !w.may(opIncidentsAnyOrg):
		if w.org == nil || r.org != w.org.ID {
			// The very answer any other word gets from the grammar: a
			// member cannot tell an org id from a made-up word.
			return Message{}, badInput("%q is not a list: %s (experts and managers may add an org id).", r.org, hintIncidents)
		}
		orgs = []string{w.org.ID}
	case r.org != "":
		if _, ok := b.cfg.org(r.org); !ok {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is neither a list (open, quiet, all) nor an org: the org ids are %s.", r.org, b.orgIDs())}
		}
		orgs = []string{r.org}
	case w.org != nil:
		orgs = []string{w.org.ID}
	default:
		for _, o := range b.cfg.Orgs {
			orgs = append(orgs, o.ID)
		}
	}
	var all IncidentList
	for _, org := range orgs {
		l, err := b.hunt.List(ctx, org, r.filter, before, maxIncidentsListed)
		if err != nil {
			return Message{}, fmt.Errorf("list incidents of %s: %w", org, err)
		}
		all.Incidents = append(all.Incidents, l.Incidents...)
		all.More += l.More
		all.Capped = all.Capped || l.Capped
	}
	// Newest first across orgs (ids grow with time), a page at most.
	slices.SortStableFunc(all.Incidents, func(x, y IncidentLine) int { return cmp.Compare(incidentNum(y.ID), incidentNum(x.ID)) })
	if n := len(all.Incidents); n > maxIncidentsListed {
		all.More += n - maxIncidentsListed
		all.Incidents = all.Incidents[:maxIncidentsListed]
	}
	b.withIncidentSightings(ctx, w, &all)
	for i := range all.Incidents {
		if inc := &all.Incidents[i]; inc.Posted && incidentOpen(IncidentView{Status: inc.Status}) {
			lost, _, err := b.anchorLost(ctx, incidentStream(inc.ID), targetNotification)
			if err != nil {
				return Message{}, err
			}
			inc.CardLost = lost
		}
	}
	m := b.incidentsMessage(w, r.filter, orgs, all)
	if all.More > 0 && len(all.Incidents) > 0 {
		last := all.Incidents[len(all.Incidents)-1].ID
		m.Buttons = append(m.Buttons, Button{Action: ActOlderIncidents, Label: "Older incidents", Value: r.filter + ":" + r.org + ":" + last})
	}
	if before > 0 {
		m.Title += " (older)"
	}
	return m, nil
}

func incidentNum(id string) int64 {
	n, _ := parseIncidentNum(id)
	return n
}

func parseIncidentNum(id string) (int64, bool) {
	var n int64
	if id == "" || len(id) > 18 {
		return 0, false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n > 0
}

func (b *Bot) incidentsMessage(w who, filter string, orgs []string, l IncidentList) Message {
	title := map[string]string{IncidentsOpen: "Open incidents", IncidentsQuiet: "Quiet incidents: not notified", IncidentsAll: "All incidents"}[filter]
	several := len(orgs) > 1
	if !several {
		title += " · " + b.orgName(orgs[0])
	}
	intro := map[string]string{
		IncidentsOpen:  "Open incidents, posted or quiet, newest first, each with its score and why.",
		IncidentsQuiet: "Open incidents under the notification bar that were never posted, newest first, each with its score and why.",
		IncidentsAll:   "Every incident, closed and merged ones too, newest first, each with its score and why.",
	}[filter]
	m := Message{Title: title, Text: []Line{{T(intro)}}, Fallback: title}
	if len(l.Incidents) == 0 {
		none := "No incidents."
		if filter == IncidentsQuiet {
			none = "No quiet incidents: every open incident was posted."
		}
		m.Text = []Line{{T(none)}}
		return m
	}
	offered := map[ActionID]bool{}
	for _, inc := range l.Incidents {
		it := b.incidentItem(w, inc, several)
		for _, a := range it.Actions {
			offered[a.Action] = true
		}
		m.Items = append(m.Items, it)
	}
	var say []string
	if offered[ActNotifyNow] {
		say = append(say, "Notify now posts a quiet incident to its org's channel as a notification")
	}
	if offered[ActConsult] {
		say = append(say, "Consult opens a case about an incident with a threat expert")
	}
	if len(say) > 0 {
		m.Text = append(m.Text, Line{T(strings.Join(say, "; ") + ".")})
	}
	if l.More > 0 {
		more := fmt.Sprintf("and %d more", l.More)
		if l.Capped {
			more = fmt.Sprintf("and more than %d more", l.More)
		}
		why := map[string]string{
			IncidentsOpen: "; /experts incidents quiet lists only those never posted",
			IncidentsAll:  "; /experts incidents open or quiet narrows it",
		}[filter]
		if w.user.Platform == Discord { // the list is an option there
			why = map[string]string{
				IncidentsOpen: "; /experts incidents filter:quiet lists only those never posted",
				IncidentsAll:  "; /experts incidents filter:open or filter:quiet narrows it",
			}[filter]
		}
		m.Footer = Line{T(more + " (Older incidents shows the next " + fmt.Sprint(min(l.More, maxIncidentsListed)) + why + ")")}
	}
	return m
}

// incidentState says in a few words where an incident stands.
func incidentState(inc IncidentLine) string {
	switch {
	case inc.Status == "merged" && inc.MergedInto != "":
		return "merged into incident " + inc.MergedInto
	case inc.Resolution != nil:
		return resolutionText(*inc.Resolution)
	case inc.Status != "" && inc.Status != "open":
		return inc.Status
	case inc.Posted && inc.CardLost:
		return "posted, but its card could not be posted"
	case inc.Posted:
		return "posted"
	}
	return "quiet: not posted"
}

func resolutionText(r Resolution) string {
	s := "resolved"
	if r.Upstream {
		s += " in the source"
	} else if r.By != "" {
		s += " by " + r.By
	}
	if r.How != "" {
		s += " as " + r.How
	}
	return s
}

// incidentItem is one line of the list, with the actions the caller may
// take on it: Notify now on a quiet incident (members for their own org,
// experts for any), Consult (members, for their own org's incidents).
func (b *Bot) incidentItem(w who, inc IncidentLine, showOrg bool) Item {
	head := fmt.Sprintf("Incident %s", inc.ID)
	label := fmt.Sprintf("Incident %s · score %d", inc.ID, inc.Score)
	if showOrg {
		head += " (" + b.orgName(inc.Org) + ")"
		label += " · " + b.orgName(inc.Org)
	}
	state := incidentState(inc)
	info := fmt.Sprintf(" · score %d · %s · ", inc.Score, cmp.Or(string(inc.Severity), "informational"))
	line := Line{B(head), T(info)}
	// The state names who resolved it: a person's name, shown literally.
	line = append(line, U(state), T(" · "), U(cut(inc.Title, maxListLineRunes)))
	if inc.Follows != "" {
		line = append(line, T(" · follows incident "+inc.Follows))
	}
	if !inc.LastActivity.IsZero() {
		line = append(line, T(" · last activity "+relTime(inc.LastActivity, b.now())))
	}
	if len(inc.Sightings) > 0 {
		line = append(line, T(" · "), B("also seen at: "), U(b.sightingsLine(inc.Sightings)))
	}
	if len(inc.Reasons) > 0 {
		used := 0
		for _, s := range line {
			used += utf8.RuneCountInString(s.Text)
		}
		why := cut(strings.Join(inc.Reasons, ", "), max(maxIncidentLine-used-8, 20))
		line = append(line, T(" · why: "), U(why))
	}
	it := Item{Line: line, Label: label}
	mine := w.org != nil && w.org.ID == inc.Org
	if inc.Status == "open" && (!inc.Posted || inc.CardLost) && w.may(opNotifyNow) && (mine || w.has(RoleExpert)) {
		it.Actions = append(it.Actions, Button{Action: ActNotifyNow, Label: "Notify now", Value: inc.Org + "/" + inc.ID, Style: ButtonPrimary})
	}
	if mine && inc.Status != "merged" && w.may(opOpen) {
		it.Actions = append(it.Actions, Button{Action: ActConsult, Label: "Consult", Value: inc.ID})
	}
	return it
}

// notifyNow posts a quiet incident as a notification. The button names the
// org and the incident; a member acts for their own org only, and another
// org's incident is "not found", as an unknown one.
func (b *Bot) notifyNow(ctx context.Context, w who, value string) (*Message, error) {
	if b.hunt == nil {
		return nil, &Refusal{Msg: "Notifications are not enabled in this deployment."}
	}
	org, id, named := strings.Cut(value, "/")
	if !named {
		org, id = "", value
		if w.org != nil {
			org = w.org.ID
		}
	}
	if _, uerr := validSubject(SubjectIncident, id); uerr != nil || id == "" {
		return nil, incidentNotFound(fmt.Errorf("notify now: %w", ErrNotFound))
	}
	o, known := b.cfg.org(org)
	mine := w.org != nil && w.org.ID == org
	if !known || (!mine && !w.has(RoleExpert)) {
		return nil, incidentNotFound(fmt.Errorf("notify now: %w", ErrNotFound))
	}
	// A card whose post went dead (the channel was gone, the platform
	// refused for hours) is lost: the incident is posted again, as a new
	// card.
	lost, seq, err := b.anchorLost(ctx, incidentStream(id), targetNotification)
	if err != nil {
		return nil, err
	}
	by := b.named(ctx, w.user)
	if lost {
		err = b.hunt.Repost(ctx, org, id, seq, by)
	} else {
		err = b.hunt.NotifyNow(ctx, org, id, by)
	}
	if err != nil {
		return nil, incidentNotFound(err)
	}
	again := ""
	if lost {
		again = " again (its earlier card could not be posted)"
	}
	return ptr(textMessage(fmt.Sprintf("Incident %s is being posted to %s's notification channel now%s; it is updated and repeated like any notification from here on.",
		id, o.Name, again))), nil
}

// incidentStream is the outbox stream of an incident's events (hunting's
// Stream).
func incidentStream(id string) string { return "incident:" + id }

// ---- the notification card ----

// incidentOpen reports whether the card may act on the incident.
func incidentOpen(inc IncidentView) bool { return inc.Status == "" || inc.Status == "open" }

// cardPreamble is what a card says before its summary: the incident it
// follows, the one it was merged into.
func cardPreamble(inc IncidentView) []Line {
	var out []Line
	if inc.Status == "merged" && inc.MergedInto != "" {
		out = append(out, Line{B("Merged into incident " + inc.MergedInto), T(": follow that card; this one no longer changes.")})
	}
	if inc.Follows != "" {
		l := Line{B("Follows incident " + inc.Follows)}
		if inc.FollowsTitle != "" {
			l = append(l, T(" ("), U(cut(inc.FollowsTitle, maxTitleRunes)), T(")"))
		}
		l = append(l, T(", which was closed: new activity on its devices, users or files opened this incident."))
		out = append(out, l)
	}
	return out
}

// cardResolution is the fields and section a resolved or closed card shows.
func cardResolution(inc IncidentView) ([]Field, []Section) {
	if incidentOpen(inc) {
		return nil, nil
	}
	status := map[string]string{"closed": "Closed", "merged": "Merged"}[inc.Status]
	fs := []Field{{Label: "Status", Value: Line{T(cmp.Or(status, inc.Status))}}}
	r := inc.Resolution
	if r == nil {
		return fs, nil
	}
	fs[0].Value = Line{T("Resolved")}
	by := Line{U(r.By)}
	if r.Upstream {
		by = Line{T("the source: every alert was resolved in Defender or Graph")}
	}
	fs = append(fs, Field{Label: "Resolved by", Value: by}, Field{Label: "Classification", Value: Line{T(cmp.Or(r.How, "unclassified"))}})
	if strings.TrimSpace(r.Comment) == "" {
		return fs, nil
	}
	return fs, []Section{{Title: "Resolution comment", Lines: paragraphs(r.Comment)}}
}

// cardButtons are the card's buttons by the incident's state: an open one
// has them all (Resolve among them); a closed one keeps only those that
// still work (Consult, Show full scope, Ask about a device or file); a
// merged one has none: its card points at the incident it went into, and
// neither has a test card (sample-notification): no incident stands
// behind it for a button to act on.
func cardButtons(inc IncidentView) []Button {
	if inc.Status == "merged" || inc.Test {
		return nil
	}
	bs := []Button{{Action: ActConsult, Label: "Consult a threat expert", Value: inc.ID, Style: ButtonPrimary}}
	if incidentOpen(inc) {
		if inc.AckedBy == "" {
			bs = append(bs, Button{Action: ActAcknowledge, Label: "Acknowledge", Value: inc.ID})
		}
		bs = append(bs, Button{Action: ActResolve, Label: "Resolve", Value: inc.ID, Style: ButtonDanger})
	}
	return append(bs, Button{Action: ActShowScope, Label: "Show full scope", Value: inc.ID})
}

// parseIncidents reads /experts incidents [open|quiet|all] [org]; on
// Discord the same as the typed options filter and org.
func parseIncidents(c Command, args []string, r *request) *usageError {
	f, o := IncidentsOpen, ""
	if len(c.Options) > 0 {
		f, o = strings.ToLower(cmp.Or(opt(c, "filter", "which"), IncidentsOpen)), strings.ToLower(opt(c, "org"))
	} else {
		for _, a := range args {
			la := strings.ToLower(a)
			switch {
			case la == IncidentsOpen || la == IncidentsQuiet || la == IncidentsAll:
				f = la
			case strings.HasPrefix(la, "org:") || strings.HasPrefix(la, "org="):
				o = la[4:]
			case o == "" && orgIDPattern.MatchString(la):
				o = la
			default:
				return badInput("%q is not a list: %s (experts and managers may add an org id).", a, hintIncidents)
			}
		}
	}
	switch f {
	case IncidentsOpen, IncidentsQuiet, IncidentsAll:
	default:
		return badInput("%q is not a list: %s.", f, hintIncidents)
	}
	r.filter, r.org = f, o
	return nil
}
