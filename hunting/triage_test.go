package hunting

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// postedChain ingests an attack chain and sweeps until it is posted.
func (f *fixture) postedChain(t *testing.T, prefix, device string) int64 {
	t.Helper()
	inc := f.ingest(t, chain(prefix, device, f.clock.Now().Add(-50*time.Minute))...).Items[0].IncidentID
	f.clock.Advance(time.Minute)
	f.sweep(t)
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.NotNil(t, v.PostedAt)
	return inc
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := setup(t)
	inc := f.postedChain(t, "c", "victim")
	require.ErrorIs(t, f.svc.Resolve(f.ctx, "fabrikam", inc, ClassTruePositive, "", "U0X"), ErrNotFound, "another org's incident is not found")
	require.ErrorContains(t, f.svc.Resolve(f.ctx, "contoso", inc, "maybe", "", "U0X"), "classification")
	require.ErrorContains(t, f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, "", " "), "who resolves it")

	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, "contained: device isolated, passwords reset", "U0ANALYST"))
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, "closed", v.Status)
	require.Equal(t, ClassTruePositive, v.Classification)
	require.Equal(t, "U0ANALYST", v.ResolvedBy)
	require.Equal(t, "contained: device isolated, passwords reset", v.ResolveComment)
	require.NotNil(t, v.ResolvedAt)

	rows := f.outbox(t)
	last := rows[len(rows)-1]
	require.Equal(t, EventResolved, last.Kind)
	require.Equal(t, Stream(inc), last.Stream)
	p := last.Payload
	require.Equal(t, "U0ANALYST", p.By)
	require.Equal(t, ClassTruePositive, p.Classification)
	require.Equal(t, "true positive", p.ClassificationLabel)
	require.Equal(t, "contained: device isolated, passwords reset", p.Comment)
	require.Equal(t, "closed", p.Status)
	require.True(t, p.Final, "the card drops its buttons")
	require.Equal(t, "Resolved by U0ANALYST as true positive: contained: device isolated, passwords reset", p.Note)

	// Another request by someone of the same name is told who did it.
	err = f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, "contained: device isolated, passwords reset", "U0ANALYST")
	require.ErrorContains(t, err, "already resolved by U0ANALYST as true positive")

	// A request with a key, worked again (a crash between the resolution
	// and the bot marking its work done), is done, not refused to its own
	// author; another key is refused.
	keyed := f.ingest(t, gen{ID: "keyed", Device: "pc-k", Severity: "Medium", At: f.clock.Now().Add(-time.Hour)}).Items[0].IncidentID
	require.NoError(t, f.svc.ResolveOnce(f.ctx, "contoso", keyed, ClassTruePositive, "", "Alex", "slack:submit:V1"))
	n := len(f.outbox(t))
	require.NoError(t, f.svc.ResolveOnce(f.ctx, "contoso", keyed, ClassTruePositive, "", "Alex", "slack:submit:V1"))
	require.Len(t, f.outbox(t), n, "nothing recorded twice")
	err = f.svc.ResolveOnce(f.ctx, "contoso", keyed, ClassTruePositive, "", "Alex", "discord:submit:77")
	require.ErrorContains(t, err, "already resolved by Alex", "another Alex's request is told")

	err = f.svc.Resolve(f.ctx, "contoso", inc, ClassFalsePositive, "", "U0OTHER")
	require.ErrorIs(t, err, ErrNotOpen)
	require.ErrorContains(t, err, "already resolved by U0ANALYST as true positive")
	require.Len(t, f.outbox(t), len(rows), "nothing more recorded")

	// A quiet incident resolves without an event: it has no card.
	q := f.ingest(t, gen{ID: "quiet", Device: "pc-q", Severity: "Low", At: f.clock.Now().Add(-time.Hour)}).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", q, ClassFalsePositive, "", "U0ANALYST"))
	require.Len(t, f.outbox(t), len(rows))
	v, err = f.svc.Incident(f.ctx, "contoso", q)
	require.NoError(t, err)
	require.Equal(t, ClassFalsePositive, v.Classification)
}

func TestResolveMergedIncidentSaysWhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-30 * time.Minute)
	a := f.ingest(t, gen{ID: "a1", Device: "pc-a", At: at}).Items[0].IncidentID
	b := f.ingest(t, gen{ID: "b1", Device: "pc-b", At: at, Files: []string{sha("implant")}}).Items[0].IncidentID
	f.ingest(t, gen{ID: "link", Device: "pc-a", At: at.Add(time.Minute), Files: []string{sha("implant")}})
	err := f.svc.Resolve(f.ctx, "contoso", b, ClassTruePositive, "", "U0X")
	require.ErrorIs(t, err, ErrNotOpen)
	require.ErrorContains(t, err, "merged into incident")
	require.ErrorIs(t, f.svc.NotifyNow(f.ctx, "contoso", b, "U0X"), ErrNotOpen)
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", a, ClassTruePositive, "", "U0X"))
}

// TestResolvedUpstream: when every alert of an incident is resolved in
// the source, the incident resolves itself, classified from its alerts,
// with a note for the card's thread; until then each resolution updates it.
func TestResolvedUpstream(t *testing.T) {
	t.Parallel()
	f := setup(t)
	inc := f.postedChain(t, "c", "victim")
	at := t0.Add(-50 * time.Minute)
	gs := chain("c", "victim", at)
	for i, g := range gs {
		g.Status, g.Class = "Resolved", "FalsePositive"
		res := f.ingest(t, g)
		require.Equal(t, StatusUpdated, res.Items[0].Status)
		require.Equal(t, inc, res.Items[0].IncidentID)
		v, err := f.svc.Incident(f.ctx, "contoso", inc)
		require.NoError(t, err)
		if i < len(gs)-1 {
			require.Equal(t, "open", v.Status, "alert %d of %d resolved", i+1, len(gs))
		} else {
			require.Equal(t, "closed", v.Status)
			require.Equal(t, ClassFalsePositive, v.Classification)
			require.Equal(t, "upstream", v.ResolvedBy)
		}
	}
	rows := f.outbox(t)
	last := rows[len(rows)-1]
	require.Equal(t, EventResolved, last.Kind)
	require.Equal(t, "upstream", last.Payload.By)
	require.True(t, last.Payload.Final)
	require.Equal(t, "All 4 alerts were resolved in the source (Defender or Graph) as false positive: the incident is closed", last.Payload.Note)
	err := f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, "", "U0X")
	require.ErrorIs(t, err, ErrNotOpen)
	require.ErrorContains(t, err, "was resolved in the source (Defender or Graph) as false positive", "not 'resolved by upstream'")

	// Graph's lower-case status works the same, on a fresh incident.
	g := gen{ID: "solo", Device: "pc-solo", Severity: "Medium", At: at}
	q := f.ingest(t, g).Items[0].IncidentID
	g.Status, g.Class = "resolved", "truePositive"
	f.ingest(t, g)
	v, err := f.svc.Incident(f.ctx, "contoso", q)
	require.NoError(t, err)
	require.Equal(t, "closed", v.Status)
	require.Equal(t, ClassTruePositive, v.Classification)

	// A person whose chat name is "Upstream" does not pass for the source.
	p := f.ingest(t, gen{ID: "person", Device: "pc-p", Severity: "Medium", At: at}).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", p, ClassTruePositive, "", "Upstream"))
	v, err = f.svc.Incident(f.ctx, "contoso", p)
	require.NoError(t, err)
	require.Equal(t, "Upstream (a person)", v.ResolvedBy)
}

