package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// HuntingIncidents adapts hunting.Service to the Incidents the bot consumes.
type HuntingIncidents struct {
	svc *hunting.Service
	// loc is the zone times are written in (In; UTC when unset).
	loc *time.Location
}

var _ Incidents = (*HuntingIncidents)(nil)

// NewHuntingIncidents wraps svc.
func NewHuntingIncidents(svc *hunting.Service) *HuntingIncidents { return &HuntingIncidents{svc: svc} }

// In has times written in loc, the config's timezone, named ("4 Dec 16:24
// EST"): a card's timeline read in UTC, unnamed, passed for local time.
func (h *HuntingIncidents) In(loc *time.Location) *HuntingIncidents {
	h.loc = loc
	return h
}

// stamp is t as a card's timeline and details write it.
func (h *HuntingIncidents) stamp(t time.Time) string {
	loc := h.loc
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2 Jan 15:04 MST")
}

func incidentID(id string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimPrefix(id, "INC-"), "#"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	return n, nil
}

func huntErr(err error) error {
	if errors.Is(err, hunting.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// alertText is alert text made safe to show on a line of its own: an
// alert's title, a device, file or user name, a command line come from the
// sender (or from an attacker on a watched host), and a line break in them
// could forge a line of the card ("Resolved by …"), a direction override
// (U+202E) disguise a file name, and a bare address become a link.
// Control characters become spaces, invisible format characters are
// dropped, and web addresses are defanged.
func alertText(s string) string {
	return bareURL.ReplaceAllStringFunc(oneLine(s), defang)
}

// bareURL is a web address in alert text: chat clients make it a link
// (Discord always; Slack unless the text is verbatim), so it is shown
// defanged, as scope URLs are. No word boundary before it: Discord links
// "_https://…" and "x1https://…" too.
var bareURL = regexp.MustCompile(`(?i)https?://\S+`)

// oneLine is s with control characters and line or paragraph separators
// (U+2028, U+2029: clients break lines there) as spaces, and invisible
// format characters (bidi overrides among them) dropped.
func oneLine(s string) string {
	bad := func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
	}
	if !strings.ContainsFunc(s, bad) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return ' '
		case unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, s)
}

func scopeGroups(s hunting.Scope) []ScopeGroup {
	var out []ScopeGroup
	for _, g := range []struct {
		kind string
		g    hunting.ScopeGroup
	}{{"devices", s.Devices}, {"users", s.Users}, {"files", s.Files}, {"ips", s.IPs}, {"urls", s.URLs},
		{"processes", s.Processes}, {"registry keys", s.Registry}} {
		if g.g.Count == 0 && len(g.g.Values) == 0 {
			continue
		}
		sg := ScopeGroup{Kind: g.kind, Count: g.g.Count}
		for _, v := range g.g.Values {
			it := ScopeItem{Name: cmp.Or(v.Display, v.Value)}
			switch {
			case g.kind == "urls":
				// An indicator, shown the way security teams share them:
				// chat clients make a bare URL clickable.
				it.Name = defang(it.Name)
			case g.kind == "devices" && !strings.HasPrefix(v.Value, "name:"), g.kind == "files" && !strings.HasPrefix(v.Value, "path:"):
				// A device's id and a file's hash say what the name may
				// not; an account's value is an internal key.
				it.ID = v.Value
			}
			sg.Items = append(sg.Items, ScopeItem{Name: alertText(it.Name), ID: alertText(it.ID)})
		}
		out = append(out, sg)
	}
	return out
}

// Incident implements Incidents.
func (h *HuntingIncidents) Incident(ctx context.Context, org, id string) (IncidentView, error) {
	n, err := incidentID(id)
	if err != nil {
		return IncidentView{}, err
	}
	v, err := h.svc.Incident(ctx, org, n)
	if err != nil {
		return IncidentView{}, huntErr(err)
	}
	out := IncidentView{
		ID: strconv.FormatInt(v.ID, 10), Org: v.Org, Title: alertText(v.Title), Summary: alertText(v.Summary),
		Severity: Severity(v.Severity), Score: v.Score, Scope: scopeGroups(v.Scope), Recommended: v.Actions,
		AckedBy: v.AcknowledgedBy,
	}
	if v.FromExperts {
		out.Reasons = append(out.Reasons, "Raised by the expert hunting service: top priority")
	}
	for _, r := range v.Reasons {
		// A reason may quote an alert's own words (its category): hostile.
		out.Reasons = append(out.Reasons, fmt.Sprintf("%+d %s", r.Points, alertText(r.Detail)))
	}
	for _, e := range v.Timeline {
		line := h.stamp(e.Time) + " " + e.Title
		if e.Device != "" {
			line += " on " + e.Device
		}
		out.Timeline = append(out.Timeline, alertText(line))
	}
	if more := v.TimelineTotal - len(v.Timeline); more > 0 {
		out.Timeline = append(out.Timeline, "and "+plural.Count(more, "more alert", "more alerts"))
	}
	for _, t := range v.Tactics {
		out.Tactics = append(out.Tactics, t.ID+" "+t.Name)
	}
	out.Tactics = append(out.Tactics, v.Techniques...)
	if len(v.WebURLs) > 0 {
		out.Link = v.WebURLs[0]
	}
	out.Status = v.Status
	if v.MergedInto != 0 {
		out.MergedInto = strconv.FormatInt(v.MergedInto, 10)
	}
	out.Resolution = resolution(v.Status, v.ResolvedBy, v.Classification, v.ResolveComment)
	if v.Follows != 0 {
		out.Follows = strconv.FormatInt(v.Follows, 10)
		// The card names the earlier incident; without its title it still
		// gives its number.
		if r, err := h.svc.IncidentSummary(ctx, org, v.Follows); err == nil {
			out.FollowsTitle = alertText(r.Title)
		}
	}
	return out, nil
}

