package hunting

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chain is a hands-on-keyboard attack on one device: four stages in
// kill-chain order, sharing the device and one user.
func chain(prefix, device string, at time.Time) []gen {
	return []gen{
		{ID: prefix + "-1", Device: device, Severity: "Medium", Category: "InitialAccess", Title: "Suspicious Office macro", At: at, Users: []string{prefix + "-user"}, Techs: []string{"T1566.001"}},
		{ID: prefix + "-2", Device: device, Severity: "High", Category: "Execution", Title: "Malicious PowerShell", At: at.Add(10 * time.Minute), Files: []string{sha(prefix + "dropper")}, Techs: []string{"T1059.001"}},
		{ID: prefix + "-3", Device: device, Severity: "Medium", Category: "Persistence", Title: "Suspicious scheduled task", At: at.Add(20 * time.Minute), Techs: []string{"T1053.005"}},
		{ID: prefix + "-4", Device: device, Severity: "High", Category: "CredentialAccess", Title: "LSASS memory read", At: at.Add(30 * time.Minute), Users: []string{prefix + "-user"}, Techs: []string{"T1003.001"}},
	}
}

func TestCorrelation(t *testing.T) {
	t.Parallel()
	at := t0.Add(-50 * time.Minute)
	hash := sha("worm")
	fiveDevices := func() []gen {
		var gs []gen
		for i := range 5 {
			gs = append(gs, gen{ID: fmt.Sprintf("h%d", i), Device: fmt.Sprintf("pc%d", i), Files: []string{hash}, At: at.Add(time.Duration(i) * time.Minute), Category: "Execution"})
		}
		return gs
	}
	tests := []struct {
		name      string
		batches   [][]gen
		incidents int
		devices   []int // device count per incident, sorted by incident id
	}{
		{"attack chain on one device, one batch", [][]gen{chain("c", "victim", at)}, 1, []int{1}},
		{"attack chain on one device, one alert at a time", func() [][]gen {
			var b [][]gen
			for _, g := range chain("c", "victim", at) {
				b = append(b, []gen{g})
			}
			return b
		}(), 1, []int{1}},
		{"one hash on five devices, one batch", [][]gen{fiveDevices()}, 1, []int{5}},
		{"one hash on five devices, one at a time", func() [][]gen {
			var b [][]gen
			for _, g := range fiveDevices() {
				b = append(b, []gen{g})
			}
			return b
		}(), 1, []int{5}},
		{"two disjoint attacks", [][]gen{append(chain("a", "pc-a", at), chain("b", "pc-b", at)...)}, 2, []int{1, 1}},
		{"same device but outside the window", [][]gen{
			{{ID: "w1", Device: "pc-w", At: at.Add(-72 * time.Hour)}},
			{{ID: "w2", Device: "pc-w", At: at}},
		}, 2, []int{1, 1}},
		{"sharing only a well-known account and an OS binary", [][]gen{{
			{ID: "s1", Device: "pc-s1", Users: []string{"SYSTEM"}},
			{ID: "s2", Device: "pc-s2", Users: []string{"SYSTEM"}},
		}}, 2, []int{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			for _, b := range tc.batches {
				res := f.ingest(t, b...)
				require.Zero(t, res.Rejected, "%+v", res.Items)
			}
			require.Equal(t, tc.incidents, f.count(t, `SELECT count(*) FROM hunting_incidents WHERE status = 'open'`))
			rows, err := f.pool.Query(f.ctx, `SELECT device_count FROM hunting_incidents WHERE status = 'open' ORDER BY id`)
			require.NoError(t, err)
			var got []int
			for rows.Next() {
				var n int
				require.NoError(t, rows.Scan(&n))
				got = append(got, n)
			}
			rows.Close()
			require.Equal(t, tc.devices, got)
		})
	}
}

func TestCommonEntityIsNotAJoinKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ip   bool
	}{
		{"popular public IP", true},
		{"file hash on many devices", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(c *Config) { c.CommonEntityDevices = 10 })
			at := t0.Add(-2 * time.Hour)
			shared := func(g gen) gen {
				if tc.ip {
					g.IPs = []string{"8.8.8.8"}
				} else {
					g.Files = []string{sha("popular-updater")}
				}
				return g
			}
			// Background: twelve unrelated devices touch the entity.
			var bg []gen
			for i := range 12 {
				bg = append(bg, shared(gen{ID: fmt.Sprintf("bg%d", i), Device: fmt.Sprintf("bg-pc%d", i), Severity: "Low", At: at.Add(time.Duration(i) * time.Minute)}))
			}
			f.ingest(t, bg...)
			require.Equal(t, 12, f.count(t, `SELECT count(*) FROM hunting_incidents`), "seen on 12 devices in one batch: not a join key")
			// Two new alerts on new devices sharing only that entity.
			res := f.ingest(t, shared(gen{ID: "n1", Device: "new-1", At: at.Add(time.Hour)}))
			res2 := f.ingest(t, shared(gen{ID: "n2", Device: "new-2", At: at.Add(time.Hour)}))
			require.NotEqual(t, res.Items[0].IncidentID, res2.Items[0].IncidentID)
			require.Equal(t, 14, f.count(t, `SELECT count(*) FROM hunting_incidents`))
			require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_merges`))
		})
	}
}

func TestClosedIncidentIsNotReopened(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	res := f.ingest(t, gen{ID: "x1", Device: "pc1", At: at, Files: []string{sha("m")}})
	first := res.Items[0].IncidentID
	require.NoError(t, f.svc.Close(f.ctx, "contoso", first, "U0ANALYST"))
	require.ErrorIs(t, f.svc.Close(f.ctx, "fabrikam", first, "x"), ErrNotFound)

	res = f.ingest(t, gen{ID: "x2", Device: "pc1", At: at.Add(time.Minute), Files: []string{sha("m")}})
	second := res.Items[0].IncidentID
	require.NotEqual(t, first, second, "a new incident starts")
	// An update of an alert of the closed incident stays there, closed.
	res = f.ingest(t, gen{ID: "x1", Device: "pc1", At: at.Add(time.Second), Files: []string{sha("m")}, Status: "Resolved"})
	require.Equal(t, StatusUpdated, res.Items[0].Status)
	require.Equal(t, first, res.Items[0].IncidentID)
	v, err := f.svc.Incident(f.ctx, "contoso", first)
	require.NoError(t, err)
	require.Equal(t, "closed", v.Status)
	require.Equal(t, 1, v.AlertCount)
	v, err = f.svc.Incident(f.ctx, "contoso", second)
	require.NoError(t, err)
	require.Equal(t, "open", v.Status)
	require.Equal(t, 1, v.AlertCount)
}

func TestMergeIsRecorded(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-30 * time.Minute)
	a := f.ingest(t, chain("a", "pc-a", at)...).Items[0].IncidentID
	b := f.ingest(t, gen{ID: "b1", Device: "pc-b", At: at, Files: []string{sha("implant")}, Severity: "High", Category: "Execution"},
		gen{ID: "b2", Device: "pc-b", At: at.Add(time.Minute), Severity: "High", Category: "LateralMovement"},
		gen{ID: "b3", Device: "pc-b", At: at.Add(2 * time.Minute), Severity: "High", Category: "Impact"}).Items[0].IncidentID
	require.NotEqual(t, a, b)
	f.clock.Advance(time.Second)
	_, err := f.svc.Sweep(f.ctx)
	require.NoError(t, err)
	require.Equal(t, []string{EventNotify, EventNotify}, kinds(f.outbox(t)), "both posted")

	// The implant shows up on pc-a: the two incidents are one attack.
	res := f.ingest(t, gen{ID: "link", Device: "pc-a", At: at.Add(5 * time.Minute), Files: []string{sha("implant")}, Severity: "High", Category: "LateralMovement"})
	require.Equal(t, a, res.Items[0].IncidentID, "the older incident survives")
	var from, into int64
	var alert, reason string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT from_id, into_id, alert_id, reason FROM hunting_merges`).Scan(&from, &into, &alert, &reason))
	require.Equal(t, b, from)
	require.Equal(t, a, into)
	require.Equal(t, "link", alert)
	require.Contains(t, reason, "shared file")

	old, err := f.svc.Incident(f.ctx, "contoso", b)
	require.NoError(t, err)
	require.Equal(t, "merged", old.Status)
	require.Equal(t, a, old.MergedInto)
	v, err := f.svc.Incident(f.ctx, "contoso", a)
	require.NoError(t, err)
	require.Equal(t, 8, v.AlertCount)
	require.Equal(t, 2, v.Scope.Devices.Count)

	rows := f.outbox(t)
	require.Equal(t, EventMerged, rows[2].Kind)
	require.Equal(t, Stream(b), rows[2].Stream)
	require.Equal(t, a, rows[2].Payload.MergedInto)
	require.Equal(t, "merged", rows[2].Payload.Status, "the card learns its incident is merged")
	require.True(t, rows[2].Payload.Final, "and drops its buttons")
	require.Equal(t, "open", rows[0].Payload.Status)
	require.False(t, rows[0].Payload.Final)
}