// TestAlertUpdatesFlowThrough: an upstream classification of an alert as a
// false positive takes its severity and impact out of the incident, and the
// card is told.
func TestAlertUpdatesFlowThrough(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond; c.GroupInterval = time.Nanosecond })
	at := t0.Add(-20 * time.Minute)
	high := gen{ID: "hi", Device: "pc1", Severity: "High", Category: "CredentialAccess", At: at, Users: []string{"alice"}}
	med := gen{ID: "med", Device: "pc1", Severity: "Medium", Category: "Execution", At: at.Add(time.Minute), Users: []string{"alice"}}
	inc := f.ingest(t, high, med).Items[0].IncidentID
	f.clock.Advance(time.Second)
	f.sweep(t)
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, SeverityHigh, v.Severity)
	before := v.Score
	require.Equal(t, 30, reasonsOf(v.Reasons)[FactorImpact])

	high.Class = "FalsePositive"
	f.clock.Advance(time.Second)
	f.ingest(t, high)
	v, err = f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, "open", v.Status)
	require.Equal(t, SeverityMedium, v.Severity, "the false positive no longer counts")
	require.Zero(t, reasonsOf(v.Reasons)[FactorImpact], "%+v", v.Reasons)
	require.Less(t, v.Score, before)
	require.Equal(t, 2, v.AlertCount)
	rows := f.outbox(t)
	last := rows[len(rows)-1]
	require.Equal(t, EventUpdate, last.Kind)
	var kinds []string
	for _, c := range last.Payload.Changes {
		kinds = append(kinds, c.Kind)
	}
	require.Equal(t, []string{ChangeTacticGone, ChangeSeverityDown}, kinds, "credential access went with the false positive")
	t.Logf("score %d -> %d after the false positive: %s", before, v.Score, last.Payload.Note)
}

// TestMergedIntoAnIncidentResolvedUpstream: one pull merges a posted
// incident into an older quiet one and resolves every alert upstream. The
// merged card says to follow the survivor, so the survivor gets a card,
// posted as it stands (closed), and its resolution note: the resolution is
// not lost with a card that was never posted.
func TestMergedIntoAnIncidentResolvedUpstream(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond; c.GroupInterval = time.Nanosecond })
	at := t0.Add(-30 * time.Minute)
	y1 := gen{ID: "y1", Device: "pcA", Severity: "Low", Category: "Discovery", At: at}
	x1 := gen{ID: "x1", Device: "pcB", Severity: "High", Category: "Ransomware", At: at.Add(time.Minute), Files: []string{sha("locker")}}
	y := f.ingest(t, y1).Items[0].IncidentID
	x := f.ingest(t, x1).Items[0].IncidentID
	f.clock.Advance(time.Second)
	f.sweep(t)
	vx, err := f.svc.Incident(f.ctx, "contoso", x)
	require.NoError(t, err)
	require.NotNil(t, vx.PostedAt)
	vy, err := f.svc.Incident(f.ctx, "contoso", y)
	require.NoError(t, err)
	require.Nil(t, vy.PostedAt, "under the bar")
	n := len(f.outbox(t))

	y1.Status, x1.Status, y1.Class, x1.Class = "Resolved", "Resolved", "TruePositive", "TruePositive"
	z := gen{ID: "z", Device: "pcA", Severity: "Low", Status: "Resolved", Class: "TruePositive", At: at.Add(2 * time.Minute), Files: []string{sha("locker")}}
	f.clock.Advance(time.Second)
	f.ingest(t, y1, x1, z)
	rows := f.outbox(t)[n:]
	require.Equal(t, []string{EventMerged, EventNotify, EventResolved}, kinds(rows))
	require.Equal(t, Stream(x), rows[0].Stream)
	require.Equal(t, y, rows[0].Payload.MergedInto)
	require.Equal(t, Stream(y), rows[1].Stream)
	require.Equal(t, "closed", rows[1].Payload.Status, "posted as it stands")
	require.Equal(t, Stream(y), rows[2].Stream)
	require.Contains(t, rows[2].Payload.Note, "resolved in the source (Defender or Graph) as true positive")
	vy, err = f.svc.Incident(f.ctx, "contoso", y)
	require.NoError(t, err)
	require.Equal(t, "closed", vy.Status)
	require.NotNil(t, vy.PostedAt)

	// Nothing more comes of it later.
	f.clock.Advance(time.Hour)
	f.sweep(t)
	require.Len(t, f.outbox(t), n+3)
}

