package hunting

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestConcurrentRequestsCoalesce: requests of one org that arrive while
// another's transaction runs are stored together in the next transaction,
// each answered with its own results, and correlated as one batch would be.
func TestConcurrentRequestsCoalesce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	// Hold the org's lock from outside, as another replica would: the first
	// request leads a group and waits in its transaction; the others queue.
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, lockOrgSQL, "contoso")
	require.NoError(t, err)

	const senders = 4
	type answer struct {
		res *IngestResult
		err error
	}
	answers := make([]chan answer, senders)
	send := func(k int) {
		var gs []gen
		for i := range 25 {
			// The requests share the devices and the implant..
			gs = append(gs, gen{ID: fmt.Sprintf("s%d-%d", k, i), Device: fmt.Sprintf("pc%d", i%3), At: at.Add(time.Duration(i) * time.Minute),
				Files: []string{sha("implant")}, Severity: "Medium", Category: "Execution"})
		}
		// The same alert in two requests: the newer version wins.
		gs = append(gs, gen{ID: "dup", Device: "pc-dup", At: at.Add(time.Duration(k) * time.Second), Files: []string{sha("implant")}})
		raws := make([]RawAlert, len(gs))
		for i, g := range gs {
			raws[i] = g.raw()
		}
		res, err := f.svc.Ingest(f.ctx, raws)
		answers[k] <- answer{res, err}
	}
	for k := range senders {
		answers[k] = make(chan answer, 1)
	}
	go send(0)
	q := func() *orgQueue {
		f.svc.groups.mu.Lock()
		defer f.svc.groups.mu.Unlock()
		return f.svc.groups.orgs["contoso"]
	}
	require.Eventually(t, func() bool { return q() != nil }, 10*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	for k := 1; k < senders; k++ {
		wg.Go(func() { send(k) })
	}
	pending := func() int {
		q().mu.Lock()
		defer q().mu.Unlock()
		return len(q().pending)
	}
	require.Eventually(t, func() bool { return pending() == senders-1 }, 10*time.Second, time.Millisecond, "the others queue behind the leader")
	require.NoError(t, tx.Rollback(f.ctx))
	conn.Release()
	wg.Wait()

	var inc int64
	dups := map[ItemStatus]int{}
	concurrent := 0
	for k := range senders {
		a := <-answers[k]
		require.NoError(t, a.err)
		require.Len(t, a.res.Items, 26)
		for i, it := range a.res.Items {
			require.Equal(t, i, it.Index)
			if it.ID == "dup" {
				dups[it.Status]++
				if strings.Contains(it.Reason, "at the same time") {
					concurrent++
				}
				continue
			}
			require.Equal(t, fmt.Sprintf("s%d-%d", k, i), it.ID, "each request gets its own results")
			require.Equal(t, StatusAccepted, it.Status)
			if inc == 0 {
				inc = it.IncidentID
			}
			require.Equal(t, inc, it.IncidentID, "one incident: the implant links them all")
		}
	}
	require.Equal(t, 2.0, testutil.ToFloat64(f.svc.m.groups), "the leader's group, then one group for the three others")
	require.Equal(t, 4.0, testutil.ToFloat64(f.svc.m.groupRequests))
	// The first request stored "dup" alone; of the three coalesced, the
	// newest wins and the two others are told a concurrent request had it.
	require.Equal(t, 1, dups[StatusAccepted], "%v", dups)
	require.Equal(t, 3, dups[StatusUpdated]+dups[StatusUnchanged], "%v", dups)
	require.Equal(t, 2, concurrent)
	var first time.Time
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT first_activity FROM hunting_alerts WHERE id = 'dup'`).Scan(&first))
	require.True(t, first.Equal(at.Add(3*time.Second)), "the newest version is stored: %s", first)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_incidents`))
	require.Equal(t, 101, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_merges`))
}

// TestGroupFailureIsolatesRequests: when a group's transaction fails, each
// request is tried alone, so one bad request does not fail the others.
func TestGroupFailureIsolatesRequests(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	good := &groupReq{alerts: []*Alert{{Source: SourceDefender, ID: "g1", Org: "contoso", Severity: SeverityLow, Created: at}},
		idx: []int{0}, out: make([]ItemResult, 1), done: make(chan error, 1), lead: make(chan struct{}, 1), deadline: time.Now().Add(time.Minute)}
	// A NUL byte cannot be stored in a text column: this request's
	// statement fails (normalize never lets one through; this stands for
	// any failure of one request's data).
	bad := &groupReq{alerts: []*Alert{{Source: SourceDefender, ID: "b1", Org: "contoso", Severity: SeverityLow, Created: at, Title: "x\x00y"}},
		idx: []int{0}, out: make([]ItemResult, 1), done: make(chan error, 1), lead: make(chan struct{}, 1), deadline: time.Now().Add(time.Minute)}
	q := &orgQueue{pending: []*groupReq{good, bad}, busy: true}
	f.svc.leadGroup(f.ctx, "contoso", q)
	require.NoError(t, <-good.done)
	require.Error(t, <-bad.done)
	require.Equal(t, StatusAccepted, good.out[0].Status)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	require.False(t, q.busy)
}

// TestEntityCacheKeepsTheStoreRight: entities the store already holds are
// not sent again, yet an earlier first sighting, a later last one and a
// display learned later still reach it.
func TestEntityCacheKeepsTheStoreRight(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-5 * time.Hour)
	file := sha("implant")
	seen := func() (time.Time, time.Time) {
		var first, last time.Time
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT first_seen, last_seen FROM hunting_incident_entities WHERE kind = 'file' AND value = $1`, file).Scan(&first, &last))
		return first, last
	}
	inc := f.ingest(t, gen{ID: "e1", Device: "pc1", At: at, Files: []string{file}}).Items[0].IncidentID
	f.svc.cache.mu.Lock()
	_, cached := f.svc.cache.entities[entKey{inc, string(EntityFile), file}]
	f.svc.cache.mu.Unlock()
	require.True(t, cached, "the cache learned the row")
	first, last := seen()
	require.True(t, first.Equal(at) && last.Equal(at))

	f.ingest(t, gen{ID: "e2", Device: "pc1", At: at.Add(30 * time.Minute), Files: []string{file}})
	_, last = seen()
	require.True(t, last.Equal(at), "within the hour: nothing to write")

	f.ingest(t, gen{ID: "e3", Device: "pc1", At: at.Add(-2 * time.Hour), Files: []string{file}})
	first, _ = seen()
	require.True(t, first.Equal(at.Add(-2*time.Hour)), "an earlier sighting moves first_seen: %s", first)

	f.ingest(t, gen{ID: "e4", Device: "pc1", At: at.Add(2 * time.Hour), Files: []string{file}})
	_, last = seen()
	require.True(t, last.Equal(at.Add(2*time.Hour)), "a later one moves last_seen: %s", last)
	for _, id := range []string{"e2", "e3", "e4"} {
		require.Equal(t, inc, f.incidentOf(t, "contoso", id))
	}
}

