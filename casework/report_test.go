package casework_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// reportOrgs are the configured orgs of the report tests; northwind has no
// cases, acme is not configured.
var reportOrgs = []string{"contoso", "fabrikam", "northwind"}

// scenario drives a known set of cases through the public API on the fake
// clock, in time order, so that every figure of the report can be worked
// out by hand (see TestReportFigures). T is Monday 2 February 2026 09:00
// UTC; the clock ends at t0 (Tuesday 10 February 09:00), mid-Q1.
//
//	C0 contoso low alert       20 Jan 10:00  withdrawn at once (credit back)
//	C1 contoso high alert      T             first response 30m, concluded at 5h
//	C2 contoso medium file     T+1h          taken 2h, more info at 3h (response 2h),
//	                                         paused 10h, answered T+13h, concluded
//	                                         T+15h: clock 4h (wall 14h)
//	C3 contoso high incident   T+2h          taken and answered T+5h (response 3h,
//	                                         breached), concluded T+8h (6h)
//	C4 contoso low none        T+3h          withdrawn at T+3h10m (credit back)
//	F1 fabrikam medium alert   T+1d          answered at 3h, more info at 4h, paused
//	                                         20h, concluded at 50h of clock (wall 70h):
//	                                         conclusion breached (48h)
//	F2 fabrikam high device    T+1d+1h       never answered: both clocks breached,
//	                                         167h by t0 (no sweep ran: computed)
//	F3 fabrikam low none       Sun 8 Feb 20:00  withdrawn at once
//	C5 contoso high alert      Mon 9 Feb 08:00  answered 10m, more info at 20m,
//	                                         paused since: clock 20m (wall 25h,
//	                                         beyond the 24h target): pending
//	A1 acme (not configured)   T             never answered: in no report
type scenario struct {
	f    *fixture
	refs map[string]string
}

var scenarioT = time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC)

func newScenario(t *testing.T) *scenario {
	t.Helper()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf(reportOrgs...) })
	sc := &scenario{f: f, refs: map[string]string{}}
	sc.run(t)
	return sc
}

func (sc *scenario) at(t time.Time) { sc.f.clock.Set(t) }

func (sc *scenario) open(t *testing.T, name, org string, kind casework.SubjectKind, prio casework.Priority, question string) {
	t.Helper()
	sub := casework.Subject{Kind: kind}
	if kind != casework.SubjectNone {
		sub.ID = strings.ToLower(name) + "-subject"
	}
	c, created, err := sc.f.svc.Open(context.Background(), casework.OpenRequest{Key: name, Org: org, Subject: sub, Priority: prio,
		Question: question, Requester: requester(org, "U-"+org+"-analyst").Person})
	require.NoError(t, err)
	require.True(t, created)
	sc.refs[name] = c.Ref
}

func (sc *scenario) org(name string) string {
	switch name[0] {
	case 'C':
		return "contoso"
	case 'F':
		return "fabrikam"
	}
	return "acme"
}

func (sc *scenario) move(t *testing.T, name string, to casework.Status) {
	t.Helper()
	a := expert("U-expert")
	if to == casework.StatusWithdrawn {
		a = requester(sc.org(name), "U-"+sc.org(name)+"-analyst")
	}
	_, err := sc.f.svc.Transition(context.Background(), casework.TransitionRequest{Ref: sc.refs[name], To: to, Actor: a, Summary: "benign"})
	require.NoError(t, err)
}

// answer: the expert takes the case (if new) and writes to the requester.
func (sc *scenario) answer(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	eve := expert("U-expert")
	eve.DisplayName = "Eve Expert"
	_, err := sc.f.svc.Take(ctx, sc.refs[name], eve)
	require.NoError(t, err)
	_, err = sc.f.svc.AddMessage(ctx, casework.MessageRequest{Ref: sc.refs[name], Actor: eve, Text: "looking at it"})
	require.NoError(t, err)
}

// reply: the requester answers (resumes a paused case).
func (sc *scenario) reply(t *testing.T, name string) {
	t.Helper()
	org := sc.org(name)
	_, err := sc.f.svc.AddMessage(context.Background(), casework.MessageRequest{Ref: sc.refs[name],
		Actor: requester(org, "U-"+org+"-analyst"), Text: "here it is"})
	require.NoError(t, err)
}

