package hunting

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/testclock"
)

// postQueued posts body with "Prefer: respond-async".
func postQueued(t testing.TB, h http.Handler, token string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, IntakePath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "wait=5, respond-async")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func listBody(t testing.TB, items []RawAlert) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]any{"value": items})
	require.NoError(t, err)
	return body
}

func queueDepth(t testing.TB, f *fixture) int {
	t.Helper()
	n := f.count(t, `SELECT count(*) FROM hunting_intake_queue`)
	return n
}

// TestQueuedIntakeCorrelatesAsOneRequest: a sender asking for
// respond-async is answered 202 with every admitted item "queued" and the
// others rejected as ever, before anything is correlated; drained, the
// queue leaves exactly what one request of the same alerts leaves.
func TestQueuedIntakeCorrelatesAsOneRequest(t *testing.T) {
	t.Parallel()
	const requests, size = 5, 60
	c := newCorpus(11, 40, 10)
	reqs := make([][]RawAlert, requests)
	var all []RawAlert
	for k := range reqs {
		reqs[k] = c.batch(size, t0.Add(-3*time.Hour+time.Duration(k)*5*time.Minute))
		all = append(all, reqs[k]...)
	}
	one, queued := setup(t), setup(t)
	res, err := one.svc.Ingest(one.ctx, all)
	require.NoError(t, err)
	require.Equal(t, requests*size, res.Accepted+res.Updated+res.Unchanged)

	for k, items := range reqs {
		body := listBody(t, items)
		if k == 0 {
			// One item no one could correlate: rejected in the answer, never queued.
			body = listBody(t, append([]RawAlert{gen{ID: "ahead", At: t0.Add(72 * time.Hour)}.raw()}, items...))
		}
		rec := postQueued(t, queued.svc.Handler(), testToken, body)
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		require.Equal(t, "respond-async", rec.Header().Get("Preference-Applied"))
		var got IngestResult
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		require.Equal(t, size, got.Queued)
		require.Zero(t, got.Accepted+got.Updated+got.Unchanged)
		for _, it := range got.Items {
			if it.ID == "ahead" {
				require.Equal(t, StatusRejected, it.Status)
				require.Contains(t, it.Reason, "more than a day ahead")
				continue
			}
			require.Equal(t, StatusQueued, it.Status, "%+v", it)
			require.Equal(t, "contoso", it.Org)
			require.Zero(t, it.IncidentID, "not correlated yet")
		}
	}
	require.Equal(t, requests*size, queueDepth(t, queued))
	stored := queued.count(t, `SELECT count(*) FROM hunting_alerts`)
	require.Zero(t, stored, "answered before correlation")

	n, err := queued.svc.drain(queued.ctx)
	require.NoError(t, err)
	require.Equal(t, requests*size, n)
	require.Zero(t, queueDepth(t, queued))
	require.Zero(t, testutil.ToFloat64(queued.svc.m.queueWait), "found empty")
	require.Equal(t, snapshotHunting(t, one), snapshotHunting(t, queued))
	require.Equal(t, float64(requests*size), testutil.ToFloat64(queued.svc.m.queue.WithLabelValues("contoso", "queued")))
	require.Equal(t, float64(requests*size), testutil.ToFloat64(queued.svc.m.queue.WithLabelValues("contoso", "correlated")))

	// Posted again, queued again, and correlated as unchanged: nothing moves.
	before := snapshotHunting(t, queued)
	rec := postQueued(t, queued.svc.Handler(), testToken, listBody(t, reqs[2]))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	_, err = queued.svc.drain(queued.ctx)
	require.NoError(t, err)
	require.Equal(t, before, snapshotHunting(t, queued))
}

