// Package testclock is the settable clock the tests of every service share:
// a service takes its time from a Config.Now function, and a test passes a
// Clock's Now and moves time by hand, instead of sleeping.
package testclock

import (
	"sync"
	"time"
)

// Clock is a clock that only moves when told. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time, for a Config.Now.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