func (sc *scenario) run(t *testing.T) {
	T := scenarioT
	h := time.Hour
	sc.at(time.Date(2026, 1, 20, 10, 0, 0, 0, time.UTC))
	sc.open(t, "C0", "contoso", casework.SubjectAlert, casework.PriorityLow, "old question")
	sc.move(t, "C0", casework.StatusWithdrawn)

	sc.at(T)
	sc.open(t, "C1", "contoso", casework.SubjectAlert, casework.PriorityHigh, "Is this lateral movement?")
	sc.open(t, "A1", "acme", casework.SubjectAlert, casework.PriorityHigh, "acme question")
	sc.at(T.Add(30 * time.Minute))
	sc.answer(t, "C1")
	sc.at(T.Add(h))
	sc.open(t, "C2", "contoso", casework.SubjectFile, casework.PriorityMedium, "Is this file malicious?")
	sc.at(T.Add(2 * h))
	sc.open(t, "C3", "contoso", casework.SubjectIncident, casework.PriorityHigh, "What is this incident?")
	_, err := sc.f.svc.Take(context.Background(), sc.refs["C2"], expert("U-expert"))
	require.NoError(t, err)
	sc.at(T.Add(3 * h))
	sc.move(t, "C2", casework.StatusMoreInfoNeeded)
	sc.open(t, "C4", "contoso", casework.SubjectNone, casework.PriorityLow, "General question")
	sc.at(T.Add(3*h + 10*time.Minute))
	sc.move(t, "C4", casework.StatusWithdrawn)
	sc.at(T.Add(5 * h))
	sc.move(t, "C1", casework.StatusConcluded)
	sc.answer(t, "C3")
	sc.at(T.Add(8 * h))
	sc.move(t, "C3", casework.StatusConcluded)
	sc.at(T.Add(13 * h))
	sc.reply(t, "C2")
	sc.at(T.Add(15 * h))
	sc.move(t, "C2", casework.StatusConcluded)

	D := T.Add(24 * h)
	sc.at(D)
	sc.open(t, "F1", "fabrikam", casework.SubjectAlert, casework.PriorityMedium, "Fabrikam alert")
	sc.at(D.Add(h))
	sc.open(t, "F2", "fabrikam", casework.SubjectDevice, casework.PriorityHigh, "Is this device compromised?")
	sc.at(D.Add(3 * h))
	sc.answer(t, "F1")
	sc.at(D.Add(4 * h))
	sc.move(t, "F1", casework.StatusMoreInfoNeeded)
	sc.at(D.Add(24 * h))
	sc.reply(t, "F1")
	sc.at(D.Add(70 * h))
	sc.move(t, "F1", casework.StatusConcluded)

	sc.at(time.Date(2026, 2, 8, 20, 0, 0, 0, time.UTC))
	sc.open(t, "F3", "fabrikam", casework.SubjectNone, casework.PriorityLow, "Sunday question")
	sc.move(t, "F3", casework.StatusWithdrawn)

	C5 := time.Date(2026, 2, 9, 8, 0, 0, 0, time.UTC)
	sc.at(C5)
	sc.open(t, "C5", "contoso", casework.SubjectAlert, casework.PriorityHigh, "Another alert")
	sc.at(C5.Add(10 * time.Minute))
	sc.answer(t, "C5")
	sc.at(C5.Add(20 * time.Minute))
	sc.move(t, "C5", casework.StatusMoreInfoNeeded)

	sc.at(t0)
	sc.notifications(t)
}

// notifications inserts incident cards as hunting would leave them:
// contoso: three posted in Q1 (acknowledged after 10m and 30m, one not),
// one posted in December, one never posted; fabrikam: one posted, not
// acknowledged; acme (not configured): one posted and acknowledged.
func (sc *scenario) notifications(t *testing.T) {
	t.Helper()
	d := func(day, hour, minute int) time.Time { return time.Date(2026, 2, day, hour, minute, 0, 0, time.UTC) }
	for _, n := range []struct {
		org           string
		posted, acked *time.Time
	}{
		{"contoso", ptr(d(3, 10, 0)), ptr(d(3, 10, 10))},
		{"contoso", ptr(d(4, 12, 0)), ptr(d(4, 12, 30))},
		{"contoso", ptr(d(5, 9, 0)), nil},
		{"contoso", ptr(time.Date(2025, 12, 20, 9, 0, 0, 0, time.UTC)), ptr(time.Date(2025, 12, 20, 9, 5, 0, 0, time.UTC))},
		{"contoso", nil, nil},
		{"fabrikam", ptr(d(6, 8, 0)), nil},
		{"acme", ptr(d(6, 8, 0)), ptr(d(6, 9, 0))},
	} {
		_, err := sc.f.pool.Exec(context.Background(), `INSERT INTO hunting_incidents (org, created_at, updated_at, posted_at, acked_at, acked_by)
 VALUES ($1, coalesce($2::timestamptz, $4), coalesce($2::timestamptz, $4), $2, $3, CASE WHEN $3::timestamptz IS NOT NULL THEN 'U0ANALYST' END)`,
			n.org, n.posted, n.acked, d(5, 0, 0))
		require.NoError(t, err)
	}
}

