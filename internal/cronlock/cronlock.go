// Package cronlock is a gocron distributed Locker backed by PostgreSQL
// session advisory locks, so that a scheduled job runs on one replica at a
// time. The lock is held on a dedicated pooled connection for the job's run
// and released when gocron unlocks it; a replica that dies mid-run drops its
// connection and with it the lock.
package cronlock

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/go-co-op/gocron/v2"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrHeld is returned when another replica holds the job's lock.
var ErrHeld = errors.New("job lock held by another replica")

// Locker takes advisory locks on a pool.
type Locker struct {
	pool *pgxpool.Pool
	ns   string
}

var _ gocron.Locker = (*Locker)(nil)

// New returns a Locker whose keys are namespaced by ns (e.g. "threatdesk").
func New(pool *pgxpool.Pool, ns string) *Locker { return &Locker{pool: pool, ns: ns} }

// Key maps a job name to the advisory lock key.
func (l *Locker) Key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(l.ns + "/cron/" + name))
	return int64(h.Sum64())
}

// Lock tries to take the lock for key without waiting.
func (l *Locker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("cronlock: acquire connection for %q: %w", key, err)
	}
	k := l.Key(key)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", k).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("cronlock: lock %q: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("cronlock: %q: %w", key, ErrHeld)
	}
	return &lock{conn: conn, key: k}, nil
}

type lock struct {
	conn *pgxpool.Conn
	key  int64
}

func (l *lock) Unlock(ctx context.Context) error {
	defer l.conn.Release()
	var ok bool
	if err := l.conn.QueryRow(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", l.key).Scan(&ok); err != nil {
		// Close the connection so the session lock cannot outlive us.
		_ = l.conn.Conn().Close(context.WithoutCancel(ctx))
		return fmt.Errorf("cronlock: unlock: %w", err)
	}
	return nil
}
