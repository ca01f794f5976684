package hunting

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// outage sits between a pool and a real PostgreSQL as its dialer: it can
// take the database away (connections cut, new ones refused), and cut the
// connection that is about to COMMIT, so a batch dies inside its
// transaction after every statement ran.
type outage struct {
	mu    sync.Mutex
	down  bool
	cutOn []byte // the message whose write cuts the connection
	cuts  int
	conns map[*flakyConn]bool
}

type flakyConn struct {
	net.Conn
	o *outage
}

func (o *outage) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &flakyConn{Conn: c, o: o}
	o.conns[fc] = true
	return fc, nil
}

// setDown takes the database away (true) or brings it back.
func (o *outage) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
	if down {
		for c := range o.conns {
			_ = c.Conn.Close()
		}
		clear(o.conns)
	}
}

func (o *outage) armCommitCut(on bool) {
	if on {
		o.armCut(commitMsg)
	} else {
		o.armCut(nil)
	}
}

// armCut cuts the connection that is about to send a message holding msg.
func (o *outage) armCut(msg []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cutOn = msg
}

func (o *outage) cutCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cuts
}

// commitMsg is a simple-protocol COMMIT as pgx sends it (Query message text).
var commitMsg = []byte("commit\x00")

func (c *flakyConn) Write(b []byte) (int, error) {
	c.o.mu.Lock()
	cut := c.o.cutOn != nil && bytes.Contains(b, c.o.cutOn)
	if cut {
		c.o.cuts++
		c.o.cutOn = nil
		c.o.down = true
		for x := range c.o.conns {
			_ = x.Conn.Close()
		}
		clear(c.o.conns)
	}
	c.o.mu.Unlock()
	if cut {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return c.Conn.Write(b)
}

// TestIntakeRidesOutAnOutage: while the database is unreachable the intake
// answers 503 with Retry-After (not 500); a batch whose connection dies just
// before COMMIT stores nothing; once the database is back the sender's retry
// stores the whole batch.
func TestIntakeRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	f, o, reg := outageFixture(t)
	h := f.svc.Handler()

	// Two orgs, an expert-service alert (notified at once: an outbox row).
	body := batch(t,
		gen{ID: "o1", Tenant: tenantContoso, Device: "ws1", Source: "ThreatExperts", Severity: "High", Title: "Targeted attack"},
		gen{ID: "o2", Tenant: tenantFabrikam, Device: "fab1"},
		gen{ID: "o3", Tenant: tenantContoso, Device: "ws1"})
	send := func() *httptest.ResponseRecorder { return postIntake(h, body) }
	nothingStored := func(when string) {
		t.Helper()
		for _, table := range []string{"hunting_alerts", "hunting_incidents", "outbox"} {
			require.Zero(t, f.count(t, `SELECT count(*) FROM `+table), "%s: %s", when, table)
		}
	}

	o.setDown(true)
	rec := send()
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	var eb ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb))
	require.Contains(t, eb.Error, "nothing was stored")
	nothingStored("database down")

	// Back, but the connection dies as the batch commits.
	o.setDown(false)
	o.armCommitCut(true)
	for i := 0; o.cutCount() == 0; i++ {
		require.Less(t, i, 10, "the batch never reached COMMIT")
		rec = send()
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
		require.Equal(t, "5", rec.Header().Get("Retry-After"))
	}
	nothingStored("connection lost at COMMIT")

	// Back for good: the sender's retry stores the whole batch, once.
	o.setDown(false)
	for i := 0; ; i++ {
		require.Less(t, i, 10, "the intake did not recover")
		if rec = send(); rec.Code == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "stale connections are retried, never a 500: %s", rec.Body.String())
	}
	var res IngestResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	require.Equal(t, 3, res.Accepted, "nothing of the failed attempts was stored")
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	require.Positive(t, f.count(t, `SELECT count(*) FROM hunting_incidents`))
	require.Positive(t, f.count(t, `SELECT count(*) FROM outbox`), "the expert alert's notification, which the failed attempts never wrote")
	require.Equal(t, 0.0, metricValue(t, reg, "threatdesk_hunting_intake_requests_total", "500"))
	require.Positive(t, metricValue(t, reg, "threatdesk_hunting_intake_requests_total", "503"))
}