func (sc *scenario) report(t *testing.T, v casework.Viewer, req casework.ReportRequest) *casework.Report {
	t.Helper()
	rep, err := sc.f.svc.Report(context.Background(), v, req)
	require.NoError(t, err)
	return rep
}

func orgOf(t *testing.T, rep *casework.Report, org string) casework.OrgReport {
	t.Helper()
	for _, o := range rep.Orgs {
		if o.Org == org {
			return o
		}
	}
	t.Fatalf("org %s not in the report (orgs %v)", org, rep.Orgs)
	return casework.OrgReport{}
}

// kinds is a report's count by subject kind; the scenario opens none of
// the kinds added later (ip, url, actor): zeros.
func kinds(none, alert, device, file, incident int) map[casework.SubjectKind]int {
	return map[casework.SubjectKind]int{casework.SubjectNone: none, casework.SubjectAlert: alert, casework.SubjectDevice: device,
		casework.SubjectFile: file, casework.SubjectIncident: incident, casework.SubjectIP: 0, casework.SubjectURL: 0, casework.SubjectActor: 0}
}

func prios(high, medium, low int) map[casework.Priority]int {
	return map[casework.Priority]int{casework.PriorityHigh: high, casework.PriorityMedium: medium, casework.PriorityLow: low}
}

