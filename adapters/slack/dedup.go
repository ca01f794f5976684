package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Deduper remembers inbound delivery keys. Seen records key and reports
// whether it had been recorded before, so that a redelivery (Socket Mode
// retry_attempt > 0, HTTP X-Slack-Retry-Num, a replayed signature) is not
// processed twice.
type Deduper interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// pruner is a Deduper that forgets old keys; Start calls it hourly.
type pruner interface {
	Prune(ctx context.Context, olderThan time.Duration) (int64, error)
}

// DedupTable is the table PGDeduper uses. Its schema:
//
//	CREATE TABLE slack_inbound_seen (
//	    key     text PRIMARY KEY,
//	    seen_at timestamptz NOT NULL DEFAULT now()
//	);
//	CREATE INDEX slack_inbound_seen_seen_at ON slack_inbound_seen (seen_at);
const DedupTable = "slack_inbound_seen"

// Execer is the part of a pgx pool PGDeduper needs (*pgxpool.Pool has it).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PGDeduper keeps delivery keys in Postgres, so deduplication holds across
// restarts and replicas.
type PGDeduper struct {
	db Execer
}

// NewPGDeduper returns a Deduper over the DedupTable in db.
func NewPGDeduper(db Execer) *PGDeduper { return &PGDeduper{db: db} }

// Seen implements Deduper.
func (d *PGDeduper) Seen(ctx context.Context, key string) (bool, error) {
	tag, err := d.db.Exec(ctx, `INSERT INTO slack_inbound_seen (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, key)
	if err != nil {
		return false, fmt.Errorf("record slack delivery: %w", err)
	}
	return tag.RowsAffected() == 0, nil
}

// Prune forgets keys older than olderThan (Slack stops retrying after about
// an hour; a day is plenty).
func (d *PGDeduper) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := d.db.Exec(ctx, `DELETE FROM slack_inbound_seen WHERE seen_at < now() - $1::interval`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("prune slack deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MemoryDeduper keeps delivery keys in memory for a while. It does not
// survive a restart: use it in tests and single-process development.
type MemoryDeduper struct {
	c *ttlCache[struct{}]
}

// NewMemoryDeduper remembers keys for ttl.
func NewMemoryDeduper(ttl time.Duration) *MemoryDeduper {
	return &MemoryDeduper{c: newTTLCache[struct{}](ttl, 100000)}
}

// Seen implements Deduper.
func (d *MemoryDeduper) Seen(_ context.Context, key string) (bool, error) {
	return !d.c.add(key, struct{}{}), nil
}

// ttlCache is a small map whose entries expire. When full it drops the
// expired entries, then the oldest.
type ttlCache[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	limit int
	m     map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v  V
	at time.Time
}

func newTTLCache[V any](ttl time.Duration, limit int) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, limit: limit, m: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || time.Since(e.at) > c.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store(k, v)
}

// add stores v unless a live entry exists; it reports whether it stored.
func (c *ttlCache[V]) add(k string, v V) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && time.Since(e.at) <= c.ttl {
		return false
	}
	c.store(k, v)
	return true
}

func (c *ttlCache[V]) store(k string, v V) {
	if len(c.m) >= c.limit {
		now := time.Now()
		var oldest string
		var oldestAt time.Time
		for key, e := range c.m {
			if now.Sub(e.at) > c.ttl {
				delete(c.m, key)
				continue
			}
			if oldest == "" || e.at.Before(oldestAt) {
				oldest, oldestAt = key, e.at
			}
		}
		if len(c.m) >= c.limit {
			delete(c.m, oldest)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, at: time.Now()}
}

// prune forgets day-old delivery keys every hour until ctx ends.
func (a *Adapter) prune(ctx context.Context, p pruner) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := p.Prune(ctx, 24*time.Hour); err != nil {
				a.log.Warn("pruning Slack delivery keys failed", "err", err)
			} else if n > 0 {
				a.log.Debug("pruned Slack delivery keys", "count", n)
			}
		}
	}
}
