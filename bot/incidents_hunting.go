package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/threatdesk/threatdesk/hunting"
)

// The hunting shim's side of incidents worked from chat: Resolve,
// NotifyNow and List over hunting.Service.

// resolution is how a closed incident was resolved, nil when nobody (and
// no source) resolved it.
func resolution(status, by string, class hunting.Classification, comment string) *Resolution {
	if status != "closed" || by == "" {
		return nil
	}
	r := &Resolution{By: by, Comment: comment}
	if by == "upstream" {
		r.By, r.Upstream = "", true
	}
	if class != "" {
		r.How = class.Label()
	}
	return r
}

// triageErr turns hunting's refusals into sentences for the person who
// pressed: an incident not open says by whom and how it was resolved, or
// into which incident it was merged.
func triageErr(id string, err error) error {
	switch {
	case errors.Is(err, hunting.ErrNotOpen):
		msg := err.Error()
		if i := strings.Index(msg, ": "+hunting.ErrNotOpen.Error()); i > 0 {
			msg = msg[:i]
		}
		msg = strings.TrimPrefix(msg, "incident ")
		return &Refusal{Msg: "Incident " + msg + ": it takes no more action.", Err: err}
	case errors.Is(err, hunting.ErrAlreadyAcknowledged):
		msg, _, _ := strings.Cut(err.Error(), ": "+hunting.ErrAlreadyAcknowledged.Error())
		return &Refusal{Msg: "I" + strings.TrimPrefix(msg, "i") + "; its reminders had stopped then.", Err: err}
	case errors.Is(err, hunting.ErrAlreadyPosted):
		return &Refusal{Msg: "Incident " + id + " was already posted as a notification: its card is in the org's channel.", Err: err}
	}
	return huntErr(err)
}

// Resolve implements Incidents.
func (h *HuntingIncidents) Resolve(ctx context.Context, org, id, classification, comment, key string, by User) error {
	n, err := incidentID(id)
	if err != nil {
		return err
	}
	class, err := hunting.ParseClassification(classification)
	if err != nil {
		return &Refusal{Msg: "Choose a classification: true positive, informational (expected activity) or false positive.", Err: err}
	}
	return triageErr(id, h.svc.ResolveOnce(ctx, org, n, class, comment, userLabel(&by), key))
}

// NotifyNow implements Incidents.
func (h *HuntingIncidents) NotifyNow(ctx context.Context, org, id string, by User) error {
	n, err := incidentID(id)
	if err != nil {
		return err
	}
	return triageErr(id, h.svc.NotifyNow(ctx, org, n, userLabel(&by)))
}

// Repost implements Incidents.
func (h *HuntingIncidents) Repost(ctx context.Context, org, id string, seq int, by User) error {
	n, err := incidentID(id)
	if err != nil {
		return err
	}
	return triageErr(id, h.svc.Repost(ctx, org, n, userLabel(&by), seq))
}

// List implements Incidents. It reads up to hunting's listing cap to say how
// many more there are than limit.
func (h *HuntingIncidents) List(ctx context.Context, org, filter string, before int64, limit int) (IncidentList, error) {
	all, err := h.svc.IncidentsBefore(ctx, org, hunting.IncidentFilter(filter), before, hunting.MaxIncidentList)
	if err != nil {
		return IncidentList{}, fmt.Errorf("list incidents: %w", err)
	}
	out := IncidentList{Capped: len(all) == hunting.MaxIncidentList}
	if limit > 0 && len(all) > limit {
		out.More = len(all) - limit
		all = all[:limit]
	}
	for _, v := range all {
		l := IncidentLine{ID: strconv.FormatInt(v.ID, 10), Org: org, Title: alertText(v.Title), Severity: Severity(v.Severity), Score: v.Score,
			Status: v.Status, Posted: v.Posted, LastActivity: v.LastActivity,
			Resolution: resolution(v.Status, v.ResolvedBy, v.Classification, "")}
		// An expert incident's breakdown already says so first.
		for _, r := range v.Reasons {
			l.Reasons = append(l.Reasons, fmt.Sprintf("%+d %s", r.Points, alertText(r.Detail)))
		}
		if v.MergedInto != 0 {
			l.MergedInto = strconv.FormatInt(v.MergedInto, 10)
		}
		if v.Follows != 0 {
			l.Follows = strconv.FormatInt(v.Follows, 10)
		}
		out.Incidents = append(out.Incidents, l)
	}
	return out, nil
}