// TestReportFigures checks every figure of the quarter's report against
// the values worked out by hand from the scenario.
func TestReportFigures(t *testing.T) {
	t.Parallel()
	sc := newScenario(t)
	h, m := time.Hour, time.Minute
	rep := sc.report(t, casework.AllOrgs(), casework.ReportRequest{})

	require.Equal(t, casework.PeriodQuarter, rep.Period)
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), rep.From)
	require.Equal(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), rep.End)
	require.Equal(t, t0, rep.To, "the current quarter, so far")
	require.False(t, rep.Complete)
	require.Equal(t, "UTC", rep.TimeZone)
	require.Equal(t, []string{"contoso", "fabrikam", "northwind"}, []string{rep.Orgs[0].Org, rep.Orgs[1].Org, rep.Orgs[2].Org},
		"every configured org, by id; acme is not configured")

	c := orgOf(t, rep, "contoso")
	require.Equal(t, 6, c.Opened.Total)
	require.Equal(t, kinds(1, 3, 0, 1, 1), c.Opened.ByKind)
	require.Equal(t, prios(3, 1, 2), c.Opened.ByPriority)
	// C1 30m, C2 2h, C3 3h, C5 10m: sorted 10m 30m 2h 3h; median (30m+2h)/2;
	// p90 at 0.9*3 = 2.7: 2h + 0.7*(3h-2h).
	require.Equal(t, casework.DurationStats{Count: 4, Median: 75 * m, P90: 2*h + 42*m}, c.FirstResponse)
	// C1 5h, C2 4h (its 10h pause excluded), C3 6h: p90 at 1.8: 5h + 0.8h.
	require.Equal(t, casework.DurationStats{Count: 3, Median: 5 * h, P90: 5*h + 48*m}, c.Conclusion)
	require.Equal(t, 6, c.SLA.Cases)
	require.Equal(t, 3, c.SLA.Decided, "C1, C2, C3 concluded")
	require.Equal(t, 2, c.SLA.Within, "C1, C2")
	require.Equal(t, 1, c.SLA.Breached, "C3")
	require.Equal(t, 1, c.SLA.Pending, "C5: 25h open but 20m of clock: its pause is respected")
	require.Equal(t, 2, c.SLA.Excluded, "C0, C4 withdrawn")
	require.True(t, c.SLA.HasShare)
	require.InDelta(t, 2.0/3, c.SLA.Share, 1e-9)
	require.Equal(t, 1, c.SLA.BreachCount)
	require.Equal(t, []casework.Breach{{Ref: sc.refs["C3"], Org: "contoso", Priority: casework.PriorityHigh, Clock: casework.ClockFirstResponse,
		Target: h, Elapsed: 3 * h, Status: casework.StatusConcluded, Assignee: "Eve Expert", OpenedAt: scenarioT.Add(2 * h)}}, c.SLA.Breaches)
	require.Equal(t, casework.CreditFigures{Used: 4, Left: 6}, c.Credits, "C0 and C4 gave theirs back; 10 - 6 + 2 left")
	require.Equal(t, casework.NotificationFigures{Posted: 3, Acknowledged: 2, MedianToAck: 20 * m}, c.Notifications)

	fb := orgOf(t, rep, "fabrikam")
	require.Equal(t, 3, fb.Opened.Total)
	require.Equal(t, kinds(1, 1, 1, 0, 0), fb.Opened.ByKind)
	require.Equal(t, prios(1, 1, 1), fb.Opened.ByPriority)
	require.Equal(t, casework.DurationStats{Count: 1, Median: 3 * h, P90: 3 * h}, fb.FirstResponse)
	require.Equal(t, casework.DurationStats{Count: 1, Median: 50 * h, P90: 50 * h}, fb.Conclusion, "70h wall, 20h paused")
	require.Equal(t, casework.SLAFigures{Cases: 3, Decided: 2, Within: 0, Breached: 2, Pending: 0, Excluded: 1, Share: 0, HasShare: true,
		BreachCount: 3, Breaches: []casework.Breach{
			{Ref: sc.refs["F2"], Org: "fabrikam", Priority: casework.PriorityHigh, Clock: casework.ClockFirstResponse, Target: h,
				Elapsed: 167 * h, Status: casework.StatusNew, OpenedAt: scenarioT.Add(25 * h)},
			{Ref: sc.refs["F2"], Org: "fabrikam", Priority: casework.PriorityHigh, Clock: casework.ClockConclusion, Target: 24 * h,
				Elapsed: 167 * h, Status: casework.StatusNew, OpenedAt: scenarioT.Add(25 * h)},
			{Ref: sc.refs["F1"], Org: "fabrikam", Priority: casework.PriorityMedium, Clock: casework.ClockConclusion, Target: 48 * h,
				Elapsed: 50 * h, Status: casework.StatusConcluded, Assignee: "Eve Expert", OpenedAt: scenarioT.Add(24 * h)},
		}}, fb.SLA)
	require.Equal(t, casework.CreditFigures{Used: 2, Left: 8}, fb.Credits)
	require.Equal(t, casework.NotificationFigures{Posted: 1}, fb.Notifications)

	nw := orgOf(t, rep, "northwind")
	require.Zero(t, nw.Opened.Total)
	require.Equal(t, kinds(0, 0, 0, 0, 0), nw.Opened.ByKind, "zeros included")
	require.Equal(t, casework.DurationStats{}, nw.FirstResponse)
	require.False(t, nw.SLA.HasShare)
	require.Equal(t, []casework.Breach{}, nw.SLA.Breaches)
	require.Equal(t, casework.CreditFigures{Used: 0, Left: 10}, nw.Credits, "a fresh allowance")

	tot := rep.Total
	require.Equal(t, "", tot.Org)
	require.Equal(t, 9, tot.Opened.Total, "acme's case is not counted")
	require.Equal(t, kinds(2, 4, 1, 1, 1), tot.Opened.ByKind)
	require.Equal(t, prios(4, 2, 3), tot.Opened.ByPriority)
	// 10m 30m 2h 3h 3h: median 2h; p90 at 3.6: 3h.
	require.Equal(t, casework.DurationStats{Count: 5, Median: 2 * h, P90: 3 * h}, tot.FirstResponse)
	// 4h 5h 6h 50h: median 5h30m; p90 at 2.7: 6h + 0.7*44h.
	require.Equal(t, casework.DurationStats{Count: 4, Median: 5*h + 30*m, P90: 36*h + 48*m}, tot.Conclusion)
	require.Equal(t, 5, tot.SLA.Decided)
	require.Equal(t, 2, tot.SLA.Within)
	require.InDelta(t, 0.4, tot.SLA.Share, 1e-9)
	require.Equal(t, 4, tot.SLA.BreachCount)
	require.Len(t, tot.SLA.Breaches, 4)
	require.Equal(t, sc.refs["F2"], tot.SLA.Breaches[0].Ref, "newest case first")
	require.Equal(t, sc.refs["C3"], tot.SLA.Breaches[3].Ref)
	require.Equal(t, "Eve Expert", tot.SLA.Breaches[2].Assignee, "the name, not the chat user id")
	require.Empty(t, tot.SLA.Breaches[0].Assignee, "nobody took it")
	require.Equal(t, casework.CreditFigures{Used: 6, Left: 24}, tot.Credits)
	require.Equal(t, casework.NotificationFigures{Posted: 4, Acknowledged: 2, MedianToAck: 20 * m}, tot.Notifications)

	// Per-week counts, for charts: Thursday 1 January, then every Monday.
	day := func(mo time.Month, d int) time.Time { return time.Date(2026, mo, d, 0, 0, 0, 0, time.UTC) }
	want := []casework.WeekCount{
		{Start: day(1, 1), End: day(1, 5)}, {Start: day(1, 5), End: day(1, 12)}, {Start: day(1, 12), End: day(1, 19)},
		{Start: day(1, 19), End: day(1, 26), Count: 1}, {Start: day(1, 26), End: day(2, 2)},
		{Start: day(2, 2), End: day(2, 9), Count: 7}, {Start: day(2, 9), End: t0, Count: 1},
	}
	require.Equal(t, want, tot.Opened.ByWeek)
	require.Equal(t, 4, c.Opened.ByWeek[5].Count)
	require.Equal(t, 3, fb.Opened.ByWeek[5].Count)
}