// TestQueuedIntakeRefusesAsEver: an org's token posting another org's
// tenant is refused whole, and a list with nothing admissible is a 422:
// nothing is queued.
func TestQueuedIntakeRefusesAsEver(t *testing.T) {
	t.Parallel()
	f := setup(t, orgTokens)
	rec := postQueued(t, f.svc.Handler(), contosoToken, listBody(t, []RawAlert{
		gen{ID: "mine", At: t0.Add(-time.Hour)}.raw(),
		gen{ID: "theirs", Tenant: tenantFabrikam, At: t0.Add(-time.Hour)}.raw(),
	}))
	require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
	rec = postQueued(t, f.svc.Handler(), contosoToken, listBody(t, []RawAlert{
		gen{ID: "ahead", At: t0.Add(72 * time.Hour)}.raw(),
	}))
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "more than a day ahead")
	require.Zero(t, queueDepth(t, f))
	require.Empty(t, rec.Header().Get("Preference-Applied"))
}

// TestQueueFullAsksToRetry: with QueueMax alerts waiting, a queued request
// is answered 503 with Retry-After and nothing is stored; a synchronous
// request still goes through.
func TestQueueFullAsksToRetry(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Two rows whose numbers span QueueMax: the depth is read from the span.
	for _, seq := range []int64{1, QueueMax} {
		f.exec(t, `INSERT INTO hunting_intake_queue (seq, org, tenant, received_at, alert) VALUES ($1, 'contoso', $2, now(), $3)`,
			seq, tenantContoso, []byte(gen{ID: "waiting-" + strconv.FormatInt(seq, 10), At: t0.Add(-time.Hour)}.raw()))
	}
	body := listBody(t, []RawAlert{gen{ID: "late", At: t0.Add(-time.Hour)}.raw()})
	rec := postQueued(t, f.svc.Handler(), testToken, body)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, strconv.Itoa(RetryAfterQueueFull), rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), "nothing was stored")
	require.Equal(t, 2, queueDepth(t, f))

	code, out := post(t, f.svc.Handler(), testToken, body)
	require.Equal(t, http.StatusOK, code, string(out))
}