// postIntake posts body to the intake handler h with the test token.
func postIntake(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, IntakePath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// outageFixture is a service whose pool reaches its database through an
// outage; f.pool reaches it directly.
func outageFixture(t *testing.T) (*fixture, *outage, *prometheus.Registry) {
	direct, url := pgtest.NewWithURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	o := &outage{conns: map[*flakyConn]bool{}}
	cfg.ConnConfig.DialFunc = o.dial
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	clock := testclock.New(t0)
	svc, err := New(pool, Config{Orgs: testOrgs(),
		IngestToken: testToken, Now: clock.Now, GroupWait: 1}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	return &fixture{svc: svc, pool: direct, clock: clock, ctx: context.Background()}, o, reg
}

// TestIntakeAnswersOnlyWhatIsOnDisk: an ingest transaction commits without
// waiting for the disk, so that the org's next one starts at once; no
// sender is told its alerts are stored before the database confirmed them
// on disk. When the connection dies as that confirmation is asked for,
// the sender is told to retry (503, not 200), and its retry is answered
// item by item as usual.
func TestIntakeAnswersOnlyWhatIsOnDisk(t *testing.T) {
	t.Parallel()
	f, o, _ := outageFixture(t)
	h := f.svc.Handler()
	body := batch(t, gen{ID: "d1", Device: "ws1"}, gen{ID: "d2", Device: "ws2"})
	send := func() *httptest.ResponseRecorder { return postIntake(h, body) }
	o.armCut([]byte("pg_logical_emit_message"))
	rec := send()
	require.Equal(t, 1, o.cutCount(), "the answer waited for the disk")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), "they may be stored: send them again", "not 'nothing was stored'")
	f.svc.cache.mu.Lock()
	learned := len(f.svc.cache.entities) + len(f.svc.cache.recorded)
	f.svc.cache.mu.Unlock()
	require.Zero(t, learned, "what the unconfirmed commit taught the caches is forgotten")

	o.setDown(false)
	for i := 0; ; i++ {
		require.Less(t, i, 10, "the intake did not recover")
		if rec = send(); rec.Code == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	}
	var res IngestResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	require.Len(t, res.Items, 2)
	for _, it := range res.Items {
		// Stored by the first try (it committed; only its confirmation was
		// lost), so the retry finds them as they are.
		require.Equal(t, StatusUnchanged, it.Status, it.Reason)
		require.Positive(t, it.IncidentID)
	}
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}

// TestDurableFlushesTheWAL: the barrier before answering flushes the WAL
// past a transaction that committed without waiting for it. (A barrier that
// only takes a transaction id writes no WAL of its own, and PostgreSQL
// commits it without a flush.)
func TestDurableFlushesTheWAL(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lsn := pgtest.AsyncCommit(t, f.pool)
	require.NoError(t, f.svc.durable(f.ctx))
	require.True(t, pgtest.Flushed(t, f.pool, lsn), "the WAL is flushed past the asynchronous commit")

	// Every read shown to a person shows only what is on disk.
	file := strings.Repeat("ab", 32)
	inc := f.ingest(t, gen{ID: "scope", Device: "pc-s", Files: []string{file}}).Items[0].IncidentID
	for name, read := range map[string]func() error{
		"Show full scope": func() error { _, err := f.svc.FullScope(f.ctx, "contoso", inc); return err },
		"the card view":   func() error { _, err := f.svc.Incident(f.ctx, "contoso", inc); return err },
		"the list":        func() error { _, err := f.svc.Incidents(f.ctx, "contoso", FilterAll, 10); return err },
		"an alert":        func() error { _, err := f.svc.Alert(f.ctx, "contoso", "scope"); return err },
		"a device":        func() error { _, err := f.svc.Device(f.ctx, "contoso", "pc-s"); return err },
		"a file":          func() error { _, err := f.svc.File(f.ctx, "contoso", file); return err },
	} {
		lsn = pgtest.AsyncCommit(t, f.pool)
		require.NoError(t, read(), name)
		require.True(t, pgtest.Flushed(t, f.pool, lsn), "%s flushed before it answered", name)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == code {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