// TestActivityAfterCloseInAnUpdate: an upstream update of an alert of a
// closed incident that brings activity from after the closing (Defender
// kept adding evidence: a new file and account, now High) is new activity:
// it opens a new incident that follows the closed one, which is never
// reopened. An update without such activity (resolved upstream) stays in
// the closed incident.
func TestActivityAfterCloseInAnUpdate(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-3 * time.Hour)
	r1 := gen{ID: "r1", Device: "pc1", Severity: "Medium", Category: "Execution", Title: "Suspicious script", At: at, Files: []string{sha("x")}}
	r2 := gen{ID: "r2", Device: "pc1", Severity: "Low", Category: "Execution", Title: "Odd login", At: at.Add(time.Minute), Files: []string{sha("x")}}
	inc := f.ingest(t, r1, r2).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, "cleaned", "U1"))

	// Resolved upstream, nothing new: it stays.
	r2.Status, r2.Class = "Resolved", "TruePositive"
	f.clock.Advance(time.Minute)
	res := f.ingest(t, r2)
	require.Equal(t, StatusUpdated, res.Items[0].Status)
	require.Equal(t, inc, res.Items[0].IncidentID)

	// New evidence from after the closing.
	r1.Severity, r1.Category = "High", "Ransomware"
	r1.Files, r1.Users = []string{sha("x"), sha("y")}, []string{"bob"}
	r1.Last = f.clock.Now().Add(5 * time.Minute)
	f.clock.Advance(10 * time.Minute)
	res = f.ingest(t, r1)
	require.Equal(t, StatusUpdated, res.Items[0].Status)
	next := res.Items[0].IncidentID
	require.NotEqual(t, inc, next, "a closed incident is never reopened")
	v, err := f.svc.Incident(f.ctx, "contoso", next)
	require.NoError(t, err)
	require.Equal(t, "open", v.Status)
	require.Equal(t, inc, v.Follows)
	require.Equal(t, SeverityHigh, v.Severity)
	require.Equal(t, 1, v.AlertCount)
	closed, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, "closed", closed.Status)
	require.Equal(t, 1, closed.AlertCount, "r2 stays; r1 moved on")
	require.Equal(t, SeverityLow, closed.Severity, "the closed incident does not take the new severity")
	require.Contains(t, closed.Title, "Odd login", "its title comes from the alert it still holds")
	f.clock.Advance(time.Second)
	f.sweep(t)
	rows := f.outbox(t)
	require.Equal(t, EventNotify, rows[len(rows)-1].Kind, "the new incident is posted (High ransomware)")
	require.Equal(t, inc, rows[len(rows)-1].Payload.Follows)

	// The new activity correlates at its own time: an old alert of pc9
	// coming back to life joins the incident pc9 has now, not a third.
	old := gen{ID: "old9", Device: "pc9", Severity: "Low", Category: "Execution", Title: "Old nine", At: f.clock.Now().Add(-96 * time.Hour)}
	inc9 := f.ingest(t, old).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", inc9, ClassFalsePositive, "", "U1"))
	f.clock.Advance(time.Hour)
	now9 := f.ingest(t, gen{ID: "new9", Device: "pc9", Severity: "Medium", Category: "Execution", At: f.clock.Now().Add(-time.Minute)}).Items[0].IncidentID
	require.NotEqual(t, inc9, now9)
	old.Last = f.clock.Now()
	f.clock.Advance(time.Minute)
	require.Equal(t, now9, f.ingest(t, old).Items[0].IncidentID)
	emptied, err := f.svc.Incident(f.ctx, "contoso", inc9)
	require.NoError(t, err)
	require.Zero(t, emptied.AlertCount)
	require.Contains(t, emptied.Title, "Old nine", "an incident left with no alert keeps its title")
	require.True(t, old.At.Equal(emptied.FirstActivity), "and its activity span: %v", emptied.FirstActivity)

	// Stored with an activity time after the closing (a sender's clock
	// ahead), then updated with nothing new: it stays.
	ahead := gen{ID: "ahead", Device: "pc7", Severity: "Low", Category: "Execution", At: f.clock.Now().Add(30 * time.Minute)}
	incA := f.ingest(t, ahead).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", incA, ClassFalsePositive, "", "U1"))
	ahead.Status = "InProgress"
	f.clock.Advance(time.Minute)
	require.Equal(t, incA, f.ingest(t, ahead).Items[0].IncidentID, "nothing after what was stored")
}