// TestSlowIntrusionIsOneIncident: an intruder acting once a day (gaps of
// 25 to 27 hours) on one device with one rare implant is one incident over
// five days; the same alerts linked only through a common binary are not.
func TestSlowIntrusionIsOneIncident(t *testing.T) {
	t.Parallel()
	gaps := []time.Duration{0, 25 * time.Hour, 27 * time.Hour, 26 * time.Hour, 25 * time.Hour}
	cats := []string{"Execution", "Persistence", "CredentialAccess", "LateralMovement", "Exfiltration"}
	for _, tc := range []struct {
		name      string
		rare      bool
		incidents int
	}{
		{"linked by a rare implant", true, 1},
		{"linked only by a common binary", false, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			at := t0
			ids := map[int64]bool{}
			for day, gap := range gaps {
				at = at.Add(gap)
				f.clock.Advance(gap)
				var batch []gen
				file := sha("implant")
				if !tc.rare {
					file = sha("common-updater")
					// The binary is everywhere: twelve other devices run it that day.
					for i := range 12 {
						batch = append(batch, gen{ID: fmt.Sprintf("bg%d-%d", day, i), Device: fmt.Sprintf("bg-pc%d", i), Severity: "Low",
							Files: []string{file}, At: at.Add(-time.Duration(i+1) * time.Minute)})
					}
				}
				batch = append(batch, gen{ID: fmt.Sprintf("day%d", day), Device: "victim", Severity: "Medium", Category: cats[day],
					Files: []string{file}, At: at})
				res := f.ingest(t, batch...)
				require.Zero(t, res.Rejected)
				ids[res.Items[len(batch)-1].IncidentID] = true
			}
			require.Len(t, ids, tc.incidents)
			if tc.rare {
				var inc int64
				for id := range ids {
					inc = id
				}
				v, err := f.svc.Incident(f.ctx, "contoso", inc)
				require.NoError(t, err)
				require.Equal(t, 5, v.AlertCount)
				require.Len(t, v.Tactics, 5)
				require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_merges`))
			}
		})
	}
}

// TestChainNeedsARareEntity: the chain window reaches back only through
// an entity rare over all of it. A tool hash common two days ago (on 12
// devices, then 4 of their incidents resolved, leaving fewer open than the
// glue guard counts) links nothing today; an account seen on no device
// (a sign-in alert) is not known to be rare and keeps the correlation
// window.
func TestChainNeedsARareEntity(t *testing.T) {
	t.Parallel()
	t.Run("a file common two days ago", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		at := t0.Add(-time.Hour)
		file := sha("deploy-tool")
		var batch []gen
		for i := range 12 {
			batch = append(batch, gen{ID: fmt.Sprintf("d1-%d", i), Device: fmt.Sprintf("pc%d", i), Severity: "Low", Files: []string{file},
				At: at.Add(time.Duration(i) * time.Minute)})
		}
		incs := map[int64]bool{}
		for _, it := range f.ingest(t, batch...).Items {
			incs[it.IncidentID] = true
		}
		require.Len(t, incs, 12, "common: every device its own incident")
		n := 0
		for id := range incs {
			if n++; n <= 4 {
				require.NoError(t, f.svc.Resolve(f.ctx, "contoso", id, ClassFalsePositive, "", "U1"))
			}
		}
		f.clock.Advance(48 * time.Hour)
		inc := f.ingest(t, gen{ID: "d3", Device: "pc-new", Severity: "Low", Files: []string{file}, At: at.Add(48 * time.Hour)}).Items[0].IncidentID
		require.False(t, incs[inc], "the new alert joins none of them")
		require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_merges`), "and merges none")
	})
	t.Run("an account seen on no device", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		at := t0.Add(-72 * time.Hour)
		a := f.ingest(t, gen{ID: "u1", Severity: "Medium", Users: []string{"admin"}, At: at}).Items[0].IncidentID
		b := f.ingest(t, gen{ID: "u2", Severity: "Medium", Users: []string{"admin"}, At: at.Add(70 * time.Hour)}).Items[0].IncidentID
		require.NotEqual(t, a, b, "70 hours apart, past the correlation window")
	})
}

// TestOpenIncidentIsNotCrowdedOut: a noisy device with more closed
// incidents in the window than correlation reads per entity still has its
// open incident found: a new alert joins it rather than opening another.
func TestOpenIncidentIsNotCrowdedOut(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-20 * time.Hour)
	for i := range 21 {
		r := f.ingest(t, gen{ID: fmt.Sprintf("c%d", i), Device: "noisy", Severity: "Low", At: at.Add(time.Duration(i) * 10 * time.Minute)})
		require.NoError(t, f.svc.Resolve(f.ctx, "contoso", r.Items[0].IncidentID, ClassFalsePositive, "", "U1"))
	}
	a := f.ingest(t, gen{ID: "a", Device: "noisy", Severity: "High", Category: "Execution", At: at.Add(5 * time.Hour)}).Items[0].IncidentID
	b := f.ingest(t, gen{ID: "b", Device: "noisy", Severity: "High", Category: "Persistence", At: at.Add(5*time.Hour + time.Minute)}).Items[0].IncidentID
	require.Equal(t, a, b)
}

