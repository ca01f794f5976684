package pgtest

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Outage makes a test database unreachable for one pool, as a restart or a
// fail-over of the server does: Down cuts the pool's open connections (the
// server terminates them) and refuses new ones (connection refused) until
// Up. Other pools on the database, such as the test's own, are untouched.
type Outage struct {
	admin *pgxpool.Pool
	app   string
	down  atomic.Bool
}

// NewWithOutage returns a fresh migrated database as New does, a second
// pool on it for the code under test, whose server can be taken away with
// the returned Outage, and the Outage. Assert through the first pool.
func NewWithOutage(t testing.TB) (healthy, flaky *pgxpool.Pool, o *Outage) {
	t.Helper()
	healthy, url := NewWithURL(t)
	o = &Outage{admin: healthy, app: "pgtest-outage-" + randomHex(6)}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse test database URL: %v", err)
	}
	cfg.MaxConns = 12
	cfg.ConnConfig.RuntimeParams["application_name"] = o.app
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	dial := &net.Dialer{Timeout: 2 * time.Second}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if o.down.Load() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return dial.DialContext(ctx, network, addr)
	}
	flaky, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	// Closed before the database is dropped (cleanups run last first).
	t.Cleanup(flaky.Close)
	return healthy, flaky, o
}

// Down takes the server away from the flaky pool.
func (o *Outage) Down(t testing.TB) {
	t.Helper()
	o.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := o.admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, o.app); err != nil {
		t.Fatalf("cut the flaky pool's connections: %v", err)
	}
}

// Up brings the server back.
func (o *Outage) Up() { o.down.Store(false) }