// FullScope implements Incidents.
func (h *HuntingIncidents) FullScope(ctx context.Context, org, id string) ([]ScopeGroup, error) {
	n, err := incidentID(id)
	if err != nil {
		return nil, err
	}
	s, err := h.svc.FullScope(ctx, org, n)
	if err != nil {
		return nil, triageErr(id, err)
	}
	return scopeGroups(*s), nil
}

// Acknowledge implements Incidents.
func (h *HuntingIncidents) Acknowledge(ctx context.Context, org, id string, by User) error {
	n, err := incidentID(id)
	if err != nil {
		return err
	}
	return triageErr(id, h.svc.Acknowledge(ctx, org, n, userKey(by), userLabel(&by)))
}

// Describe implements Incidents.
func (h *HuntingIncidents) Describe(ctx context.Context, org string, kind SubjectKind, id string) (Subject, bool, error) {
	s := Subject{Kind: kind, ID: id}
	var err error
	switch kind {
	case SubjectAlert:
		var a *hunting.AlertInfo
		if a, err = h.svc.Alert(ctx, org, id); err == nil {
			s.Name, s.Severity, s.Link = alertText(a.Title), string(a.Severity), a.WebURL
			if a.Host != "" {
				s.Detail = "host " + alertText(a.Host)
			}
			if a.IncidentID != 0 {
				s.Detail = strings.TrimPrefix(s.Detail+fmt.Sprintf(", incident %d", a.IncidentID), ", ")
			}
		}
	case SubjectDevice, SubjectFile:
		var e *hunting.EntityInfo
		if kind == SubjectDevice {
			e, err = h.svc.Device(ctx, org, id)
		} else {
			e, err = h.svc.File(ctx, org, id)
		}
		if err == nil {
			s.Name = alertText(e.Display)
			var details []string
			if !e.FirstSeen.IsZero() {
				details = append(details, "seen since "+h.stamp(e.FirstSeen))
			}
			if e.Devices > 0 {
				details = append(details, "on "+plural.S(e.Devices, "device"))
			}
			s.Detail = strings.Join(details, ", ")
			best := 0
			for _, r := range e.Incidents {
				s.Detail = strings.TrimPrefix(s.Detail+fmt.Sprintf(", incident %d (score %d)", r.ID, r.Score), ", ")
				if r.Score > best {
					best, s.Severity = r.Score, string(r.Severity)
				}
			}
		}
	case SubjectIncident:
		var n int64
		if n, err = incidentID(id); err != nil {
			return s, false, nil
		}
		var r *hunting.IncidentRef
		r, err = h.svc.IncidentSummary(ctx, org, n)
		merged := ""
		if err == nil && r.Status == "merged" && r.MergedInto != 0 {
			// Its alerts moved on (a card pressed before its edit came):
			// the case is about the incident it went into, saying so.
			merged = fmt.Sprintf(", incident %d was merged into it", n)
			s.ID = strconv.FormatInt(r.MergedInto, 10)
			r, err = h.svc.IncidentSummary(ctx, org, r.MergedInto)
		}
		if err == nil {
			s.Name, s.Severity = alertText(r.Title), string(r.Severity)
			s.Detail = fmt.Sprintf("score %d, %s%s", r.Score, r.Status, merged)
		}
	default:
		return s, false, nil
	}
	if errors.Is(err, hunting.ErrNotFound) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	return s, true, nil
}

// DecodeEvent implements Incidents.
func (h *HuntingIncidents) DecodeEvent(kind string, payload json.RawMessage) (IncidentEvent, bool, error) {
	var p hunting.EventPayload
	action := ""
	switch kind {
	case hunting.EventNotify:
		action = "post"
	case hunting.EventUpdate, hunting.EventAcknowledged, hunting.EventMerged, hunting.EventClosed, hunting.EventResolved:
		action = "update"
	case hunting.EventRepeat:
		action = "repeat"
	default:
		return IncidentEvent{}, false, nil
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return IncidentEvent{}, true, err
	}
	ev := IncidentEvent{IncidentID: strconv.FormatInt(p.IncidentID, 10), Org: p.Org, Action: action}
	switch kind {
	case hunting.EventUpdate:
		for _, c := range p.Changes {
			ev.Changes = append(ev.Changes, alertText(c.Detail))
		}
		if len(ev.Changes) == 0 && p.Note != "" {
			ev.Changes = []string{alertText(p.Note)}
		}
	case hunting.EventAcknowledged:
		ev.Changes = []string{"Acknowledged by " + p.By}
	case hunting.EventMerged:
		ev.Changes = []string{fmt.Sprintf("Merged into incident %d: %s", p.MergedInto, alertText(p.Reason))}
	case hunting.EventClosed:
		ev.Changes = []string{"Closed by " + p.By}
	case hunting.EventResolved:
		// The card shows the resolution (it is rendered from the incident);
		// the thread gets hunting's sentence.
		ev.Note = p.Note
	}
	return ev, true, nil
}