// TestReportCountsEverySubjectKind: a case about an address, a URL or an
// actor is counted by subject like the others, so that the kinds add up to
// the cases opened (they were left out: "Cases opened 3, by subject: alert
// 1").
func TestReportCountsEverySubjectKind(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ids := map[casework.SubjectKind]string{
		casework.SubjectAlert: "da637551234567890123_1", casework.SubjectDevice: "ws-017",
		casework.SubjectFile:     "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
		casework.SubjectIncident: "42", casework.SubjectIP: "203.0.113.9", casework.SubjectURL: "evil.example", casework.SubjectActor: "FIN7",
	}
	for _, k := range casework.SubjectKinds() {
		_, _, err := f.svc.Open(context.Background(), casework.OpenRequest{Key: "k-" + string(k), Org: "contoso",
			Subject: casework.Subject{Kind: k, ID: ids[k]}, Priority: casework.PriorityMedium, Question: "about this " + string(k),
			Requester: requester("contoso", "U-analyst").Person})
		require.NoError(t, err, k)
	}
	f.clock.Advance(time.Minute) // the period so far ends now, exclusive
	rep, err := f.svc.Report(context.Background(), casework.AllOrgs(), casework.ReportRequest{})
	require.NoError(t, err)
	by := rep.Total.Opened.ByKind
	require.Len(t, by, len(casework.SubjectKinds()))
	sum := 0
	for _, k := range casework.SubjectKinds() {
		require.Equal(t, 1, by[k], k)
		sum += by[k]
	}
	require.Equal(t, rep.Total.Opened.Total, sum, "the kinds add up to the cases opened")
}

// TestReportOfEveryOrgFollowsAReload: an org added by a reload is in the
// report of every org (and so in the weekly digest), as it is in the
// report asked for it by name; it was left out until a restart.
func TestReportOfEveryOrgFollowsAReload(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ctx := context.Background()
	require.NoError(t, f.svc.SetLive(casework.Config{Orgs: orgsOf("contoso", "tailspin")}))
	_, _, err := f.svc.Open(ctx, casework.OpenRequest{Key: "t1", Org: "tailspin", Subject: casework.Subject{Kind: casework.SubjectNone},
		Priority: casework.PriorityLow, Question: "new here", Requester: requester("tailspin", "U-t").Person})
	require.NoError(t, err)
	f.clock.Advance(time.Minute) // the period so far ends now, exclusive
	rep, err := f.svc.Report(ctx, casework.AllOrgs(), casework.ReportRequest{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Total.Opened.Total)
	require.Equal(t, 1, orgOf(t, rep, "tailspin").Opened.Total)

	// And one removed by a reload is gone from it, as it is by name.
	require.NoError(t, f.svc.SetLive(casework.Config{Orgs: orgsOf("tailspin")}))
	rep, err = f.svc.Report(ctx, casework.AllOrgs(), casework.ReportRequest{})
	require.NoError(t, err)
	require.Len(t, rep.Orgs, 1)
	require.Equal(t, "tailspin", rep.Orgs[0].Org)
}

// TestReportPeriods: the week and month so far, a past period reported
// whole, and calendar periods in another time zone.
func TestReportPeriods(t *testing.T) {
	t.Parallel()
	sc := newScenario(t)
	all := casework.AllOrgs()

	month := sc.report(t, all, casework.ReportRequest{Period: casework.PeriodMonth})
	require.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), month.From)
	require.Equal(t, 5, orgOf(t, month, "contoso").Opened.Total, "C0 was in January")
	require.Equal(t, 8, month.Total.Opened.Total)

	week := sc.report(t, all, casework.ReportRequest{Period: casework.PeriodWeek})
	require.Equal(t, time.Date(2026, 2, 9, 0, 0, 0, 0, time.UTC), week.From, "Monday")
	require.Equal(t, time.Date(2026, 2, 16, 0, 0, 0, 0, time.UTC), week.End)
	require.Equal(t, 1, week.Total.Opened.Total, "C5 only")
	require.Equal(t, casework.DurationStats{Count: 1, Median: 10 * time.Minute, P90: 10 * time.Minute}, week.Total.FirstResponse)
	require.Equal(t, 1, week.Total.SLA.Pending)
	require.Equal(t, casework.NotificationFigures{}, week.Total.Notifications)
	require.Len(t, week.Total.Opened.ByWeek, 1)

	// Last week, as the weekly digest asks for it: whole and complete.
	last := sc.report(t, all, casework.ReportRequest{Period: casework.PeriodWeek, At: t0.AddDate(0, 0, -7)})
	require.Equal(t, time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC), last.From)
	require.Equal(t, last.End, last.To)
	require.True(t, last.Complete)
	require.Equal(t, 7, last.Total.Opened.Total)
	require.Equal(t, 4, last.Total.Notifications.Posted)

	// In Tokyo (UTC+9) this week began on Sunday 8 February 15:00 UTC, so
	// F3 (Sunday 20:00 UTC) falls in it; in UTC it does not.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	wk := sc.report(t, all, casework.ReportRequest{Period: casework.PeriodWeek, Location: tokyo})
	require.Equal(t, time.Date(2026, 2, 9, 0, 0, 0, 0, tokyo), wk.From)
	require.True(t, wk.From.Equal(time.Date(2026, 2, 8, 15, 0, 0, 0, time.UTC)))
	require.Equal(t, "Asia/Tokyo", wk.TimeZone)
	require.Equal(t, 2, wk.Total.Opened.Total, "F3 and C5")
	q := sc.report(t, all, casework.ReportRequest{Location: tokyo})
	require.True(t, q.From.Equal(time.Date(2025, 12, 31, 15, 0, 0, 0, time.UTC)), "the quarter starts at midnight in Tokyo")
	require.Equal(t, time.Date(2026, 2, 2, 0, 0, 0, 0, tokyo), q.Total.Opened.ByWeek[5].Start)
	require.Equal(t, 6, q.Total.Opened.ByWeek[5].Count, "F3 moved to the next week")
	require.Equal(t, 2, q.Total.Opened.ByWeek[6].Count)

	_, err = sc.f.svc.Report(context.Background(), all, casework.ReportRequest{At: t0.Add(time.Hour)})
	require.ErrorIs(t, err, casework.ErrInvalid, "a period in the future")
	_, err = sc.f.svc.Report(context.Background(), all, casework.ReportRequest{Period: "year"})
	require.ErrorIs(t, err, casework.ErrInvalid)
}

