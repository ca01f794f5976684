package slack

import (
	"context"
	"sync"
	"time"
)

// Reading history. Slack allows an app distributed outside the Slack
// Marketplace one call a minute of conversations.history, and one of
// conversations.replies, per workspace, with at most 15 messages a page
// (https://docs.slack.dev/reference/methods/conversations.replies; from
// March 2026 for existing installations too). Add to Slack distributes the
// app, so with it every read is paced (Config.HistoryInterval): a faster one
// would only be refused. Two readers share those calls: a delivery looking
// for a part an earlier attempt may have posted (FindPosted), on which a
// message shown once or twice depends, and the thread catch-up after a
// start, which can wait.

// distributedPage is the most messages a page holds for a distributed app.
const distributedPage = 15

// historyGate paces history reads per workspace and method.
type historyGate struct {
	interval time.Duration
	mu       sync.Mutex
	// next is when each workspace and method may read again; kept, while
	// set, is the time up to which a lookup that was told to come back
	// keeps its call from the catch-up.
	next, kept map[string]time.Time
	// taken is closed (and replaced) when a lookup takes its kept call:
	// a catch-up waiting for the kept time looks again.
	taken chan struct{}
}

func newHistoryGate(interval time.Duration) *historyGate {
	return &historyGate{interval: interval, next: map[string]time.Time{}, kept: map[string]time.Time{}, taken: make(chan struct{})}
}

// keepFor is how long a call stays kept for the lookup it was promised
// to, past its time: the lookup's retry is scheduled for then, plus the
// delivery's margin.
const keepFor = 10 * time.Second

// urgent takes a read for a lookup now, or says how long until one is
// free and keeps that one for it.
func (g *historyGate) urgent(team, method string) time.Duration {
	if g == nil || g.interval <= 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k, now := team+"/"+method, time.Now()
	if next := g.next[k]; now.Before(next) {
		g.kept[k] = next.Add(keepFor)
		return next.Sub(now)
	}
	g.next[k] = now.Add(g.interval)
	if _, ok := g.kept[k]; ok {
		delete(g.kept, k)
		close(g.taken)
		g.taken = make(chan struct{})
	}
	return 0
}

// wait takes a read for the catch-up, once one is free and kept for no
// lookup, or returns ctx's error.
func (g *historyGate) wait(ctx context.Context, team, method string) error {
	if g == nil || g.interval <= 0 {
		return nil
	}
	k := team + "/" + method
	for {
		g.mu.Lock()
		now := time.Now()
		free := g.next[k]
		if kept, ok := g.kept[k]; ok {
			if now.Before(kept) {
				free = kept
			} else {
				delete(g.kept, k)
			}
		}
		if !now.Before(free) {
			g.next[k] = now.Add(g.interval)
			g.mu.Unlock()
			return nil
		}
		taken := g.taken
		g.mu.Unlock()
		t := time.NewTimer(free.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-taken:
			t.Stop()
		case <-t.C:
		}
	}
}