// TestNewIncidentEntitiesAreCopied: the entity rows of an incident created
// by a batch are copied in without a probe; they hold what the statement
// for other incidents would have written (times spanning the batch's
// alerts, display, alt), and the incident counts them as new.
func TestNewIncidentEntitiesAreCopied(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-5 * time.Hour)
	file := sha("fresh-implant")
	res := f.ingest(t,
		gen{ID: "n1", Device: "pc1", At: at, Files: []string{file}, Users: []string{"alice"}},
		gen{ID: "n2", Device: "pc1", At: at.Add(3 * time.Hour), Files: []string{file}})
	inc := res.Items[0].IncidentID
	require.Equal(t, inc, res.Items[1].IncidentID)
	type row struct {
		kind, value, display, alt string
		join                      bool
		first, last               time.Time
	}
	rows := func() map[string]row {
		rs, err := f.pool.Query(f.ctx, `SELECT kind, value, display, alt, join_key, first_seen, last_seen FROM hunting_incident_entities
WHERE incident_id = $1 ORDER BY kind, value`, inc)
		require.NoError(t, err)
		out := map[string]row{}
		for rs.Next() {
			var r row
			require.NoError(t, rs.Scan(&r.kind, &r.value, &r.display, &r.alt, &r.join, &r.first, &r.last))
			out[r.kind+" "+r.display] = r
		}
		require.NoError(t, rs.Err())
		return out
	}
	got := rows()
	require.Len(t, got, 3, "device, user and file: %v", got)
	fr, ok := got[`file C:\Users\Public\payload0.exe`]
	require.True(t, ok, "%v", got)
	require.Equal(t, file, fr.value)
	require.Equal(t, file[:40], fr.alt)
	require.True(t, fr.join)
	require.True(t, fr.first.Equal(at) && fr.last.Equal(at.Add(3*time.Hour)), "%s..%s", fr.first, fr.last)
	dr, ok := got["device pc1"]
	require.True(t, ok, "%v", got)
	require.True(t, dr.first.Equal(at) && dr.last.Equal(at.Add(3*time.Hour)))
	var devices, users int
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT device_count, user_count FROM hunting_incidents WHERE id = $1`, inc).Scan(&devices, &users))
	require.Equal(t, 1, devices)
	require.Equal(t, 1, users)

	// A later batch joins it on the file from another device: its rows go
	// through the probing statement, next to the copied ones.
	require.Equal(t, inc, f.ingest(t, gen{ID: "n3", Device: "pc2", At: at.Add(5 * time.Hour), Files: []string{file}}).Items[0].IncidentID)
	got = rows()
	require.Len(t, got, 4, "%v", got)
	require.True(t, got[`file C:\Users\Public\payload0.exe`].last.Equal(at.Add(5*time.Hour)), "the copied row is updated in place")
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT device_count, user_count FROM hunting_incidents WHERE id = $1`, inc).Scan(&devices, &users))
	require.Equal(t, 2, devices)
}