// TestReportScope: a member sees their own org's figures only, and asking
// for another org is refused exactly as an unknown org is.
func TestReportScope(t *testing.T) {
	t.Parallel()
	sc := newScenario(t)
	ctx := context.Background()
	member := casework.OrgViewer("contoso")

	rep := sc.report(t, member, casework.ReportRequest{})
	require.Len(t, rep.Orgs, 1)
	require.Equal(t, "contoso", rep.Orgs[0].Org)
	require.Equal(t, 6, rep.Total.Opened.Total, "the total is contoso's alone")
	tot := rep.Total
	tot.Org = "contoso"
	require.Equal(t, rep.Orgs[0], tot)
	require.Equal(t, 3, rep.Total.Notifications.Posted)
	for _, b := range rep.Total.SLA.Breaches {
		require.Equal(t, "contoso", b.Org)
	}
	require.Equal(t, rep.Orgs, sc.report(t, member, casework.ReportRequest{Org: "contoso"}).Orgs)

	_, errOther := sc.f.svc.Report(ctx, member, casework.ReportRequest{Org: "fabrikam"})
	require.ErrorIs(t, errOther, casework.ErrNotFound)
	_, errUnknown := sc.f.svc.Report(ctx, member, casework.ReportRequest{Org: "nosuch"})
	require.ErrorIs(t, errUnknown, casework.ErrNotFound)
	require.Equal(t, strings.ReplaceAll(errUnknown.Error(), "nosuch", "X"), strings.ReplaceAll(errOther.Error(), "fabrikam", "X"),
		"the same refusal, whether the org exists or not")

	// A manager names any configured org, and no other.
	one := sc.report(t, casework.AllOrgs(), casework.ReportRequest{Org: "fabrikam"})
	require.Len(t, one.Orgs, 1)
	require.Equal(t, 3, one.Total.Opened.Total)
	_, err := sc.f.svc.Report(ctx, casework.AllOrgs(), casework.ReportRequest{Org: "acme"})
	require.ErrorIs(t, err, casework.ErrNotFound, "acme has cases but is not configured")
	_, err = sc.f.svc.Report(ctx, casework.OrgViewer("acme"), casework.ReportRequest{})
	require.ErrorIs(t, err, casework.ErrNotFound)
}

