package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// InsightService adapts insight.Service to the Insight the bot consumes.
type InsightService struct {
	svc *insight.Service
}

var _ Insight = (*InsightService)(nil)

// NewInsightService wraps svc.
func NewInsightService(svc *insight.Service) *InsightService { return &InsightService{svc: svc} }

func insightErr(err error) error {
	var r *insight.Refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &r):
		return &Refusal{Msg: r.Msg, Err: err}
	case errors.Is(err, insight.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// indicatorText names an indicator briefly: "file 4b6f1c2d8a9e…". It is
// an alert's word: one line, a URL or domain defanged (a client would
// make it a live link on the experts' desk).
func indicatorText(k hunting.Key) string {
	v := oneLine(k.Value)
	switch {
	case k.Kind == hunting.KeyFile && len(v) > 12:
		v = v[:12] + "…"
	case k.Kind == hunting.KeyURL, k.Kind == hunting.KeyDomain:
		v = defang(v)
	}
	return string(k.Kind) + " " + cut(alertText(v), 60)
}

// maxSightingIndicators is how many indicators a desk card names per org.
const maxSightingIndicators = 3

// Sightings implements Insight.
func (s *InsightService) Sightings(ctx context.Context, org string, sub Subject) ([]Sighting, int, error) {
	res, err := s.svc.Sightings(ctx, org, insight.Subject{Kind: string(sub.Kind), ID: sub.ID})
	if err != nil {
		return nil, 0, err
	}
	out := make([]Sighting, 0, len(res.Orgs))
	for _, o := range res.Orgs {
		v := Sighting{Org: o.Org, Devices: o.Devices, IncidentCount: o.IncidentCount, CaseCount: o.CaseCount, Last: o.Last}
		for i, k := range o.Keys {
			if i == maxSightingIndicators {
				break
			}
			v.Indicators = append(v.Indicators, indicatorText(k))
		}
		for _, r := range o.Incidents {
			v.Incidents = append(v.Incidents, strconv.FormatInt(r.ID, 10))
		}
		for _, c := range o.Cases {
			v.Cases = append(v.Cases, c.Ref)
		}
		out = append(out, v)
	}
	return out, len(res.Common), nil
}

// Known implements Insight.
func (s *InsightService) Known(ctx context.Context, org string, sub Subject) (Known, error) {
	k, err := s.svc.Known(ctx, org, insight.Subject{Kind: string(sub.Kind), ID: sub.ID})
	if err != nil || k.Known == nil {
		return Known{}, err
	}
	out := Known{IncidentCount: k.IncidentCount, Devices: k.Devices, DeviceCount: k.DeviceCount, AlertCount: k.AlertCount}
	for _, r := range k.Incidents {
		out.Incidents = append(out.Incidents, fmt.Sprintf("%d %s (score %d)", r.ID, cut(r.Title, 60), r.Score))
	}
	for _, a := range k.Alerts {
		out.Alerts = append(out.Alerts, a.ID+" "+cut(a.Title, 60))
	}
	for _, c := range k.Campaigns {
		out.Campaigns = append(out.Campaigns, fmt.Sprintf("%s (%s)", c.Name, plural.Count(c.Count, "case or incident", "cases and incidents")))
	}
	return out, nil
}

// CaseCampaigns implements Insight.
func (s *InsightService) CaseCampaigns(ctx context.Context, ref string) ([]CampaignTag, error) {
	tags, err := s.svc.CaseCampaigns(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([]CampaignTag, len(tags))
	for i, t := range tags {
		out[i] = CampaignTag{Name: t.Name, Shared: t.Shared}
	}
	return out, nil
}

// IncidentLinked implements Insight.
func (s *InsightService) IncidentLinked(ctx context.Context, org, id string) (CampaignLink, error) {
	n, err := incidentID(id)
	if err != nil {
		return CampaignLink{}, nil
	}
	l, err := s.svc.IncidentLinked(ctx, org, n)
	if err != nil {
		return CampaignLink{}, err
	}
	return CampaignLink{Linked: l.Linked, Shared: l.Shared}, nil
}

// Tag implements Insight.
func (s *InsightService) Tag(ctx context.Context, target, name string, by User) (Tagged, error) {
	t, ok := insight.ParseTarget(target)
	if !ok {
		return Tagged{}, fmt.Errorf("target %q: %w", target, ErrNotFound)
	}
	r, err := s.svc.Tag(ctx, t, name, userLabel(&by))
	if err != nil {
		return Tagged{}, insightErr(err)
	}
	return Tagged{Campaign: r.Campaign, Shared: r.Shared, Target: r.Target.String(), Org: r.Org, Title: r.Title, New: r.New}, nil
}

func campaignView(c *insight.Campaign) CampaignView {
	v := CampaignView{Name: c.Name, Shared: c.SharedAt != nil, SharedBy: c.SharedBy, First: c.First, Last: c.Last}
	for _, it := range c.Items {
		v.Items = append(v.Items, CampaignItem{Target: it.Target.String(), Org: it.Org, Title: it.Title, Status: strings.ReplaceAll(it.Status, "_", " "),
			First: it.First, Last: it.Last, TaggedBy: it.TaggedBy})
	}
	return v
}

// Campaign implements Insight.
func (s *InsightService) Campaign(ctx context.Context, name string) (CampaignView, error) {
	c, err := s.svc.Campaign(ctx, name)
	if err != nil {
		return CampaignView{}, insightErr(err)
	}
	return campaignView(c), nil
}

// Share implements Insight.
func (s *InsightService) Share(ctx context.Context, name string, by User) (CampaignView, bool, error) {
	c, changed, err := s.svc.Share(ctx, name, userLabel(&by))
	if err != nil {
		return CampaignView{}, false, insightErr(err)
	}
	return campaignView(c), changed, nil
}

// DecodeEvent implements Insight.
func (s *InsightService) DecodeEvent(kind string, payload json.RawMessage) (InsightEvent, bool, error) {
	if kind != insight.EventIncidentLinked && kind != insight.EventCaseTagged {
		return InsightEvent{}, false, nil
	}
	var p insight.Event
	if err := json.Unmarshal(payload, &p); err != nil {
		return InsightEvent{}, true, err
	}
	ev := InsightEvent{Org: p.Org, Ref: p.Ref, Campaign: p.Campaign, Shared: p.Shared, By: p.By}
	if kind == insight.EventIncidentLinked {
		ev.Ref, ev.IncidentID = "", strconv.FormatInt(p.IncidentID, 10)
	}
	return ev, true, nil
}
