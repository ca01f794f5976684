package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/casework"
)

var _ CaseReports = (*CaseworkCases)(nil)

// Report implements CaseReports.
func (cw *CaseworkCases) Report(ctx context.Context, s Scope, q ReportQuery) (ReportView, error) {
	p, err := casework.ParsePeriod(q.Period)
	if err != nil {
		return ReportView{}, mapErr(err)
	}
	rep, err := cw.svc.Report(ctx, viewer(s), casework.ReportRequest{Org: q.Org, Period: p, Location: q.Location, At: q.At})
	if err != nil {
		return ReportView{}, mapErr(err)
	}
	v := ReportView{Period: string(rep.Period), From: rep.From, To: rep.To, End: rep.End, Complete: rep.Complete,
		TimeZone: rep.TimeZone, Total: orgFigures(rep.Total)}
	for _, o := range rep.Orgs {
		v.Orgs = append(v.Orgs, orgFigures(o))
	}
	return v, nil
}

func orgFigures(o casework.OrgReport) OrgFigures {
	f := OrgFigures{Org: o.Org, Opened: o.Opened.Total, ByKind: map[SubjectKind]int{}, ByPriority: map[string]int{},
		FirstResponse: DurationFigures{Count: o.FirstResponse.Count, Median: o.FirstResponse.Median, P90: o.FirstResponse.P90},
		Conclusion:    DurationFigures{Count: o.Conclusion.Count, Median: o.Conclusion.Median, P90: o.Conclusion.P90},
		CreditsUsed:   o.Credits.Used, CreditsLeft: o.Credits.Left,
		Posted: o.Notifications.Posted, Acknowledged: o.Notifications.Acknowledged, MedianToAck: o.Notifications.MedianToAck,
	}
	for k, n := range o.Opened.ByKind {
		f.ByKind[SubjectKind(k)] = n
	}
	for p, n := range o.Opened.ByPriority {
		f.ByPriority[string(p)] = n
	}
	sla := o.SLA
	f.SLA = SLAFigures{Decided: sla.Decided, Within: sla.Within, Breached: sla.Breached, Pending: sla.Pending, Excluded: sla.Excluded,
		Share: sla.Share, HasShare: sla.HasShare, BreachCount: sla.BreachCount}
	for _, b := range sla.Breaches {
		f.SLA.Breaches = append(f.SLA.Breaches, BreachView{Ref: b.Ref, Org: b.Org, Priority: string(b.Priority),
			FirstResponse: b.Clock == casework.ClockFirstResponse, Target: b.Target, Elapsed: b.Elapsed, Status: Status(b.Status)})
	}
	return f
}

// ListPage implements CaseReports.
func (cw *CaseworkCases) ListPage(ctx context.Context, s Scope, f CaseFilter, token string) (CasePage, error) {
	lf := listFilter(s, f)
	lf.PageToken = token
	p, err := cw.svc.List(ctx, viewer(s), lf)
	if err != nil {
		return CasePage{}, mapErr(err)
	}
	out := CasePage{Total: p.Total, Remaining: p.Remaining, Next: p.Next}
	for i := range p.Cases {
		out.Cases = append(out.Cases, caseView(&p.Cases[i]))
	}
	return out, nil
}

// Search implements CaseReports.
func (cw *CaseworkCases) Search(ctx context.Context, s Scope, q SearchQuery) (SearchPage, error) {
	p, err := cw.svc.Search(ctx, viewer(s), casework.SearchQuery{Text: q.Text, Org: q.Org, Internal: q.Internal, Limit: q.Limit, Cursor: q.Cursor})
	if err != nil {
		return SearchPage{}, mapErr(err)
	}
	out := SearchPage{More: p.More, Next: p.Next}
	for i := range p.Cases {
		out.Cases = append(out.Cases, caseView(&p.Cases[i]))
	}
	return out, nil
}

// Export implements CaseReports: the Markdown and the JSON file of the record.
func (cw *CaseworkCases) Export(ctx context.Context, s Scope, ref string, internal bool, loc *time.Location) (CaseRecord, error) {
	rec, err := cw.svc.Export(ctx, viewer(s), ref, internal)
	if err != nil {
		return CaseRecord{}, mapErr(err)
	}
	rec.Location = loc
	js, err := rec.JSON()
	if err != nil {
		return CaseRecord{}, fmt.Errorf("export %s: %w", rec.Ref, err)
	}
	return CaseRecord{Ref: rec.Ref, Verification: rec.Verification.String(), Intact: rec.Verification.Intact, Internal: rec.IncludesInternal,
		Files: []Document{
			{Name: rec.FileName("md"), Title: rec.Ref + " case record (Markdown)", ContentType: "text/markdown; charset=utf-8", Data: rec.Markdown()},
			{Name: rec.FileName("json"), Title: rec.Ref + " case record (JSON)", ContentType: "application/json", Data: js},
		}}, nil
}

// Verify implements CaseReports.
func (cw *CaseworkCases) Verify(ctx context.Context, s Scope, ref string) (Verification, error) {
	v, err := cw.svc.Verify(ctx, viewer(s), ref)
	if err != nil {
		return Verification{}, mapErr(err)
	}
	return Verification{Ref: v.Ref, Intact: v.Intact, Entries: v.Entries, Sentence: v.String()}, nil
}

// QueueDigest implements CaseReports.
func (cw *CaseworkCases) QueueDigest(ctx context.Context, loc *time.Location, due func(now time.Time) time.Time) (bool, error) {
	return cw.svc.QueueDigest(ctx, loc, due)
}

// DecodeDigest implements CaseReports.
func (cw *CaseworkCases) DecodeDigest(kind string, payload json.RawMessage) (ReportQuery, bool, error) {
	if kind != casework.EventDigest {
		return ReportQuery{}, false, nil
	}
	var ev casework.DigestEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return ReportQuery{}, true, fmt.Errorf("decode %s: %w", kind, err)
	}
	req, err := ev.Request()
	if err != nil {
		return ReportQuery{}, true, err
	}
	return ReportQuery{Period: string(req.Period), Location: req.Location, At: req.At}, true, nil
}
