package hunting

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

func (f *fixture) sweep(t testing.TB) int {
	t.Helper()
	n, err := f.svc.Sweep(f.ctx)
	require.NoError(t, err)
	return n
}

func TestScoreExplanation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	res := f.ingest(t, chain("c", "victim", t0.Add(-50*time.Minute))...)
	v, err := f.svc.Incident(f.ctx, "contoso", res.Items[0].IncidentID)
	require.NoError(t, err)
	got := map[string]int{}
	for _, r := range v.Reasons {
		got[r.Factor] += r.Points
		require.NotEmpty(t, r.Detail)
	}
	require.Equal(t, map[string]int{
		FactorSeverity:    25, // high
		FactorImpact:      30, // a High credential-access alert (LSASS memory read)
		FactorVolume:      5,  // 4 alerts of medium or above, counted once
		FactorTactics:     18, // 4 tactics
		FactorProgression: 15, // initial access -> execution -> persistence -> credential access
		FactorRareFiles:   4,  // the dropper, on one device
		FactorRecency:     10, // last activity 20 minutes ago
	}, got)
	require.Equal(t, 100, v.Score, "107 points, capped")
	require.Equal(t, SeverityHigh, v.Severity)
	require.Contains(t, v.Title, "Multi-stage attack")
	require.Contains(t, v.Title, "victim")
	require.Contains(t, v.Summary, "4 alerts")
	require.Contains(t, v.Summary, "Initial Access → Execution → Persistence → Credential Access")
	require.Equal(t, []string{"TA0001", "TA0002", "TA0003", "TA0006"}, tacticIDs(v.Tactics))
	require.Equal(t, []string{"T1003.001", "T1053.005", "T1059.001", "T1566.001"}, v.Techniques)
	require.Len(t, v.Timeline, 4)
	require.Equal(t, "Suspicious Office macro", v.Timeline[0].Title)
	require.Equal(t, "TA0001", v.Timeline[0].Tactic.ID)
	require.Contains(t, v.Actions, tacticActions["TA0006"])
	require.False(t, v.FromExperts)
	require.Equal(t, PriorityNormal, v.Priority)

	// A lone low antivirus alert stays below the bar.
	res = f.ingest(t, gen{ID: "av", Device: "other", Severity: "Low", Source: "WindowsDefenderAv", Category: "Malware", At: t0.Add(-3 * time.Hour)})
	v, err = f.svc.Incident(f.ctx, "contoso", res.Items[0].IncidentID)
	require.NoError(t, err)
	require.Equal(t, 5+5, v.Score, "%+v", v.Reasons)
	require.Less(t, v.Score, DefaultNotifyScore)

	// The expert hunting service: always 100, top priority.
	res = f.ingest(t, gen{ID: "mte", Device: "third", Severity: "Low", Source: "ThreatExperts", Title: "Hands-on-keyboard activity", At: t0.Add(-48 * time.Hour)})
	v, err = f.svc.Incident(f.ctx, "contoso", res.Items[0].IncidentID)
	require.NoError(t, err)
	require.Equal(t, MaxScore, v.Score)
	require.Equal(t, FactorExpert, v.Reasons[0].Factor)
	require.True(t, v.FromExperts)
	require.Equal(t, PriorityTop, v.Priority)
	require.Equal(t, "Hands-on-keyboard activity on third", v.Title)
}