// TestReportJSON pins the report's JSON shape (it feeds the web report).
func TestReportJSON(t *testing.T) {
	t.Parallel()
	sc := newScenario(t)
	rep := sc.report(t, casework.OrgViewer("fabrikam"), casework.ReportRequest{Period: casework.PeriodMonth})
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, "month", got["period"])
	require.Equal(t, "2026-02-01T00:00:00Z", got["from"])
	require.Equal(t, "2026-02-10T09:00:00Z", got["to"])
	require.Equal(t, false, got["complete"])
	total := got["total"].(map[string]any)
	require.Equal(t, map[string]any{"count": 1.0, "median_seconds": 10800.0, "p90_seconds": 10800.0}, total["first_response"])
	require.Equal(t, map[string]any{"posted": 1.0, "acknowledged": 0.0, "median_to_ack_seconds": nil}, total["notifications"])
	require.Equal(t, map[string]any{"used": 2.0, "left": 8.0}, total["credits"])
	opened := total["opened"].(map[string]any)
	require.Equal(t, map[string]any{"none": 1.0, "alert": 1.0, "device": 1.0, "file": 0.0, "incident": 0.0, "ip": 0.0, "url": 0.0, "actor": 0.0},
		opened["by_kind"])
	require.Equal(t, []any{
		map[string]any{"start": "2026-02-01T00:00:00Z", "end": "2026-02-02T00:00:00Z", "count": 0.0},
		map[string]any{"start": "2026-02-02T00:00:00Z", "end": "2026-02-09T00:00:00Z", "count": 3.0},
		map[string]any{"start": "2026-02-09T00:00:00Z", "end": "2026-02-10T09:00:00Z", "count": 0.0},
	}, opened["by_week"])
	sla := total["sla"].(map[string]any)
	breach := sla["breaches"].([]any)[2].(map[string]any)
	require.Equal(t, map[string]any{"ref": sc.refs["F1"], "org": "fabrikam", "priority": "medium", "clock": "conclusion",
		"status": "concluded", "assignee": "Eve Expert", "opened_at": "2026-02-03T09:00:00Z",
		"target_seconds": 172800.0, "elapsed_seconds": 180000.0}, breach)
	require.Equal(t, []string{"complete", "end", "from", "generated_at", "orgs", "period", "time_zone", "to", "total"}, keys(got))
	require.Equal(t, []string{"conclusion", "credits", "first_response", "notifications", "opened", "org", "sla"}, keys(total))
	require.Equal(t, []string{"breach_count", "breached", "breaches", "cases", "decided", "excluded", "has_share", "pending", "share", "within"}, keys(sla))
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestHandedOnAcknowledgementCountsOnce: incident B's card is acknowledged
// a minute after it was posted; later B merges into A, which is posted
// then and takes B's acknowledgement with the card. The week shows two
// cards posted, both acknowledged, after a minute (the handed-on one has
// no time of its own). The median was minus 59 minutes (printed as 59).
func TestHandedOnAcknowledgementCountsOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ctx := context.Background()
	at := func(h, m int) time.Time { return time.Date(2026, 2, 3, h, m, 0, 0, time.UTC) }
	for _, n := range []struct{ posted, acked time.Time }{
		{at(10, 0), at(10, 1)}, // B
		{at(12, 0), at(10, 1)}, // A, posted at the merge, B's acknowledgement handed on
	} {
		_, err := f.pool.Exec(ctx, `INSERT INTO hunting_incidents (org, created_at, updated_at, posted_at, acked_at, acked_by)
 VALUES ('contoso', $1, $1, $1, $2, 'U0ANALYST')`, n.posted, n.acked)
		require.NoError(t, err)
	}
	rep, err := f.svc.Report(ctx, casework.AllOrgs(), casework.ReportRequest{Period: casework.PeriodMonth})
	require.NoError(t, err)
	require.Equal(t, casework.NotificationFigures{Posted: 2, Acknowledged: 2, MedianToAck: time.Minute}, rep.Total.Notifications,
		"both cards acknowledged; one time to acknowledge")
}

// TestReportNotificationSource: a NotificationSource in the config replaces
// the read of hunting's table, and its error fails the report.
func TestReportNotificationSource(t *testing.T) {
	t.Parallel()
	src := &fakeNotifications{by: map[string]casework.NotificationFigures{"contoso": {Posted: 7, Acknowledged: 1, MedianToAck: time.Minute}}}
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso"); c.Notifications = src })
	rep, err := f.svc.Report(context.Background(), casework.AllOrgs(), casework.ReportRequest{Period: casework.PeriodMonth})
	require.NoError(t, err)
	require.Equal(t, 7, rep.Orgs[0].Notifications.Posted)
	require.Equal(t, []string{"contoso"}, src.orgs)
	require.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), src.from)
	src.err = fmt.Errorf("hunting is down")
	_, err = f.svc.Report(context.Background(), casework.AllOrgs(), casework.ReportRequest{})
	require.ErrorContains(t, err, "hunting is down")
}

type fakeNotifications struct {
	by       map[string]casework.NotificationFigures
	err      error
	orgs     []string
	from, to time.Time
}

