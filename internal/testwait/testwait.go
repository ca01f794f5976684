// Package testwait lets tests wait on events rather than on time: on a
// value the code under test sends on a channel (WaitOrTimeout), or on a
// condition checked again each time a fake says it recorded something
// (For, with a Signal the fake notifies). A wait that times out fails the
// test naming what it waited for; none of them polls.
package testwait

import (
	"sync"
	"testing"
	"time"
)

// WaitOrTimeout returns the next value from ch, or fails the test after
// timeout saying that what never came.
func WaitOrTimeout[T any](tb testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	tb.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
	var zero T
	return zero
}

// Source is something that says when it changed: a fake server, a
// recording handler. Each subscription gets a signal after every change
// (signals that arrive while one is pending are merged); cancel ends it.
type Source interface {
	Subscribe() (changed <-chan struct{}, cancel func())
}

// For waits until cond holds, checking it at once and again each time one
// of sources signals a change, for up to timeout; then it fails the test
// saying what it waited for. cond must read only state the sources signal
// changes of, or the wait ends at the timeout.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool, sources ...Source) {
	tb.Helper()
	if !Until(timeout, cond, sources...) {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Until is For without a test: it reports whether cond held in time.
func Until(timeout time.Duration, cond func() bool, sources ...Source) bool {
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	for _, s := range sources {
		ch, cancel := s.Subscribe() // before the first check: no change is missed
		wg.Go(func() {
			defer cancel()
			for {
				select {
				case <-done:
					return
				case <-ch:
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return cond()
		}
	}
}

// Signal is a Source for fakes: Notify after recording something.
// The zero value is ready.
type Signal struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Notify signals every subscription; it never blocks.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // one is pending already
		}
	}
}

// Subscribe implements Source.
func (s *Signal) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[chan struct{}]struct{}{}
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}