// TestQueuedAlertsOutliveACrash: alerts queued by a replica that died
// before correlating them are correlated by the next one to start, once;
// a drain cut off mid-transaction leaves every row it took in the queue.
func TestQueuedAlertsOutliveACrash(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := newCorpus(5, 30, 8)
	const size = 200
	for k := range 3 {
		rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, c.batch(size, t0.Add(-2*time.Hour+time.Duration(k)*time.Minute))))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	}
	require.Equal(t, 3*size, queueDepth(t, f))

	// A drain that cannot finish (the org held from outside, then its time
	// up) takes nothing for good.
	release := f.holdOrg(t, "contoso")
	short, cancel := context.WithTimeout(f.ctx, 300*time.Millisecond)
	n, err := f.svc.drain(short)
	cancel()
	require.Error(t, err)
	require.Zero(t, n)
	release()
	require.Equal(t, 3*size, queueDepth(t, f))

	// Two replicas start on the same database: between them every row is
	// correlated once.
	var reps []*Service
	ctx, stop := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	for range 2 {
		svc, err := New(f.pool, Config{Orgs: testOrgs(), IngestToken: testToken, Now: f.clock.Now}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(t, err)
		reps = append(reps, svc)
		wg.Go(func() { _ = svc.runQueue(ctx) })
	}
	require.Eventually(t, func() bool { return queueDepth(t, f) == 0 }, 30*time.Second, 20*time.Millisecond)
	stop()
	wg.Wait()
	var correlated float64
	for _, r := range reps {
		correlated += testutil.ToFloat64(r.m.queue.WithLabelValues("contoso", "correlated"))
	}
	require.Equal(t, float64(3*size), correlated)
	var stored, distinct int
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*), count(DISTINCT id) FROM hunting_alerts`).Scan(&stored, &distinct))
	require.Equal(t, distinct, stored)
	require.Positive(t, stored)
	incidents := f.count(t, `SELECT count(*) FROM hunting_incidents`)
	require.Positive(t, incidents)
}

// TestQueuedAlertThatCannotBeCorrelatedIsSetAside: a queued row that can
// never be correlated (here: not an alert at all) is set aside at once,
// with why, for an operator, and the alerts queued after it go on in the
// same step.
func TestQueuedAlertThatCannotBeCorrelatedIsSetAside(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `INSERT INTO hunting_intake_queue (org, tenant, received_at, alert) VALUES ('contoso', $1, $2, $3)`,
		tenantContoso, t0, []byte(`{"id": 7}`))
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{
		gen{ID: "good-1", At: t0.Add(-time.Hour)}.raw(), gen{ID: "good-2", At: t0.Add(-time.Hour)}.raw(),
	}))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())

	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n, "one set aside, two correlated")
	var why string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_error FROM hunting_intake_set_aside WHERE org = 'contoso'`).Scan(&why))
	require.Contains(t, why, "id")
	require.Equal(t, 1.0, testutil.ToFloat64(f.svc.m.queue.WithLabelValues("contoso", "failed")))
	require.Zero(t, queueDepth(t, f))
	stored := f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id IN ('good-1', 'good-2')`)
	require.Equal(t, 2, stored)
}

func TestWantsQueue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefer []string
		want   bool
	}{
		{nil, false},
		{[]string{"respond-async"}, true},
		{[]string{"Respond-Async"}, true},
		{[]string{"wait=10, respond-async"}, true},
		{[]string{"return=minimal", "respond-async; x=1"}, true},
		{[]string{"return=minimal"}, false},
		{[]string{"respond-asynchronously"}, false},
		{[]string{"x=respond-async"}, false},
	} {
		r := httptest.NewRequest(http.MethodPost, IntakePath, nil)
		for _, v := range tc.prefer {
			r.Header.Add("Prefer", v)
		}
		require.Equal(t, tc.want, wantsQueue(r), "%q", tc.prefer)
	}
}

// TestQueuedAlertOfATenantMovedSinceIsSetAside: a reload that takes a
// tenant from the org its alerts were queued for holds them (another
// replica may not have reloaded yet, or this one may be behind) for
// queueConfigGrace, never correlating them into an org that does not list
// the tenant, then sets them aside; the other org's alerts go on.
func TestQueuedAlertOfATenantMovedSinceIsSetAside(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{
		gen{ID: "contoso-1", At: t0.Add(-time.Hour)}.raw(), gen{ID: "fabrikam-1", Tenant: tenantFabrikam, At: t0.Add(-time.Hour)}.raw(),
	}))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	next := f.svc.cfg
	next.Orgs = []Org{{ID: "contoso"}, {ID: "fabrikam", Tenants: []string{tenantFabrikam, tenantContoso}}}
	require.NoError(t, f.svc.SetOrgs(next))
	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "fabrikam's")
	require.Equal(t, 1, queueDepth(t, f), "contoso's waits")

	f.clock.Advance(queueConfigGrace)
	n, err = f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var org, why string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT org, last_error FROM hunting_intake_set_aside`).Scan(&org, &why))
	require.Equal(t, "contoso", org)
	require.Contains(t, why, "is not one of org contoso's tenants")
	var stored []string
	rows, err := f.pool.Query(f.ctx, `SELECT org || '/' || id FROM hunting_alerts`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		stored = append(stored, s)
	}
	require.Equal(t, []string{"fabrikam/fabrikam-1"}, stored)
}