// TestGroupCommitMatchesOneRequest is a differential test of group commit:
// requests coalesced into one group store exactly what one request holding
// their alerts in the same order stores (incidents, merges, entities,
// alerts, notifications), and each request is answered with the results of
// its own items. Two rounds: the second joins, grows and merges the first
// round's incidents (probed entity rows next to copied ones).
func TestGroupCommitMatchesOneRequest(t *testing.T) {
	t.Parallel()
	const requests, size = 6, 40
	c := newCorpus(7, 40, 10)
	var rounds [2][requests][]RawAlert
	for r := range rounds {
		for k := range requests {
			rounds[r][k] = c.batch(size, t0.Add(-3*time.Hour+time.Duration(r*requests+k)*5*time.Minute))
		}
	}
	one, grouped := setup(t), setup(t)
	for r, reqs := range rounds {
		// One request: the first alone (it leads a group of its own below),
		// then the others as one list.
		want := map[string]ItemResult{}
		var rest []RawAlert
		for k, items := range reqs {
			if k > 0 {
				rest = append(rest, items...)
				continue
			}
			res, err := one.svc.Ingest(one.ctx, items)
			require.NoError(t, err)
			for _, it := range res.Items {
				want[it.ID] = it
			}
		}
		res, err := one.svc.Ingest(one.ctx, rest)
		require.NoError(t, err)
		for _, it := range res.Items {
			want[it.ID] = it
		}

		// Concurrent requests: the first leads and waits for the org lock,
		// held from outside; the others queue, in order, into one group.
		conn, err := grouped.pool.Acquire(grouped.ctx)
		require.NoError(t, err)
		tx, err := conn.Begin(grouped.ctx)
		require.NoError(t, err)
		_, err = tx.Exec(grouped.ctx, lockOrgSQL, "contoso")
		require.NoError(t, err)
		q := func() *orgQueue {
			grouped.svc.groups.mu.Lock()
			defer grouped.svc.groups.mu.Unlock()
			return grouped.svc.groups.orgs["contoso"]
		}
		pending := func() (int, bool) {
			q().mu.Lock()
			defer q().mu.Unlock()
			return len(q().pending), q().busy
		}
		answers := make([]chan *IngestResult, requests)
		var wg sync.WaitGroup
		for k := range requests {
			answers[k] = make(chan *IngestResult, 1)
			wg.Go(func() {
				res, err := grouped.svc.Ingest(grouped.ctx, reqs[k])
				if err != nil {
					t.Error(err)
				}
				answers[k] <- res
			})
			require.Eventually(t, func() bool {
				if q() == nil {
					return false
				}
				// The first leads (busy, nothing pending); the others queue.
				n, busy := pending()
				return busy && n == k
			}, 10*time.Second, time.Millisecond, "request %d leads or queues", k)
		}
		require.NoError(t, tx.Rollback(grouped.ctx))
		conn.Release()
		wg.Wait()
		// Each item's incident is its alert's, as stored (or the one that
		// incident was merged into since).
		stored := map[string]int64{}
		rows, err := grouped.pool.Query(grouped.ctx, `SELECT a.id, a.incident_id FROM hunting_alerts a`)
		require.NoError(t, err)
		for rows.Next() {
			var id string
			var inc int64
			require.NoError(t, rows.Scan(&id, &inc))
			stored[id] = inc
		}
		require.NoError(t, rows.Err())
		final := func(inc int64) int64 {
			for {
				var into int64
				require.NoError(t, grouped.pool.QueryRow(grouped.ctx, `SELECT coalesce(merged_into, 0) FROM hunting_incidents WHERE id = $1`, inc).Scan(&into))
				if into == 0 {
					return inc
				}
				inc = into
			}
		}
		for k := range requests {
			res := <-answers[k]
			require.NotNil(t, res)
			require.Len(t, res.Items, size)
			for i, it := range res.Items {
				require.Equal(t, i, it.Index)
				require.Equal(t, stored[it.ID], final(it.IncidentID), "round %d request %d item %d %s", r, k, i, it.ID)
				w := want[it.ID]
				require.Equal(t, w.Status, it.Status, "round %d request %d item %d", r, k, i)
				require.Equal(t, w.IncidentID, it.IncidentID, "round %d request %d item %d", r, k, i)
			}
		}
		require.Equal(t, snapshotHunting(t, one), snapshotHunting(t, grouped), "round %d", r)
	}
	require.NotZero(t, one.count(t, `SELECT count(*) FROM hunting_incidents WHERE alert_count > 1`), "alerts were correlated")
	require.NotZero(t, one.count(t, `SELECT count(*) FROM hunting_merges`), "incidents were merged")
}