func tacticIDs(ts []Tactic) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestScoreUnit(t *testing.T) {
	t.Parallel()
	now := t0
	tests := []struct {
		name string
		in   scoreInput
		want int
	}{
		{"empty", scoreInput{}, 0},
		{"informational old", scoreInput{MaxSeverity: SeverityInformational, LastActivity: now.Add(-48 * time.Hour)}, 0},
		{"medium recent", scoreInput{MaxSeverity: SeverityMedium, LastActivity: now.Add(-2 * time.Hour)}, 15 + 5},
		{"many devices and users capped", scoreInput{MaxSeverity: SeverityLow, Devices: 40, Users: 40}, 5 + 15 + 9},
		{"rare files capped", scoreInput{RareFiles: 9}, 12},
		{"backwards tactics do not progress", scoreInput{Tactics: []tacticSeen{{"TA0040", now.Add(-2 * time.Hour)}, {"TA0001", now.Add(-time.Hour)}}}, 6},
		{"capped at 100", scoreInput{MaxSeverity: SeverityHigh, MediumPlus: 9, Devices: 9, Users: 9, RareFiles: 9, LastActivity: now,
			Tactics: []tacticSeen{{"TA0001", now.Add(-5 * time.Hour)}, {"TA0002", now.Add(-4 * time.Hour)}, {"TA0003", now.Add(-3 * time.Hour)}, {"TA0008", now.Add(-2 * time.Hour)}, {"TA0040", now.Add(-time.Hour)}}}, 100},
		{"expert", scoreInput{Expert: true, MaxSeverity: SeverityLow}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, reasons := score(tc.in, now)
			require.Equal(t, tc.want, got, "%+v", reasons)
			sum := 0
			for _, r := range reasons {
				sum += r.Points
			}
			if tc.want < 100 {
				require.Equal(t, got, sum, "the reasons add up to the score")
			}
		})
	}
}

func TestNotificationPolicy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-50 * time.Minute)
	res := f.ingest(t, chain("c", "victim", at)[:2]...)
	inc := res.Items[0].IncidentID
	require.Empty(t, f.outbox(t), "group_wait: nothing before 30s")

	f.clock.Advance(10 * time.Second)
	require.Zero(t, f.sweep(t))
	f.ingest(t, chain("c", "victim", at)[2])
	f.clock.Advance(10 * time.Second)
	require.Zero(t, f.sweep(t))
	require.Empty(t, f.outbox(t), "the burst is still grouping")

	f.clock.Advance(10 * time.Second) // t0+30s
	require.Equal(t, 1, f.sweep(t))
	rows := f.outbox(t)
	require.Equal(t, []string{EventNotify}, kinds(rows))
	require.Equal(t, Stream(inc), rows[0].Stream)
	require.Equal(t, "incident:"+fmt.Sprint(inc), rows[0].Stream)
	require.Equal(t, 1, rows[0].Payload.Seq)
	require.Equal(t, "contoso", rows[0].Payload.Org)
	require.Equal(t, inc, rows[0].Payload.IncidentID)
	require.Equal(t, SeverityHigh, rows[0].Payload.Severity)
	require.Zero(t, f.sweep(t), "exactly once")

	// It grows: a new device, a new tactic. The update waits for group_interval.
	f.clock.Advance(time.Second)
	f.ingest(t,
		chain("c", "victim", at)[3],
		gen{ID: "lm", Device: "fileserver", Users: []string{"c-user"}, Severity: "High", Category: "LateralMovement", At: at.Add(40 * time.Minute)})
	require.Len(t, f.outbox(t), 1)
	f.clock.Advance(2 * time.Minute)
	require.Zero(t, f.sweep(t))
	f.clock.Advance(3 * time.Minute) // 5m after the post
	require.Equal(t, 1, f.sweep(t))
	rows = f.outbox(t)
	require.Equal(t, []string{EventNotify, EventUpdate}, kinds(rows))
	up := rows[1].Payload
	require.Equal(t, 2, up.Seq)
	require.Contains(t, up.Changes, Change{Kind: ChangeNewDevice, Detail: "new device fileserver"})
	require.Contains(t, up.Changes, Change{Kind: ChangeNewTactic, Detail: "new tactic Credential Access (TA0006)"})
	require.Contains(t, up.Changes, Change{Kind: ChangeNewTactic, Detail: "new tactic Lateral Movement (TA0008)"})
	require.Contains(t, up.Note, "new device fileserver")
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, up.Changes, v.Changes)
	require.Zero(t, f.sweep(t))

	// Unacknowledged and high: repeated after repeat_interval.
	f.clock.Advance(4*time.Hour - time.Second)
	require.Zero(t, f.sweep(t))
	f.clock.Advance(time.Second)
	require.Equal(t, 1, f.sweep(t))
	require.Equal(t, EventRepeat, f.outbox(t)[2].Kind)

	// Acknowledged: no more repeats; a second acknowledgement is a no-op.
	require.ErrorIs(t, f.svc.Acknowledge(f.ctx, "fabrikam", inc, "slack:T1:U0X", "U0X"), ErrNotFound)
	require.NoError(t, f.svc.Acknowledge(f.ctx, "contoso", inc, "slack:T1:U0ANALYST", "Ana Lyst"))
	err = f.svc.Acknowledge(f.ctx, "contoso", inc, "slack:T1:U0OTHER", "U0OTHER")
	require.ErrorIs(t, err, ErrAlreadyAcknowledged, "someone else is told who did")
	require.ErrorContains(t, err, "already acknowledged by Ana Lyst")
	// People are told apart by id, not name: another Ana Lyst is someone
	// else (she was told it went through), and the same person whose name
	// could not be looked up this time (the id stands in) is not.
	require.ErrorIs(t, f.svc.Acknowledge(f.ctx, "contoso", inc, "slack:T1:U0ANA2", "Ana Lyst"), ErrAlreadyAcknowledged, "a namesake")
	require.NoError(t, f.svc.Acknowledge(f.ctx, "contoso", inc, "slack:T1:U0ANALYST", "U0ANALYST"), "the same press again")
	rows = f.outbox(t)
	require.Equal(t, []string{EventNotify, EventUpdate, EventRepeat, EventAcknowledged}, kinds(rows))
	require.Equal(t, "Ana Lyst", rows[3].Payload.By)
	f.clock.Advance(9 * time.Hour)
	require.Zero(t, f.sweep(t))
	v, err = f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, "Ana Lyst", v.AcknowledgedBy)
	require.NotNil(t, v.AcknowledgedAt)
	require.Len(t, f.outbox(t), 4)
}