// TestStartedServiceDrainsTheQueue: a started service correlates what its
// intake queued without being asked, and Stop leaves the queue as it is.
func TestStartedServiceDrainsTheQueue(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.NoError(t, f.svc.Start(f.ctx))
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{gen{ID: "queued-1", At: t0.Add(-time.Hour)}.raw()}))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Eventually(t, func() bool {
		n := f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'queued-1' AND incident_id IS NOT NULL`)
		return n == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, queueDepth(t, f))
	require.NoError(t, f.svc.Stop())
}

// TestQueueWaitIsMeasured: the drain says how long the oldest waiting
// alert has waited, also while it cannot correlate it, and 0 once it finds
// the queue empty.
func TestQueueWaitIsMeasured(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for k := range 2 {
		rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{gen{ID: "w" + strconv.Itoa(k), At: t0.Add(-time.Hour)}.raw()}))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		f.clock.Advance(30 * time.Second)
	}
	// The org held from outside (a long sweep, say): the drain cannot
	// take its rows, and says how long they have waited.
	release := f.holdOrg(t, "contoso")
	for range 2 {
		f.clock.Advance(10 * time.Minute)
		short, cancel := context.WithTimeout(f.ctx, 200*time.Millisecond)
		_, err := f.svc.drain(short)
		cancel()
		require.Error(t, err)
	}
	require.Equal(t, (20*time.Minute + time.Minute).Seconds(), testutil.ToFloat64(f.svc.m.queueWait), "the oldest has waited 21 minutes")
	release()
	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Zero(t, testutil.ToFloat64(f.svc.m.queueWait))
}

// TestQueuedAlertIsAdmittedAsWhenReceived: the drain judges a queued alert
// by the time it was received, not by its own: a lastUpdate stamped ahead
// is brought back to the time it was sent, however late the drain (else it
// pinned the alert against the real update after it), and an alert
// admitted with a day's skew is not refused by a replica whose clock is a
// little behind.
func TestQueuedAlertIsAdmittedAsWhenReceived(t *testing.T) {
	t.Parallel()
	t.Run("forged lastUpdate", func(t *testing.T) {
		t.Parallel()
		for _, ahead := range []time.Duration{10 * time.Minute, 23 * time.Hour} {
			f := setup(t)
			g := gen{ID: "pin", Device: "ws-pin", At: t0.Add(-time.Hour), Status: "New"}
			f.ingest(t, g)
			forged := g
			forged.Status, forged.Class = "Resolved", "FalsePositive"
			raw := withFields(t, forged.raw(), map[string]any{"lastUpdateTime": t0.Add(ahead).Format(time.RFC3339Nano)})
			rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{raw}))
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			// The real update, sent after the forged one and correlated
			// while it waits in the queue.
			f.clock.Advance(2 * time.Minute)
			real := g
			real.Status, real.Last = "InProgress", f.clock.Now().Add(-time.Minute)
			f.ingest(t, real)
			f.clock.Advance(8 * time.Minute)
			_, err := f.svc.drain(f.ctx)
			require.NoError(t, err)
			a, err := f.svc.Alert(f.ctx, "contoso", "pin")
			require.NoError(t, err)
			require.Equal(t, "inprogress", a.Status, "lastUpdate %v ahead", ahead)
		}
	})
	t.Run("a replica a little behind", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{gen{ID: "edge", At: t0.Add(24*time.Hour - 3*time.Minute)}.raw()}))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		behind, err := New(f.pool, Config{Orgs: testOrgs(), IngestToken: testToken, Now: testclock.New(t0.Add(-2 * time.Minute)).Now},
			slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(t, err)
		n, err := behind.drain(f.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

// TestQueuedVersionsKeepTheirOrderAcrossReplicas: four replicas drain an
// org at once while its lock is held (a sweep, a synchronous request), and
// two of them are stopped meanwhile (a rolling deploy): the org's versions
// are correlated in the order they were queued (two versions with the same
// lastUpdate: the later one stays), and no try is counted against a row
// for a replica that only waited.
func TestQueuedVersionsKeepTheirOrderAcrossReplicas(t *testing.T) {
	t.Parallel()
	f := setup(t)
	g := gen{ID: "ord", Device: "ws-ord", At: t0.Add(-time.Hour), Status: "New"}
	v1, v2 := g, g
	v1.Title, v2.Title = "first", "second"
	for _, v := range []gen{v1, v2} {
		rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{v.raw()}))
		require.Equal(t, http.StatusAccepted, rec.Code)
	}
	release := f.holdOrg(t, "contoso")
	waiting := func(n int) func() bool {
		return func() bool {
			got := f.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
			return got == n
		}
	}
	var stops []context.CancelFunc
	var dones []chan error
	for i := range 4 {
		svc, err := New(f.pool, Config{Orgs: testOrgs(), IngestToken: testToken, Now: f.clock.Now}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(t, err)
		svc.queueLockWait = time.Minute
		ctx, stop := context.WithCancel(f.ctx)
		done := make(chan error, 1)
		go func() { _, err := svc.drain(ctx); done <- err }()
		require.Eventually(t, waiting(i+1), 10*time.Second, 5*time.Millisecond, "replica %d waits for the org", i)
		stops, dones = append(stops, stop), append(dones, done)
	}
	for i := range 2 {
		stops[i]()
		require.Error(t, <-dones[i])
	}
	release()
	for i := 2; i < 4; i++ {
		require.NoError(t, <-dones[i])
		stops[i]()
	}
	require.Zero(t, queueDepth(t, f))
	al, err := f.svc.Alert(f.ctx, "contoso", "ord")
	require.NoError(t, err)
	require.Equal(t, "second", al.Title, "the version queued first overwrote the later one")
	aside := f.count(t, `SELECT count(*) FROM hunting_intake_set_aside`)
	require.Zero(t, aside)
}

// TestQueueTakesItemsOfBoundedSize: an item over queueItemMax is rejected
// from the queue (a chunk of them would take gigabytes to correlate), and a
// chunk is cut at queueChunkBytes, whatever its count.
func TestQueueTakesItemsOfBoundedSize(t *testing.T) {
	t.Parallel()
	f := setup(t)
	big := withFields(t, gen{ID: "big", At: t0.Add(-time.Hour)}.raw(), map[string]any{"description": strings.Repeat("x", queueItemMax)})
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{big, gen{ID: "small", At: t0.Add(-time.Hour)}.raw()}))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var res IngestResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	require.Equal(t, StatusRejected, res.Items[0].Status)
	require.Contains(t, res.Items[0].Reason, "send it without Prefer: respond-async")
	require.Equal(t, StatusQueued, res.Items[1].Status)
	require.Equal(t, 1, queueDepth(t, f))

	// Rows of 40 MiB in all: two chunks.
	item := withFields(t, gen{ID: "x", At: t0.Add(-time.Hour)}.raw(), map[string]any{"description": strings.Repeat("y", 1<<20-4096)})
	for k := range 40 {
		raw := withFields(t, item, map[string]any{"id": "mid-" + strconv.Itoa(k)})
		rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{raw}))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	}
	n, err := f.svc.drainOrg(f.ctx, "contoso")
	require.NoError(t, err)
	require.Equal(t, 33, n, "the small one and 32 of about 1 MiB: 32 MiB in one chunk")
	require.Equal(t, 8, queueDepth(t, f))
}

// TestUnfinishedChunkGoesRowByRow: a chunk begun and never finished (a
// crash: its record is left over) has its rows tried one at a time, in
// order, each try counted before it starts, so that a row that brings the
// process down is set aside after queueMaxAttempts tries that never ended
// instead of crashing every replica for ever; a chunk that finishes counts
// nothing.
func TestUnfinishedChunkGoesRowByRow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Every try counted, as it is counted.
	f.exec(t, `
CREATE TABLE tries (seq bigint, attempts int, at serial);
CREATE FUNCTION log_try() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.attempts <> OLD.attempts THEN INSERT INTO tries (seq, attempts) VALUES (NEW.seq, NEW.attempts); END IF; RETURN NEW; END $$;
CREATE TRIGGER log_try AFTER UPDATE ON hunting_intake_queue FOR EACH ROW EXECUTE FUNCTION log_try()`)
	tries := func() []string {
		rows, err := f.pool.Query(f.ctx, `SELECT seq || ':' || attempts FROM tries ORDER BY at`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	var items []RawAlert
	for k := range 4 {
		items = append(items, gen{ID: "r" + strconv.Itoa(k), At: t0.Add(-time.Hour)}.raw())
	}
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, items))
	require.Equal(t, http.StatusAccepted, rec.Code)
	var seqs []int64
	rows, err := f.pool.Query(f.ctx, `SELECT seq FROM hunting_intake_queue ORDER BY seq`)
	require.NoError(t, err)
	seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	// The process went down during a chunk of the first three, and twice
	// already during the tries of the second one alone (three tries in all
	// that never ended).
	f.exec(t, `INSERT INTO hunting_intake_chunks (org, first_seq, last_seq) VALUES ('contoso', $1, $2)`, seqs[0], seqs[2])
	f.exec(t, `UPDATE hunting_intake_queue SET attempts = $2 WHERE seq = $1`, seqs[1], queueMaxAttempts)
	f.exec(t, `DELETE FROM tries`)

	n, err := f.svc.drainOrg(f.ctx, "contoso")
	require.NoError(t, err)
	require.Equal(t, 3, n, "the chunk's rows, one at a time")
	s := func(i int, attempts int) string { return strconv.FormatInt(seqs[i], 10) + ":" + strconv.Itoa(attempts) }
	require.Equal(t, []string{s(0, 1), s(1, queueMaxAttempts+1), s(2, 1)}, tries(), "each try counted before it starts")
	var why string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT last_error FROM hunting_intake_set_aside WHERE seq = $1`, seqs[1]).Scan(&why))
	require.Contains(t, why, "no try ended")
	left := f.count(t, `SELECT count(*) FROM hunting_intake_chunks`)
	require.Zero(t, left)

	f.exec(t, `DELETE FROM tries`)
	n, err = f.svc.drainOrg(f.ctx, "contoso")
	require.NoError(t, err)
	require.Equal(t, 1, n, "the fourth, as a chunk")
	require.Empty(t, tries(), "a chunk that finishes counts no try")
	left = f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id IN ('r0', 'r2', 'r3')`)
	require.Equal(t, 3, left)
}

// TestStopMidTryIsNotCounted: a try of a queued alert cut off by this
// replica's own stop is taken back (the connection it ran on dies with the
// stop, so the count is taken back on another), however often it happens:
// the alert is correlated in the end, not set aside as one whose tries
// never ended.
func TestStopMidTryIsNotCounted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{gen{ID: "good", At: t0.Add(-time.Hour)}.raw()}))
	require.Equal(t, http.StatusAccepted, rec.Code)
	var seq int64
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT seq FROM hunting_intake_queue`).Scan(&seq))
	f.exec(t, `INSERT INTO hunting_intake_chunks (org, first_seq, last_seq) VALUES ('contoso', $1, $1)`, seq)
	for range queueMaxAttempts + 1 {
		slow, err := f.pool.Begin(f.ctx) // holds the try up
		require.NoError(t, err)
		t.Cleanup(func() { _ = slow.Rollback(context.Background()) })
		_, err = slow.Exec(f.ctx, `LOCK TABLE hunting_alerts IN ACCESS EXCLUSIVE MODE`)
		require.NoError(t, err)
		ctx, stop := context.WithCancel(f.ctx)
		time.AfterFunc(300*time.Millisecond, stop)
		_, err = f.svc.drainOrg(ctx, "contoso")
		require.Error(t, err)
		require.NoError(t, slow.Rollback(f.ctx))
	}
	require.Eventually(t, func() bool {
		var attempts int
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT attempts FROM hunting_intake_queue`).Scan(&attempts))
		return attempts == 0
	}, 5*time.Second, 10*time.Millisecond, "every stopped try taken back")
	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	stored := f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'good'`)
	require.Equal(t, 1, stored)
}