// TestGroupAnswersWithinEachDeadline: with the org's transactions stuck
// (here its lock held from outside, as by a database that does not answer),
// a request queued behind a group leaves the queue at its own deadline, and
// the group ends at its requests' earliest deadline instead of running on
// for minutes: every sender gets an error the intake answers with 503 and
// Retry-After, nothing is stored, and the queue serves the next request.
func TestGroupAnswersWithinEachDeadline(t *testing.T) {
	t.Parallel()
	f := setup(t)
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(f.ctx) }()
	_, err = tx.Exec(f.ctx, lockOrgSQL, "contoso")
	require.NoError(t, err)

	send := func(id string, within time.Duration) chan error {
		ch := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(f.ctx, within)
			defer cancel()
			_, err := f.svc.Ingest(ctx, []RawAlert{gen{ID: id, Device: "pc-" + id}.raw()})
			ch <- err
		}()
		return ch
	}
	q := func() *orgQueue {
		f.svc.groups.mu.Lock()
		defer f.svc.groups.mu.Unlock()
		return f.svc.groups.orgs["contoso"]
	}
	leader := send("lead", 500*time.Millisecond)
	require.Eventually(t, func() bool { return q() != nil }, 10*time.Second, time.Millisecond)
	queued := send("queued", 300*time.Millisecond)
	for name, ch := range map[string]chan error{"leader": leader, "queued": queued} {
		select {
		case err := <-ch:
			require.Error(t, err, name)
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
			require.True(t, storeUnavailable(err), "%s: answered 503: %v", name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer 10 s into a 0.5 s deadline", name)
		}
	}
	require.NoError(t, tx.Rollback(f.ctx))
	require.Zero(t, f.count(t, `SELECT count(*) FROM hunting_alerts`), "nothing stored")

	res, err := f.svc.Ingest(f.ctx, []RawAlert{gen{ID: "after", Device: "pc-after"}.raw()})
	require.NoError(t, err, "the queue moved on")
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}