func (f *fakeNotifications) NotificationFigures(_ context.Context, orgs []string, from, to time.Time) (map[string]casework.NotificationFigures, casework.NotificationFigures, error) {
	f.orgs, f.from, f.to = orgs, from, to
	var total casework.NotificationFigures
	for _, n := range f.by {
		total.Posted += n.Posted
	}
	return f.by, total, f.err
}

func TestParsePeriod(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]casework.Period{"": casework.PeriodQuarter, "week": casework.PeriodWeek, " Month ": casework.PeriodMonth,
		"QUARTER": casework.PeriodQuarter} {
		got, err := casework.ParsePeriod(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := casework.ParsePeriod("fortnight")
	require.ErrorIs(t, err, casework.ErrInvalid)
}

// TestReportAgreesWithSLA drives cases (one per org) through random allowed
// transitions, messages, sweeps and time jumps, and checks after every step
// that the report's clock figures and breaches for the case's org are the
// ones SLA derives from the status history.
func TestReportAgreesWithSLA(t *testing.T) {
	t.Parallel()
	const cases = 10
	orgs := make([]string, cases)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%d", i)
	}
	f := setup(t, func(c *casework.Config) {
		c.Orgs, c.ReopenWindow, c.AutoCloseAfter = orgsOf(orgs...), 365*24*time.Hour, -1
	})
	f.clock.Set(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	table := casework.Transitions()
	for i, org := range orgs {
		req := f.openReq(org)
		req.Priority = []casework.Priority{casework.PriorityHigh, casework.PriorityMedium, casework.PriorityLow}[i%3]
		c, _, err := f.svc.Open(ctx, req)
		require.NoError(t, err)
		for step := range 40 {
			f.clock.Advance(time.Duration(rng.IntN(300)) * time.Minute)
			var options []casework.TransitionRequest
			for pair, roles := range table {
				if pair[0] != c.Status {
					continue
				}
				for _, r := range roles {
					if r != casework.RoleSystem {
						options = append(options, casework.TransitionRequest{Ref: c.Ref, To: pair[1], Actor: actorFor(r, org), Summary: "s"})
					}
				}
			}
			slices.SortFunc(options, func(a, b casework.TransitionRequest) int {
				return strings.Compare(string(a.To)+string(a.Actor.Role), string(b.To)+string(b.Actor.Role))
			})
			var err error
			switch r := rng.IntN(8); {
			case len(options) == 0 || c.Status == casework.StatusWithdrawn:
			case r == 0:
				_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: requester(org, "U-analyst"), Text: "more"})
			case r == 1:
				_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Text: "answer"})
			case r == 2:
				_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Text: "note", Internal: true})
			default:
				opt := options[rng.IntN(len(options))]
				if opt.To == casework.StatusWithdrawn && rng.IntN(4) != 0 {
					continue // keep most cases alive
				}
				_, err = f.svc.Transition(ctx, opt)
			}
			var te *casework.TransitionError
			if err != nil && !errors.As(err, &te) {
				require.NoError(t, err)
			}
			if rng.IntN(2) == 0 {
				_, err = f.svc.SweepSLA(ctx)
				require.NoError(t, err)
			}
			c, err = f.svc.Get(ctx, casework.AllOrgs(), c.Ref)
			require.NoError(t, err)
			st, err := f.svc.SLA(ctx, casework.AllOrgs(), c.Ref)
			require.NoError(t, err)
			rep, err := f.svc.Report(ctx, casework.AllOrgs(), casework.ReportRequest{Org: org})
			require.NoError(t, err)
			r := rep.Total
			at := fmt.Sprintf("%s step %d (%s)", c.Ref, step, c.Status)

			if st.FirstResponse.Met {
				require.Equal(t, casework.DurationStats{Count: 1, Median: st.FirstResponse.Elapsed, P90: st.FirstResponse.Elapsed}, r.FirstResponse, at)
			} else {
				require.Zero(t, r.FirstResponse.Count, at)
			}
			if c.Status == casework.StatusConcluded || c.Status == casework.StatusClosed {
				require.Equal(t, casework.DurationStats{Count: 1, Median: st.Conclusion.Elapsed, P90: st.Conclusion.Elapsed}, r.Conclusion, at)
			} else {
				require.Zero(t, r.Conclusion.Count, at)
			}
			want := map[casework.Clock]time.Duration{}
			for _, k := range []casework.ClockState{st.FirstResponse, st.Conclusion} {
				if k.Breached {
					want[k.Clock] = k.Elapsed
				}
			}
			got := map[casework.Clock]time.Duration{}
			for _, b := range r.SLA.Breaches {
				got[b.Clock] = b.Elapsed
			}
			require.Equal(t, want, got, at)
			require.Equal(t, st.Breached, r.SLA.Breached == 1, at)
		}
	}
}