// TestReclassifiedUpstreamUpdatesTheCard: what an upstream false positive
// takes away reaches the card too, not only a lower severity: a tactic
// that no longer counts, and the expert flag of an expert alert found
// benign (the incident is no longer top priority, nor repeated).
func TestReclassifiedUpstreamUpdatesTheCard(t *testing.T) {
	t.Parallel()
	t.Run("a tactic", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond; c.GroupInterval = time.Nanosecond })
		at := t0.Add(-20 * time.Minute)
		cred := gen{ID: "cred", Device: "pc1", Severity: "High", Category: "CredentialAccess", At: at}
		lat := gen{ID: "lat", Device: "pc1", Severity: "High", Category: "LateralMovement", At: at.Add(time.Minute)}
		inc := f.ingest(t, cred, lat).Items[0].IncidentID
		f.clock.Advance(time.Second)
		f.sweep(t)
		v, err := f.svc.Incident(f.ctx, "contoso", inc)
		require.NoError(t, err)
		require.NotNil(t, v.PostedAt)
		require.Len(t, v.Tactics, 2)
		n := len(f.outbox(t))

		lat.Class = "FalsePositive"
		f.clock.Advance(time.Minute)
		f.ingest(t, lat)
		f.clock.Advance(10 * time.Minute)
		f.sweep(t)
		v, err = f.svc.Incident(f.ctx, "contoso", inc)
		require.NoError(t, err)
		require.Len(t, v.Tactics, 1)
		rows := f.outbox(t)[n:]
		require.Len(t, rows, 1, "the card is told")
		require.Equal(t, EventUpdate, rows[0].Kind)
		require.Equal(t, ChangeTacticGone, rows[0].Payload.Changes[0].Kind)
		require.Contains(t, rows[0].Payload.Note, "Lateral Movement (TA0008) no longer counts")
	})
	t.Run("the expert flag", func(t *testing.T) {
		t.Parallel()
		f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond; c.GroupInterval = time.Nanosecond })
		e := gen{ID: "mte", Device: "pc1", Severity: "High", Category: "LateralMovement", Source: "ThreatExperts", At: t0.Add(-20 * time.Minute)}
		inc := f.ingest(t, e).Items[0].IncidentID
		f.clock.Advance(time.Second)
		f.sweep(t)
		v, err := f.svc.Incident(f.ctx, "contoso", inc)
		require.NoError(t, err)
		require.True(t, v.FromExperts)
		n := len(f.outbox(t))

		e.Class = "FalsePositive"
		f.clock.Advance(time.Second)
		f.ingest(t, e)
		f.clock.Advance(10 * time.Minute)
		f.sweep(t)
		v, err = f.svc.Incident(f.ctx, "contoso", inc)
		require.NoError(t, err)
		require.False(t, v.FromExperts, "a benign expert alert flags nothing")
		require.Less(t, v.Score, 50)
		var kinds []string
		for _, r := range f.outbox(t)[n:] {
			for _, c := range r.Payload.Changes {
				kinds = append(kinds, c.Kind)
			}
		}
		require.Contains(t, kinds, ChangeExpertGone)
	})
}