// TestLeavingHandsOnTheLead: a request that leaves the queue just as it was
// given the lead hands it to the next one, or frees the queue, so that the
// org's intake never waits for a leader that is gone.
func TestLeavingHandsOnTheLead(t *testing.T) {
	t.Parallel()
	req := func() *groupReq { return &groupReq{done: make(chan error, 1), lead: make(chan struct{}, 1)} }
	r1, r2, r3 := req(), req(), req()
	q := &orgQueue{pending: []*groupReq{r1, r2, r3}, busy: true}
	r1.lead <- struct{}{}
	require.True(t, q.leave(r1))
	require.Len(t, r2.lead, 1, "the next one leads")
	require.True(t, q.busy)

	require.True(t, q.leave(r3), "a queued request without the lead just leaves")
	require.Len(t, r2.lead, 1)
	require.Equal(t, []*groupReq{r2}, q.pending)

	<-r2.lead
	r2.lead <- struct{}{}
	require.True(t, q.leave(r2))
	require.False(t, q.busy, "the last one frees the queue")
	require.Empty(t, q.pending)
	require.False(t, q.leave(r2), "no longer queued: its group answers it")
}

// TestShortOfTimeRequestLeavesTheGroup: a request with all but no time left
// is answered at once (the intake's 503) instead of bringing its deadline
// into a group, which would end the others' transaction with it.
func TestShortOfTimeRequestLeavesTheGroup(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	req := func(id string, left time.Duration) *groupReq {
		return &groupReq{alerts: []*Alert{{Source: SourceDefender, ID: id, Org: "contoso", Severity: SeverityLow, Created: at}},
			idx: []int{0}, out: make([]ItemResult, 1), done: make(chan error, 1), lead: make(chan struct{}, 1), deadline: time.Now().Add(left)}
	}
	short, long := req("short", 100*time.Millisecond), req("long", time.Minute)
	q := &orgQueue{pending: []*groupReq{short, long}, busy: true}
	f.svc.leadGroup(f.ctx, "contoso", q)
	err := <-short.done
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, storeUnavailable(err))
	require.NoError(t, <-long.done)
	require.Equal(t, StatusAccepted, long.out[0].Status)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))

	// Alone, short of time or not, it is tried.
	alone := req("alone", 500*time.Millisecond)
	q = &orgQueue{pending: []*groupReq{alone}, busy: true}
	f.svc.leadGroup(f.ctx, "contoso", q)
	require.NoError(t, <-alone.done)
	require.False(t, q.busy)
}

// snapshotHunting is what hunting stored, table by table, in a form two
// fixtures can be compared by.
func snapshotHunting(t *testing.T, f *fixture) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT id, status, coalesce(merged_into, 0), alert_count, device_count, user_count, score, severity, title, summary,
                coalesce(next_due_at::text, ''), breakdown::text FROM hunting_incidents ORDER BY id`,
		`SELECT incident_id, kind, value, display, alt, join_key, first_seen, last_seen FROM hunting_incident_entities ORDER BY 1, 2, 3`,
		`SELECT id, incident_id, content_hash, evidence::text FROM hunting_alerts ORDER BY id`,
		`SELECT from_id, into_id, alert_id, reason FROM hunting_merges ORDER BY id`,
		`SELECT kind, stream, payload::text FROM outbox ORDER BY id`,
		`SELECT kind, value, device, last_seen FROM hunting_entity_devices ORDER BY 1, 2, 3`,
	} {
		rows, err := f.pool.Query(f.ctx, q)
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			out = append(out, fmt.Sprint(vals...))
		}
		require.NoError(t, rows.Err())
		out = append(out, "--")
	}
	return out
}