// TestGroupWaitStartsAgainAfterDroppingUnder: an incident that crossed the
// bar and fell under it again before its post waits group_wait afresh when
// it crosses again; the old crossing's time made it post at once, on the
// first batch of the new burst, the rest following as an edit.
func TestGroupWaitStartsAgainAfterDroppingUnder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	gw := f.svc.cfg.GroupWait
	bar := f.svc.liveConfig().notifyScore("contoso")
	st := &incState{ID: 1, Org: "contoso", Status: "open", Score: bar}
	kind, _ := f.svc.evaluate(t0, st)
	require.Empty(t, kind, "waits group_wait")
	require.NotNil(t, st.EligibleAt)

	st.Score = bar - 20 // a benign reclassification, before the post
	kind, _ = f.svc.evaluate(t0.Add(gw/2), st)
	require.Empty(t, kind)
	require.Nil(t, st.EligibleAt)

	again := t0.Add(48 * time.Hour)
	st.Score = bar + 10 // a new burst, days later
	kind, _ = f.svc.evaluate(again, st)
	require.Empty(t, kind, "the new crossing waits group_wait too")
	require.True(t, st.NextDue.Equal(again.Add(gw)), "%s", st.NextDue)
	kind, _ = f.svc.evaluate(again.Add(gw), st)
	require.Equal(t, EventNotify, kind)
}

func TestExpertIsNotifiedAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := []byte(`{"@odata.type":"#microsoft.graph.security.alert","id":"mte-1","tenantId":"` + tenantFabrikam + `",
"severity":"informational","status":"new","detectionSource":"microsoftThreatExperts","category":"LateralMovement",
"title":"Human-operated ransomware precursor","createdDateTime":"2026-11-20T09:59:00.1234567Z",
"evidence":[{"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"abc","deviceDnsName":"dc01"}]}`)
	res, err := f.svc.Ingest(f.ctx, []RawAlert{body})
	require.NoError(t, err)
	rows := f.outbox(t)
	require.Equal(t, []string{EventNotify}, kinds(rows), "no group_wait for the expert service")
	require.Equal(t, PriorityTop, rows[0].Payload.Priority)
	require.True(t, rows[0].Payload.Expert)
	require.Equal(t, 100, rows[0].Payload.Score)
	require.Equal(t, res.Items[0].IncidentID, rows[0].Payload.IncidentID)
	// Repeated although informational, until acknowledged.
	f.clock.Advance(4 * time.Hour)
	require.Equal(t, 1, f.sweep(t))
	require.Equal(t, EventRepeat, f.outbox(t)[1].Kind)
}

