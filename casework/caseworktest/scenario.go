// Package caseworktest drives a known set of cases through casework on a
// settable clock, so that tests at every level (the bot, the chat adapters
// behind their fakes) can check what a person sees of the service report
// against figures worked out by hand.
package caseworktest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// The scenario's orgs: configure casework (and the bot) with both.
const (
	Contoso  = "contoso"
	Fabrikam = "fabrikam"
)

// T is Monday 2 February 2026 09:00 UTC; Now, where Run leaves the clock,
// is Tuesday 10 February 09:00, mid-Q1.
var (
	T   = time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC)
	Now = time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)
)

// People are who act in the scenario, on one chat platform.
type People struct {
	Platform string
	// Workspace of each org's requester; the expert's is Workspace[""].
	Workspace map[string]string
	// Requester is each org's analyst; Expert takes and answers every case.
	Requester map[string]string
	Expert    string
}

// Scenario is the set of cases Run opened: Refs maps each case's name
// (C0..C5, F1..F3) to its reference.
type Scenario struct {
	Refs map[string]string

	svc   *casework.Service
	clock *testclock.Clock
	p     People
}

// Run drives the scenario through svc, whose Config.Now must be clock's,
// and leaves the clock at Now. It inserts incident cards into hunting's
// table on pool, as hunting leaves them. The cases, in time order (h: hours
// of wall time):
//
//	C0 contoso low alert      20 Jan 10:00   withdrawn at once (credit back)
//	C1 contoso high alert     T              answered at 30m, concluded at 5h
//	C2 contoso medium file    T+1h           taken at 2h, more info at 3h (first
//	                                         response 2h), paused 10h, answered
//	                                         T+13h, concluded T+15h: clock 4h
//	C3 contoso high incident  T+2h           answered at T+5h (response 3h: the
//	                                         1h target breached), concluded T+8h
//	C4 contoso low general    T+3h           withdrawn at T+3h10m (credit back)
//	F1 fabrikam medium alert  T+1d           answered at 3h, more info at 4h,
//	                                         paused 20h, concluded at wall 70h:
//	                                         clock 50h, its 48h target breached
//	F2 fabrikam high device   T+1d+1h        never answered: both targets
//	                                         breached, 167h of clock at Now
//	F3 fabrikam low general   Sun 8 Feb 20:00  withdrawn at once
//	C5 contoso high alert     Mon 9 Feb 08:00  answered at 10m, more info at 20m,
//	                                         paused since (25h of wall time,
//	                                         20m of clock): open, on time
//
// Incident cards: contoso three posted in February (acknowledged after 10m
// and 30m, one not), one in December; fabrikam one posted, not
// acknowledged.
//
// The quarter's report at Now, worked out by hand (percentiles interpolate
// linearly, as PostgreSQL's percentile_cont: p90 of n sorted values is at
// position 0.9*(n-1)):
//
//	contoso   opened 6: alert 3, file 1, incident 1, general 1; high 3, medium 1, low 2
//	          first response 30m 2h 3h 10m: median (30m+2h)/2 = 1h15m,
//	          p90 at 2.7 = 2h + 0.7h = 2h42m (4 cases)
//	          conclusion 5h, 4h (C2's 10h pause left out), 6h: median 5h,
//	          p90 at 1.8 = 5h + 0.8h = 5h48m (3 cases)
//	          within SLA 2 of 3 decided (67%), 1 open on time (C5), 2 withdrawn
//	          1 breach: C3 first response, 3h against 1h
//	          credits 4 used (C0 and C4 gave theirs back), 6 left
//	          notifications 3 posted, 2 acknowledged, median (10m+30m)/2 = 20m
//	fabrikam  opened 3: alert 1, device 1, general 1; high 1, medium 1, low 1
//	          first response 3h (1 case); conclusion 50h = 2 days 2 hours
//	          (70h of wall time, its 20h pause left out)
//	          within SLA 0 of 2 decided (0%), 1 withdrawn
//	          3 breaches by 2 cases: F2 first response and conclusion (167h
//	          = 6 days 23 hours against 1h and 24h), F1 conclusion (50h against 48h)
//	          credits 2 used, 8 left; notifications 1 posted, none acknowledged
//	total     opened 9; first response 10m 30m 2h 3h 3h: median 2h, p90 3h;
//	          conclusion 4h 5h 6h 50h: median 5h30m, p90 at 2.7 = 6h + 0.7*44h
//	          = 36h48m ("1 day 13 hours" in words, to the hour); within SLA 2
//	          of 5 (40%); 4 breaches; credits 6 used, 14 left
//
// The week of 2 February (the weekly digest at Now): contoso opened 4 (C1
// to C4): first response 30m 2h 3h: median 2h, p90 at 1.8 = 2h48m;
// conclusion 5h 4h 6h: median 5h, p90 5h48m; 2 of 3 within SLA (67%); 3
// credits used; the same three cards. fabrikam as in the quarter.
func Run(t testing.TB, svc *casework.Service, clock *testclock.Clock, pool *pgxpool.Pool, p People) *Scenario {
	t.Helper()
	sc := &Scenario{Refs: map[string]string{}, svc: svc, clock: clock, p: p}
	h := time.Hour
	sc.at(time.Date(2026, 1, 20, 10, 0, 0, 0, time.UTC))
	sc.open(t, "C0", casework.SubjectAlert, casework.PriorityLow, "old question")
	sc.move(t, "C0", casework.StatusWithdrawn)

	sc.at(T)
	sc.open(t, "C1", casework.SubjectAlert, casework.PriorityHigh, "Is this lateral movement on ws-017?")
	sc.at(T.Add(30 * time.Minute))
	sc.answer(t, "C1")
	sc.at(T.Add(h))
	sc.open(t, "C2", casework.SubjectFile, casework.PriorityMedium, "Is this file malicious?")
	sc.at(T.Add(2 * h))
	sc.open(t, "C3", casework.SubjectIncident, casework.PriorityHigh, "What is this incident?")
	_, err := svc.Take(context.Background(), sc.Refs["C2"], sc.expert())
	require.NoError(t, err)
	sc.at(T.Add(3 * h))
	sc.move(t, "C2", casework.StatusMoreInfoNeeded)
	sc.open(t, "C4", casework.SubjectNone, casework.PriorityLow, "General question")
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
	sc.open(t, "F1", casework.SubjectAlert, casework.PriorityMedium, "Fabrikam alert")
	sc.at(D.Add(h))
	sc.open(t, "F2", casework.SubjectDevice, casework.PriorityHigh, "Is this device compromised?")
	sc.at(D.Add(3 * h))
	sc.answer(t, "F1")
	sc.at(D.Add(4 * h))
	sc.move(t, "F1", casework.StatusMoreInfoNeeded)
	sc.at(D.Add(24 * h))
	sc.reply(t, "F1")
	sc.at(D.Add(70 * h))
	sc.move(t, "F1", casework.StatusConcluded)

	sc.at(time.Date(2026, 2, 8, 20, 0, 0, 0, time.UTC))
	sc.open(t, "F3", casework.SubjectNone, casework.PriorityLow, "Sunday question")
	sc.move(t, "F3", casework.StatusWithdrawn)

	C5 := time.Date(2026, 2, 9, 8, 0, 0, 0, time.UTC)
	sc.at(C5)
	sc.open(t, "C5", casework.SubjectAlert, casework.PriorityHigh, "Another alert")
	sc.at(C5.Add(10 * time.Minute))
	sc.answer(t, "C5")
	sc.at(C5.Add(20 * time.Minute))
	sc.move(t, "C5", casework.StatusMoreInfoNeeded)

	sc.at(Now)
	notifications(t, pool)
	return sc
}