// TestOneOrgsFailureDoesNotHoldTheOthers: an org whose alert keeps failing
// with an error the database calls passing (a serialization failure, here
// forced) neither stops the other orgs' drain nor is tried for ever: its
// tries count, and it is set aside.
func TestOneOrgsFailureDoesNotHoldTheOthers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
CREATE FUNCTION stuck() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.id = 'stuck' THEN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$;
CREATE TRIGGER stuck BEFORE INSERT ON hunting_alerts FOR EACH ROW EXECUTE FUNCTION stuck()`)
	rec := postQueued(t, f.svc.Handler(), testToken, listBody(t, []RawAlert{
		gen{ID: "stuck", At: t0.Add(-time.Hour)}.raw(), gen{ID: "fabrikam-1", Tenant: tenantFabrikam, At: t0.Add(-time.Hour)}.raw(),
	}))
	require.Equal(t, http.StatusAccepted, rec.Code)
	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "fabrikam's correlated, contoso's set aside")
	stored := f.count(t, `SELECT count(*) FROM hunting_alerts WHERE id = 'fabrikam-1'`)
	require.Equal(t, 1, stored)
	var attempts int
	var why string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT attempts, last_error FROM hunting_intake_set_aside`).Scan(&attempts, &why))
	require.Equal(t, queueMaxAttempts, attempts)
	require.Contains(t, why, "forced")
	require.Zero(t, queueDepth(t, f))
}