// TestNewActivityAfterCloseFollows: activity on the entities of a closed
// incident opens a new incident that says which one it follows.
func TestNewActivityAfterCloseFollows(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-2 * time.Hour)
	old := f.ingest(t, gen{ID: "o1", Device: "pc1", At: at, Files: []string{sha("implant")}}).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", old, ClassTruePositive, "cleaned", "U0A"))
	res := f.ingest(t, gen{ID: "n1", Device: "pc1", Severity: "High", Category: "Ransomware", At: at.Add(time.Hour), Files: []string{sha("implant")}})
	inc := res.Items[0].IncidentID
	require.NotEqual(t, old, inc, "a closed incident is never reopened")
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, old, v.Follows)
	require.Equal(t, "open", v.Status)
	f.clock.Advance(time.Second)
	f.sweep(t)
	rows := f.outbox(t)
	require.Equal(t, EventNotify, rows[len(rows)-1].Kind)
	require.Equal(t, old, rows[len(rows)-1].Payload.Follows)
	v, err = f.svc.Incident(f.ctx, "contoso", old)
	require.NoError(t, err)
	require.Equal(t, "closed", v.Status)
	require.Equal(t, 1, v.AlertCount)
	// Unrelated activity follows nothing.
	other := f.ingest(t, gen{ID: "x1", Device: "pc9", At: at.Add(time.Hour)}).Items[0].IncidentID
	v, err = f.svc.Incident(f.ctx, "contoso", other)
	require.NoError(t, err)
	require.Zero(t, v.Follows)
}

func TestIncidentsListAndNotifyNow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	posted := f.postedChain(t, "c", "victim")
	quiet := f.ingest(t, gen{ID: "q1", Device: "pc-q", Severity: "Low", Category: "Discovery", At: f.clock.Now().Add(-time.Hour)}).Items[0].IncidentID
	closed := f.ingest(t, gen{ID: "z1", Device: "pc-z", Severity: "Low", At: f.clock.Now().Add(-time.Hour)}).Items[0].IncidentID
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", closed, ClassInformational, "", "U0A"))

	ids := func(l []IncidentSummary) []int64 {
		out := []int64{}
		for _, s := range l {
			out = append(out, s.ID)
		}
		return out
	}
	l, err := f.svc.Incidents(f.ctx, "contoso", FilterOpen, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{quiet, posted}, ids(l), "newest first")
	require.False(t, l[0].Posted)
	require.True(t, l[1].Posted)
	require.NotEmpty(t, l[0].Reasons, "each says why")
	require.Equal(t, l[0].Score, sumPoints(l[0].Reasons))
	l, err = f.svc.Incidents(f.ctx, "contoso", FilterQuiet, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{quiet}, ids(l))
	l, err = f.svc.Incidents(f.ctx, "contoso", FilterAll, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{closed, quiet, posted}, ids(l))
	require.Equal(t, ClassInformational, l[0].Classification)
	require.Equal(t, "U0A", l[0].ResolvedBy)
	l, err = f.svc.Incidents(f.ctx, "fabrikam", FilterAll, 0)
	require.NoError(t, err)
	require.Empty(t, l, "another org sees none")
	_, err = f.svc.Incidents(f.ctx, "contoso", "recent", 0)
	require.ErrorContains(t, err, "use open, quiet or all")

	n := len(f.outbox(t))
	require.ErrorIs(t, f.svc.NotifyNow(f.ctx, "contoso", posted, "U0A"), ErrAlreadyPosted)
	require.ErrorIs(t, f.svc.NotifyNow(f.ctx, "contoso", closed, "U0A"), ErrNotOpen)
	require.ErrorIs(t, f.svc.NotifyNow(f.ctx, "fabrikam", quiet, "U0A"), ErrNotFound)
	require.NoError(t, f.svc.NotifyNow(f.ctx, "contoso", quiet, "U0ANALYST"))
	rows := f.outbox(t)
	require.Len(t, rows, n+1)
	last := rows[n]
	require.Equal(t, EventNotify, last.Kind)
	require.Equal(t, Stream(quiet), last.Stream)
	require.Equal(t, "U0ANALYST", last.Payload.By)
	require.Equal(t, 1, last.Payload.Seq)
	l, err = f.svc.Incidents(f.ctx, "contoso", FilterQuiet, 0)
	require.NoError(t, err)
	require.Empty(t, l, "no longer quiet")
	// The sweep does not post it again.
	f.clock.Advance(time.Hour)
	f.sweep(t)
	for _, r := range f.outbox(t)[n+1:] {
		require.NotEqual(t, EventNotify, r.Kind)
	}

	// Its card was lost (the bot saw its post go dead, the newest event
	// sequence 1): posted again once, as a new card; a second repost that
	// saw the same sequence finds the new card's and is refused.
	seq := 0
	for _, r := range f.outbox(t) {
		if r.Stream == Stream(quiet) {
			seq = max(seq, r.Payload.Seq)
		}
	}
	n = len(f.outbox(t))
	require.NoError(t, f.svc.Repost(f.ctx, "contoso", quiet, "U0BEA", seq))
	require.ErrorIs(t, f.svc.Repost(f.ctx, "contoso", quiet, "U0BEA", seq), ErrAlreadyPosted)
	rows = f.outbox(t)
	require.Len(t, rows, n+1)
	require.Equal(t, EventNotify, rows[n].Kind)
	require.Equal(t, "U0BEA", rows[n].Payload.By)
	require.Equal(t, seq+1, rows[n].Payload.Seq)
	require.ErrorIs(t, f.svc.Repost(f.ctx, "contoso", closed, "U0BEA", 0), ErrNotOpen)
}