func (sc *Scenario) at(t time.Time) { sc.clock.Set(t) }

func orgOf(name string) string {
	if name[0] == 'F' {
		return Fabrikam
	}
	return Contoso
}

func (sc *Scenario) requester(org string) casework.Actor {
	return casework.Actor{Role: casework.RoleRequester, Org: org, Person: casework.Person{Platform: sc.p.Platform,
		Workspace: sc.p.Workspace[org], UserID: sc.p.Requester[org], DisplayName: sc.p.Requester[org]}}
}

func (sc *Scenario) expert() casework.Actor {
	return casework.Actor{Role: casework.RoleExpert, Person: casework.Person{Platform: sc.p.Platform,
		Workspace: sc.p.Workspace[""], UserID: sc.p.Expert, DisplayName: sc.p.Expert}}
}

func (sc *Scenario) open(t testing.TB, name string, kind casework.SubjectKind, prio casework.Priority, question string) {
	t.Helper()
	sub := casework.Subject{Kind: kind}
	if kind != casework.SubjectNone {
		sub.ID = strings.ToLower(name) + "-subject"
	}
	org := orgOf(name)
	c, created, err := sc.svc.Open(context.Background(), casework.OpenRequest{Key: "scenario-" + name, Org: org, Subject: sub,
		Priority: prio, Question: question, Requester: sc.requester(org).Person})
	require.NoError(t, err)
	require.True(t, created)
	sc.Refs[name] = c.Ref
}

func (sc *Scenario) move(t testing.TB, name string, to casework.Status) {
	t.Helper()
	a := sc.expert()
	if to == casework.StatusWithdrawn {
		a = sc.requester(orgOf(name))
	}
	_, err := sc.svc.Transition(context.Background(), casework.TransitionRequest{Ref: sc.Refs[name], To: to, Actor: a, Summary: "benign"})
	require.NoError(t, err)
}

// answer: the expert takes the case (if new) and writes to the requester.
func (sc *Scenario) answer(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := sc.svc.Take(ctx, sc.Refs[name], sc.expert())
	require.NoError(t, err)
	_, err = sc.svc.AddMessage(ctx, casework.MessageRequest{Ref: sc.Refs[name], Actor: sc.expert(), Text: "looking at it"})
	require.NoError(t, err)
}

// reply: the requester answers (resumes a paused case).
func (sc *Scenario) reply(t testing.TB, name string) {
	t.Helper()
	_, err := sc.svc.AddMessage(context.Background(), casework.MessageRequest{Ref: sc.Refs[name],
		Actor: sc.requester(orgOf(name)), Text: "here it is"})
	require.NoError(t, err)
}

// notifications inserts incident cards as hunting leaves them.
func notifications(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	d := func(day, hour, minute int) *time.Time {
		x := time.Date(2026, 2, day, hour, minute, 0, 0, time.UTC)
		return &x
	}
	dec, decAck := time.Date(2025, 12, 20, 9, 0, 0, 0, time.UTC), time.Date(2025, 12, 20, 9, 5, 0, 0, time.UTC)
	for _, n := range []struct {
		org           string
		posted, acked *time.Time
	}{
		{Contoso, d(3, 10, 0), d(3, 10, 10)},
		{Contoso, d(4, 12, 0), d(4, 12, 30)},
		{Contoso, d(5, 9, 0), nil},
		{Contoso, &dec, &decAck},
		{Fabrikam, d(6, 8, 0), nil},
	} {
		_, err := pool.Exec(context.Background(), `INSERT INTO hunting_incidents (org, created_at, updated_at, posted_at, acked_at, acked_by)
 VALUES ($1, $2, $2, $2, $3, CASE WHEN $3::timestamptz IS NOT NULL THEN 'U0ANALYST' END)`, n.org, n.posted, n.acked)
		require.NoError(t, err)
	}
}
