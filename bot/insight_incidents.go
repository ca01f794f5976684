package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Sightings of notified incidents (issue 19): when an incident is posted to
// its org's channel and its indicators (files, addresses, URLs and domains,
// the threat family titling it) were also seen at other orgs, the expert
// desk gets one message naming the org, the incident (linked to its
// notification) and where else it was seen. The message is the anchor
// targetSightings of the incident's stream, so the delivery machinery posts
// it exactly once (a crash between the post and its record is found again,
// deliver.go); every later event of the incident (it grew, was
// acknowledged, tagged) edits it with the sightings of that moment. An
// incident without sightings posts nothing on the desk. The same sightings
// show on each line of /experts incidents as an expert runs it. Members see
// none of it: the desk is the experts', and a member's listing never looks
// them up.

// targetSightings is the anchor, on an incident's stream, of the expert desk
// message naming the other orgs where the incident's indicators were seen.
const targetSightings = "sightings"

// maxSightingsLineRunes bounds the sightings of one line of /experts
// incidents.
const maxSightingsLineRunes = 200

// incidentSightings returns where else the indicators of org's incident id
// were seen, for experts, and whether the lookup answered. It fails soft:
// without insight, or when the lookup fails or takes over insightWait,
// ok is false (logged) and callers leave what they showed as it was.
func (b *Bot) incidentSightings(ctx context.Context, org, id string) (ss []Sighting, ok bool) {
	in := b.insightSvc()
	if in == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, insightWait)
	defer cancel()
	s, _, err := in.Sightings(ctx, org, Subject{Kind: SubjectIncident, ID: id})
	if err != nil {
		b.log.Warn("sightings of an incident: left off", "org", org, "incident", id, "err", err)
		return nil, false
	}
	return s, true
}

// sightingsPartKey is the key of the desk's sightings part of an incident
// event.
const sightingsPartKey = "desk.sightings"

// sightingsParts are the expert desk's part of an incident event: its
// sightings message posted (once: it becomes the stream's anchor
// targetSightings) when the incident has sightings and none was posted,
// edited when one was. On the notification itself (a "post") the
// message comes after the card, which it links to.
func (b *Bot) sightingsParts(ctx context.Context, inc IncidentView) ([]part, error) {
	if b.insightSvc() == nil || inc.Test {
		return nil, nil
	}
	desk := b.cfg.Desk.DeskDest()
	if desk.Channel == "" {
		return nil, nil
	}
	if inc.Status == "merged" {
		// Its entities moved to the incident it joined: a lookup would
		// find none and say "no longer seen". The message says where its
		// sightings went, if one was posted.
		_, posted, err := b.anchorOf(ctx, "incident:"+inc.ID, targetSightings)
		if err != nil || !posted {
			return nil, err
		}
		return []part{{key: sightingsPartKey, update: targetSightings, msg: b.mergedSightings(inc)}}, nil
	}
	ss, ok := b.incidentSightings(ctx, inc.Org, inc.ID)
	if !ok {
		// A failed lookup is not "no longer seen": the message, if any,
		// keeps its last answer until an event brings a good one.
		return nil, nil
	}
	_, posted, err := b.anchorOf(ctx, "incident:"+inc.ID, targetSightings)
	if err != nil {
		return nil, err
	}
	if !posted && len(ss) == 0 {
		return nil, nil
	}
	p := part{key: sightingsPartKey, msg: b.sightingsMessage(inc, ss), link: targetNotification, linkLabel: "Open the notification"}
	if posted {
		p.update = targetSightings
	} else {
		p.dest, p.anchor = desk, targetSightings
	}
	return []part{p}, nil
}

// sightingsMessage is the expert desk's message on a notified incident seen
// at other orgs. Only the desk ever gets it.
func (b *Bot) sightingsMessage(inc IncidentView, ss []Sighting) Message {
	org := b.orgName(inc.Org)
	m := Message{
		Title:    "Incident " + inc.ID + " at " + org + ": also seen at other orgs",
		Severity: inc.Severity,
		Text: []Line{
			{B(org), T(" · incident " + inc.ID + " · "), U(cut(inc.Title, maxTitleRunes))},
		},
		Fallback: cut("Incident "+inc.ID+" at "+org+": also seen at "+sightingOrgs(b, ss), maxListLineRunes),
		Footer:   Line{T("Experts only: " + org + "'s channel is never told of other orgs.")},
	}
	sec := Section{Title: "Also seen at (experts only)"}
	for i, s := range ss {
		if i == maxSightingsRow {
			sec.More = len(ss) - i
			break
		}
		sec.Lines = append(sec.Lines, Line{B(b.orgName(s.Org)), U(" (" + cut(sightingText(s), maxListLineRunes*2) + ")")})
	}
	if len(ss) == 0 {
		m.Title = "Incident " + inc.ID + " at " + org + ": no longer seen at other orgs"
		m.Fallback = cut("Incident "+inc.ID+" at "+org+": no longer seen at other orgs", maxListLineRunes)
		sec.Lines = []Line{{T("No other org holds its indicators now within the insight window.")}}
	}
	m.Sections = []Section{sec}
	return m
}

// mergedSightings is the desk's sightings message of an incident merged
// into another: its sightings follow on that one's.
func (b *Bot) mergedSightings(inc IncidentView) Message {
	org := b.orgName(inc.Org)
	return Message{
		Title:    "Incident " + inc.ID + " at " + org + ": merged into incident " + inc.MergedInto,
		Severity: inc.Severity,
		Text: []Line{
			{B(org), T(" · incident " + inc.ID + " · "), U(cut(inc.Title, maxTitleRunes))},
			{T("Merged into incident " + inc.MergedInto + ": its sightings at other orgs follow on that incident's message.")},
		},
		Fallback: cut("Incident "+inc.ID+" at "+org+": merged into incident "+inc.MergedInto, maxListLineRunes),
		Footer:   Line{T("Experts only: " + org + "'s channel is never told of other orgs.")},
	}
}

// sightingOrgs names the orgs of ss: "Fabrikam, Northwind".
func sightingOrgs(b *Bot, ss []Sighting) string {
	names := make([]string, 0, len(ss))
	for _, s := range ss {
		names = append(names, b.orgName(s.Org))
	}
	if len(names) == 0 {
		return "no other org"
	}
	return strings.Join(names, ", ")
}

// sightingsLine is the sightings of one incident on an expert's list:
// "Fabrikam (1 device, incident 14, by file 4b6f…); Northwind (…)".
func (b *Bot) sightingsLine(ss []Sighting) string {
	parts := make([]string, 0, len(ss))
	for i, s := range ss {
		if i == maxSightingsRow {
			parts = append(parts, fmt.Sprintf("and %s", plural.Count(len(ss)-i, "more org", "more orgs")))
			break
		}
		parts = append(parts, b.orgName(s.Org)+" ("+sightingText(s)+")")
	}
	return cut(strings.Join(parts, "; "), maxSightingsLineRunes)
}

// withIncidentSightings fills the sightings of each listed incident, for an
// expert's /experts incidents (never a member's).
func (b *Bot) withIncidentSightings(ctx context.Context, w who, l *IncidentList) {
	if !w.has(RoleExpert) || b.insightSvc() == nil {
		return
	}
	for i := range l.Incidents {
		inc := &l.Incidents[i]
		inc.Sightings, _ = b.incidentSightings(ctx, inc.Org, inc.ID)
	}
}