func sumPoints(rs []Reason) int {
	n := 0
	for _, r := range rs {
		n += r.Points
	}
	return n
}

// TestResolveCommentKeepsItsCharacters: a resolution comment of 1,000
// characters in Cyrillic is stored whole, and the thread's note carries it
// whole: they were cut at 1,000 bytes (500 Cyrillic characters), silently.
func TestResolveCommentKeepsItsCharacters(t *testing.T) {
	t.Parallel()
	f := setup(t)
	inc := f.postedChain(t, "c", "victim")
	comment := strings.Repeat("д", 1000)
	require.NoError(t, f.svc.Resolve(f.ctx, "contoso", inc, ClassTruePositive, comment, "U0ANALYST"))
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, comment, v.ResolveComment)
	rows := f.outbox(t)
	require.Contains(t, rows[len(rows)-1].Payload.Note, comment)
}

// TestBenignAlertDoesNotRetitleAnAttack: an alert already found benign
// upstream (false positive), from the expert service and of low severity,
// joins a ransomware incident on the same device: the card keeps the
// attack's title. It took the title ("Scheduled backup test - expected, no
// action needed"), its expert flag ranking it first.
func TestBenignAlertDoesNotRetitleAnAttack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-30 * time.Minute)
	inc := f.ingest(t, gen{ID: "rw1", Device: "pc-1", Severity: "High", Category: "Ransomware", Title: "Ransomware behavior detected", At: at}).Items[0].IncidentID
	res := f.ingest(t, gen{ID: "fp1", Device: "pc-1", Severity: "Low", Source: "ThreatExperts", Class: "FalsePositive", Status: "Resolved",
		Title: "Scheduled backup test - expected, no action needed", At: at.Add(-time.Minute)})
	require.Equal(t, inc, res.Items[0].IncidentID, "same device: same incident")
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Contains(t, v.Title, "Ransomware behavior detected")

	// An incident of benign alerts only is still named by one.
	only := f.ingest(t, gen{ID: "fp2", Device: "pc-9", Severity: "Low", Class: "FalsePositive", Title: "Known admin tool"}).Items[0].IncidentID
	v, err = f.svc.Incident(f.ctx, "contoso", only)
	require.NoError(t, err)
	require.Contains(t, v.Title, "Known admin tool")
}
