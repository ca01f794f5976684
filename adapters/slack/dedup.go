package slack

import (
	"context"
	"sync"
	"time"
)

// ReplayCache remembers signed HTTP requests so that a replay is refused:
// Seen records key and reports whether it had been recorded before. The bot
// implements it on its inbound table (bot.Bot.Seen), so that a replay is
// refused on every replica and after a restart; that table is also where
// deliveries are deduplicated, so the adapter keeps no record of its own.
type ReplayCache interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// MemoryReplayCache keeps replay keys in memory for a while. It does not
// survive a restart or span replicas: use it in tests and single-process
// development.
type MemoryReplayCache struct {
	c *ttlCache[struct{}]
}

// NewMemoryReplayCache remembers keys for ttl.
func NewMemoryReplayCache(ttl time.Duration) *MemoryReplayCache {
	return &MemoryReplayCache{c: newTTLCache[struct{}](ttl, 100000)}
}

// Seen implements ReplayCache.
func (d *MemoryReplayCache) Seen(_ context.Context, key string) (bool, error) {
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

// take is get, removing the entry.
func (c *ttlCache[V]) take(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	delete(c.m, k)
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