// TestSetAsideKeepsEveryAlert: an alert set aside under the number of one
// set aside before (the sequence restarted, say) is kept beside it.
func TestSetAsideKeepsEveryAlert(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `INSERT INTO hunting_intake_set_aside (org, seq, tenant, received_at, set_aside_at, attempts, last_error, alert)
VALUES ('contoso', 1, $1, $2, $2, 0, 'earlier', '\x00')`, tenantContoso, t0)
	f.exec(t, `INSERT INTO hunting_intake_queue (seq, org, tenant, received_at, alert) VALUES (1, 'contoso', $1, $2, $3)`,
		tenantContoso, t0, []byte(`{"id": 7}`))
	n, err := f.svc.drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	kept := f.count(t, `SELECT count(*) FROM hunting_intake_set_aside WHERE org = 'contoso' AND seq = 1`)
	require.Equal(t, 2, kept)
}

// holdOrg takes org's lock from outside, as a long sweep or a synchronous
// request would, until release (or the end of the test).
func (f *fixture) holdOrg(t testing.TB, org string) (release func()) {
	t.Helper()
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(f.ctx, lockOrgSQL, org)
	require.NoError(t, err)
	return func() { require.NoError(t, tx.Rollback(f.ctx)) }
}

// TestRowByRowKeepsTheChunkRecordUntilTheEnd: a chunk gone through one row
// at a time keeps its record until every row is done with, so that a crash
// in the middle of it still has the rest tried one at a time (the first
// row correlated alone deleted the record, and the next step took the rest,
// and any row that brings the process down, as a whole chunk again).
func TestRowByRowKeepsTheChunkRecordUntilTheEnd(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The second row's tenant is not contoso's in this config, and it was
	// received just now: it waits, and the row-by-row step stops there.
	for _, r := range []struct{ id, tenant string }{{"r0", tenantContoso}, {"r1", tenantFabrikam}, {"r2", tenantContoso}} {
		f.exec(t, `INSERT INTO hunting_intake_queue (org, tenant, received_at, alert) VALUES ('contoso', $1, $2, $3)`,
			r.tenant, t0, []byte(gen{ID: r.id, Tenant: r.tenant, At: t0.Add(-time.Hour)}.raw()))
	}
	f.exec(t, `INSERT INTO hunting_intake_chunks (org, first_seq, last_seq) SELECT 'contoso', min(seq), max(seq) FROM hunting_intake_queue`)
	n, err := f.svc.drainOrg(f.ctx, "contoso")
	require.NoError(t, err)
	require.Equal(t, 1, n, "r0, then r1 waits")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_intake_chunks`), "the rest of the chunk still goes one at a time")
	require.Equal(t, 2, queueDepth(t, f))
}