func TestBelowTheBarIsNeverNotified(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Orgs[1].NotifyScore = ptr(5) })
	f.ingest(t, gen{ID: "low", Device: "pc", Severity: "Low", At: t0.Add(-3 * time.Hour)})
	f.ingest(t, gen{ID: "low-f", Tenant: tenantFabrikam, Device: "pc", Severity: "Low", At: t0.Add(-3 * time.Hour)})
	f.clock.Advance(24 * time.Hour)
	require.Equal(t, 1, f.sweep(t), "only fabrikam's bar is low enough")
	rows := f.outbox(t)
	require.Len(t, rows, 1)
	require.Equal(t, "fabrikam", rows[0].Payload.Org)
}

func TestAlertStormGivesOneCard(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	cats := []string{"Execution", "Persistence", "DefenseEvasion", "Discovery", "CommandAndControl"}
	for b := range 20 {
		var gs []gen
		for i := range 100 {
			n := b*100 + i
			gs = append(gs, gen{ID: fmt.Sprintf("storm-%d", n), Device: "storm-pc", Severity: "High", Category: cats[n%len(cats)],
				At: at.Add(time.Duration(n) * time.Second), Files: []string{sha(fmt.Sprint("s", n%7))}})
		}
		res := f.ingest(t, gs...)
		require.Equal(t, 100, res.Accepted)
		f.clock.Advance(30 * time.Second)
		f.sweep(t)
	}
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_incidents`))
	require.Equal(t, 2000, f.count(t, `SELECT alert_count FROM hunting_incidents`))
	rows := f.outbox(t)
	require.Equal(t, EventNotify, rows[0].Kind)
	require.LessOrEqual(t, len(rows), 4, "one card and a few edits: %v", kinds(rows))
	for _, r := range rows[1:] {
		require.Equal(t, EventUpdate, r.Kind)
	}
}

func TestConcurrentSweepsNotifyOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := range 20 {
		f.ingest(t, chain(fmt.Sprint("p", i), fmt.Sprint("pc", i), t0.Add(-50*time.Minute))...)
	}
	f.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	total := make([]int, 4)
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.svc.Sweep(f.ctx)
			require.NoError(t, err)
			total[i] = n
		}()
	}
	wg.Wait()
	require.Equal(t, 20, total[0]+total[1]+total[2]+total[3], "%v %v", total, f.outbox(t))
	require.Equal(t, 20, len(f.outbox(t)))
}

func TestScheduledSweep(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.SweepInterval = 50 * time.Millisecond })
	f.ingest(t, chain("c", "victim", t0.Add(-50*time.Minute))...)
	require.NoError(t, f.svc.Start(f.ctx))
	defer func() { require.NoError(t, f.svc.Stop()) }()
	require.ErrorIs(t, f.svc.Start(f.ctx), lifecycle.ErrStarted, "started once")
	f.clock.Advance(time.Minute)
	require.Eventually(t, func() bool { return len(f.outbox(t)) == 1 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, f.svc.Stop())
	require.NoError(t, f.svc.Stop(), "Stop is idempotent")
	require.ErrorIs(t, f.svc.Start(f.ctx), lifecycle.ErrStopped, "no Start after Stop")
}

// TestScheduledPruneRunsAtStart: the hourly prune runs when the service
// starts, not first an hour later (replicas restarted more often than
// that never pruned).
func TestScheduledPruneRunsAtStart(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen) VALUES ('contoso', 'file', 'old', 'pc-1', $1)`,
		f.clock.Now().Add(-30*24*time.Hour))
	require.NoError(t, f.svc.Start(f.ctx))
	defer func() { require.NoError(t, f.svc.Stop()) }()
	require.Eventually(t, func() bool { return f.count(t, `SELECT count(*) FROM hunting_entity_devices`) == 0 }, 10*time.Second, 20*time.Millisecond)
}