// TestMergeHandsOnTheCard: an incident with a card (here posted on a
// person's request, under the bar, and acknowledged) merged into an older
// one that had none: the old card says to follow the survivor, so the
// survivor is posted at once, not after group_wait or only if it crosses
// the bar, and it keeps the acknowledgement (no reminders start again).
func TestMergeHandsOnTheCard(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := f.clock.Now().Add(-30 * time.Minute)
	a := f.ingest(t, gen{ID: "a1", Device: "pc-a", At: at, Severity: "Low", Category: "Discovery"}).Items[0].IncidentID
	b := f.ingest(t, gen{ID: "b1", Device: "pc-b", At: at, Files: []string{sha("implant")}, Severity: "High", Category: "Execution"}).Items[0].IncidentID
	require.NotEqual(t, a, b)
	require.NoError(t, f.svc.NotifyNow(f.ctx, "contoso", b, "U0ANALYST"))
	require.NoError(t, f.svc.Acknowledge(f.ctx, "contoso", b, "slack:T1:U0ANALYST", "U0ANALYST"))
	n := len(f.outbox(t))

	res := f.ingest(t, gen{ID: "link", Device: "pc-a", At: at.Add(5 * time.Minute), Files: []string{sha("implant")}, Severity: "Low", Category: "Execution"})
	require.Equal(t, a, res.Items[0].IncidentID, "the older incident survives")
	rows := f.outbox(t)[n:]
	require.Equal(t, []string{EventMerged, EventNotify}, kinds(rows), "the old card points at the survivor, which is posted in the same batch")
	require.Equal(t, Stream(b), rows[0].Stream)
	require.Equal(t, a, rows[0].Payload.MergedInto)
	require.Equal(t, Stream(a), rows[1].Stream)
	v, err := f.svc.Incident(f.ctx, "contoso", a)
	require.NoError(t, err)
	require.Equal(t, "U0ANALYST", v.AcknowledgedBy, "the acknowledgement carries over")
	require.NotNil(t, v.AcknowledgedAt)
	f.clock.Advance(9 * time.Hour)
	require.Zero(t, f.sweep(t), "no reminders for an acknowledged attack")

	// The old card's buttons, pressed before its edit arrived, say where
	// the incident went.
	err = f.svc.Acknowledge(f.ctx, "contoso", b, "slack:T1:U0OTHER", "U0OTHER")
	require.ErrorIs(t, err, ErrNotOpen)
	require.ErrorContains(t, err, fmt.Sprintf("merged into incident %d", a))
}

// TestMergeOfAnUnacknowledgedCardKeepsItsReminders: two cards, one
// acknowledged and one not, merge (one alert names both implants, an
// attacker's forgery say): the survivor is not acknowledged, so the
// reminders of the unacknowledged attack go on. Into an older quiet
// incident, the one acknowledgement carried over; into the acknowledged
// card, it stayed. Either way the other attack's reminders were silenced.
func TestMergeOfAnUnacknowledgedCardKeepsItsReminders(t *testing.T) {
	t.Parallel()
	for _, into := range []string{"an older quiet incident", "the acknowledged card"} {
		t.Run(into, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			at := f.clock.Now().Add(-30 * time.Minute)
			var quiet int64
			if into == "an older quiet incident" {
				quiet = f.ingest(t, gen{ID: "s1", Device: "pc-s", At: at.Add(-time.Minute), Severity: "Low", Category: "Discovery"}).Items[0].IncidentID
			}
			card := func(id, device, implant string, at time.Time) int64 {
				inc := f.ingest(t, gen{ID: id, Device: device, At: at, Files: []string{sha(implant)}, Severity: "High", Category: "Execution"}).Items[0].IncidentID
				require.NoError(t, f.svc.NotifyNow(f.ctx, "contoso", inc, "U0ANALYST"))
				return inc
			}
			a := card("a1", "pc-a", "implant-a", at)
			card("b1", "pc-b", "implant-b", at.Add(time.Minute))
			require.NoError(t, f.svc.Acknowledge(f.ctx, "contoso", a, "slack:T1:U0ANALYST", "U0ANALYST"))

			survivor, on := a, "pc-a"
			if quiet != 0 {
				survivor, on = quiet, "pc-s"
			}
			res := f.ingest(t, gen{ID: "link", Device: on, At: at.Add(5 * time.Minute), Files: []string{sha("implant-a"), sha("implant-b")},
				Severity: "Low", Category: "Execution"})
			require.Equal(t, survivor, res.Items[0].IncidentID, "the older incident survives")
			v, err := f.svc.Incident(f.ctx, "contoso", survivor)
			require.NoError(t, err)
			require.Nil(t, v.AcknowledgedAt, "an unacknowledged card was handed on")
			require.Empty(t, v.AcknowledgedBy)
		})
	}
}