func TestRescoreAndPrune(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The first three stages (no credential theft): 25 severity, 5 impact
	// (High execution), 5 volume, 12 tactics, 10 progression, 4 rare file,
	// 10 recency.
	res := f.ingest(t, chain("c", "victim", t0.Add(-50*time.Minute))[:3]...)
	inc := res.Items[0].IncidentID
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, 71, v.Score, "%+v", v.Reasons)
	f.clock.Advance(48 * time.Hour)
	f.sweep(t)
	v, err = f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, 61, v.Score, "the recency points are gone: %+v", v.Reasons)
	require.NotZero(t, f.count(t, `SELECT count(*) FROM hunting_entity_devices`))
	// Sightings count for as long as the chain window reaches back (a
	// file is rare over all of it), and a window more.
	n, err := f.svc.Prune(f.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "two days old: still counted")
	f.clock.Advance(6*24*time.Hour + time.Minute)
	n, err = f.svc.Prune(f.ctx)
	require.NoError(t, err)
	require.NotZero(t, n)
	require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_entity_devices`))
}

// TestOneOrgsFailingSweepHoldsBackNoOther: the sweep goes org by org in
// name order; an org whose transaction fails (here a trigger refuses its
// incident updates) is reported, and the orgs after it are swept all the
// same. Its incidents stay due and go out once it works again.
func TestOneOrgsFailingSweepHoldsBackNoOther(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.ingest(t, chain("c", "pc-c", t0.Add(-50*time.Minute))...).Items[0].IncidentID
	fab := chain("fab", "pc-f", t0.Add(-50*time.Minute))
	for i := range fab {
		fab[i].Tenant = tenantFabrikam
	}
	fb := f.ingest(t, fab...).Items[0].IncidentID
	f.exec(t, `CREATE FUNCTION refuse_contoso() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'contoso is broken'; END $$`)
	f.exec(t, `CREATE TRIGGER refuse_contoso BEFORE UPDATE ON hunting_incidents FOR EACH ROW WHEN (NEW.org = 'contoso') EXECUTE FUNCTION refuse_contoso()`)
	f.clock.Advance(time.Minute)

	n, err := f.svc.Sweep(f.ctx)
	require.ErrorContains(t, err, "sweep org contoso")
	require.ErrorContains(t, err, "contoso is broken")
	require.Equal(t, 1, n, "fabrikam, after contoso, is swept")
	rows := f.outbox(t)
	require.Len(t, rows, 1)
	require.Equal(t, EventNotify, rows[0].Kind)
	require.Equal(t, Stream(fb), rows[0].Stream)

	f.exec(t, `DROP TRIGGER refuse_contoso ON hunting_incidents`)
	require.Equal(t, 1, f.sweep(t), "contoso's incident is still due")
	rows = f.outbox(t)
	require.Len(t, rows, 2)
	require.Equal(t, Stream(c), rows[1].Stream)
}

// TestSweepClearsADueItNoLongerNeeds: an incident waiting out group_wait
// whose org's bar was raised by a reload is no longer eligible: the sweep
// clears its due time (it kept the stored one, so the incident was worked
// again by every sweep, and 500 of them kept the sweep from ending).
func TestSweepClearsADueItNoLongerNeeds(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Orgs[0].NotifyScore = ptr(10) })
	f.ingest(t, gen{ID: "m-1", Device: "pc-1", Severity: "Medium", At: t0.Add(-3 * time.Hour)})
	due := `SELECT count(*) FROM hunting_incidents WHERE status = 'open' AND next_due_at IS NOT NULL`
	require.Equal(t, 1, f.count(t, due), "waiting out group_wait")
	orgs := testOrgs()
	orgs[0].NotifyScore = ptr(90)
	require.NoError(t, f.svc.SetOrgs(Config{Orgs: orgs}))
	f.clock.Advance(time.Minute)
	require.Equal(t, 0, f.sweep(t), "under the new bar: not posted")
	require.Equal(t, 0, f.count(t, due), "and no longer due")
}

// TestSweepEndsWhenTheSameIncidentsStayDue: whatever keeps incidents due
// (here a trigger that refuses to move their due time), a sweep works each
// once and ends; with 500 of them it used to find the same ones for ever.
func TestSweepEndsWhenTheSameIncidentsStayDue(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Orgs[0].NotifyScore = ptr(10) })
	var gs []gen
	for i := range 501 {
		gs = append(gs, gen{ID: fmt.Sprintf("s-%d", i), Device: fmt.Sprintf("pc-%d", i), Severity: "Medium", At: t0.Add(-3 * time.Hour)})
	}
	f.ingest(t, gs...)
	f.exec(t, `
CREATE FUNCTION keep_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.next_due_at := OLD.next_due_at; RETURN NEW; END $$;
CREATE TRIGGER keep_due BEFORE UPDATE ON hunting_incidents FOR EACH ROW EXECUTE FUNCTION keep_due()`)
	f.clock.Advance(time.Minute)
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	n, err := f.svc.Sweep(ctx)
	require.NoError(t, err, "the sweep ended")
	require.Equal(t, 501, n, "each incident posted once")
}

// TestCardFollowsTheAttackAsItGrows: an attack that grows with no new
// device, user or tactic (more alerts on the same device, new files) gets
// its card redrawn (timeline, counts, score), with no thread note, once per
// group_interval. The card stayed at its first alert until an
// acknowledgement or a repeat redrew it.
func TestCardFollowsTheAttackAsItGrows(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	f.ingest(t, gen{ID: "grow-0", Device: "pc1", Severity: "High", Category: "CredentialAccess", At: at, Files: []string{sha("g0")}})
	f.clock.Advance(time.Minute)
	f.sweep(t)
	require.Equal(t, []string{EventNotify}, kinds(f.outbox(t)))

	var gs []gen
	for i := 1; i < 20; i++ {
		gs = append(gs, gen{ID: fmt.Sprintf("grow-%d", i), Device: "pc1", Severity: "High", Category: "CredentialAccess",
			At: at.Add(time.Duration(i) * time.Minute), Files: []string{sha(fmt.Sprint("g", i))}})
	}
	f.ingest(t, gs...)
	f.sweep(t)
	require.Equal(t, []string{EventNotify}, kinds(f.outbox(t)), "within group_interval of the post")

	f.clock.Advance(f.svc.cfg.GroupInterval)
	f.sweep(t)
	rows := f.outbox(t)
	require.Equal(t, []string{EventNotify, EventUpdate}, kinds(rows))
	require.Empty(t, rows[1].Payload.Changes, "nothing new to say in the thread")
	require.Empty(t, rows[1].Payload.Note)
	require.Equal(t, 20, f.count(t, `SELECT alert_count FROM hunting_incidents`))

	f.clock.Advance(f.svc.cfg.GroupInterval)
	f.sweep(t)
	require.Len(t, f.outbox(t), 2, "redrawn once: it has not grown since")
}

// TestRedrawsKeepRemindersAndNotes: redrawing a growing card is no
// notification. An unacknowledged attack that gains an alert every hour is
// still reminded every repeat_interval, and a new tactic that arrives
// after a reminder, within group_interval of it, is still said in the
// thread once that runs out. Redraws restarted the repeat clock (no
// reminder in 12 hours) and absorbed the held-back tactic silently.
func TestRedrawsKeepRemindersAndNotes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := t0.Add(-time.Minute)
	f.ingest(t, gen{ID: "g-0", Device: "pc1", Severity: "High", Category: "CredentialAccess", At: start})
	f.clock.Advance(time.Minute)
	f.sweep(t)
	for h := 1; h <= 12; h++ {
		f.clock.Advance(time.Hour)
		f.ingest(t, gen{ID: fmt.Sprintf("g-%d", h), Device: "pc1", Severity: "High", Category: "CredentialAccess", At: f.clock.Now().Add(-time.Minute)})
		f.sweep(t)
	}
	ks := kinds(f.outbox(t))
	require.Contains(t, ks, EventRepeat, "reminded: %v", ks)
	require.GreaterOrEqual(t, strings.Count(strings.Join(ks, " "), EventRepeat), 2, "every repeat_interval: %v", ks)

	// A new tactic right after a reminder is held back, then said.
	for i := 0; f.outbox(t)[len(f.outbox(t))-1].Kind != EventRepeat; i++ {
		require.Less(t, i, 30, "a reminder within 5 hours")
		f.clock.Advance(10 * time.Minute)
		f.sweep(t)
	}
	n := len(f.outbox(t))
	f.ingest(t, gen{ID: "g-lm", Device: "pc1", Severity: "High", Category: "LateralMovement", At: f.clock.Now().Add(-time.Minute)})
	f.sweep(t)
	f.clock.Advance(f.svc.cfg.GroupInterval)
	f.sweep(t)
	rows := f.outbox(t)[n:]
	require.NotEmpty(t, rows)
	noted := false
	for _, r := range rows {
		if r.Kind == EventUpdate && strings.Contains(r.Payload.Note, "Lateral Movement") {
			noted = true
		}
	}
	require.True(t, noted, "the new tactic is said in the thread: %+v", rows)
}
