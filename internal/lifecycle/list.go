package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// List is services started in the order they were added and stopped in
// reverse. It is a Service itself, with the same rules: started once, Stop
// safe before Start and more than once.
type List struct {
	life *Group
	log  *slog.Logger

	mu      sync.Mutex
	items   []entry
	started int // how many of items, from the first, are started

	stopOnce sync.Once
	stopErr  error
}

type entry struct {
	name string
	svc  Service
}

var _ Service = (*List)(nil)

// NewList returns an empty List; log (optional) hears about each stop.
func NewList(log *slog.Logger) *List {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	life, _ := New("list", Options{Log: log}) // cannot fail: named, no registerer
	return &List{life: life, log: log}
}

// Add appends a service; add before Start.
func (l *List) Add(name string, s Service) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, entry{name: name, svc: s})
}

// Names lists the services in start order.
func (l *List) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.items))
	for i, e := range l.items {
		out[i] = e.name
	}
	return out
}

// Start starts the services in order. When one fails, those started are
// stopped in reverse and the error names the one that failed.
func (l *List) Start(ctx context.Context) error {
	return l.life.Start(ctx, func(ctx context.Context) error {
		l.mu.Lock()
		items := l.items
		l.mu.Unlock()
		for _, e := range items {
			if err := e.svc.Start(ctx); err != nil {
				if serr := l.stopStarted(); serr != nil {
					l.log.Warn("stopping after a failed start", "err", serr)
				}
				return fmt.Errorf("start %s: %w", e.name, err)
			}
			l.mu.Lock()
			l.started++
			l.mu.Unlock()
		}
		return nil
	})
}

// Stop stops the started services in reverse order and returns their
// errors, joined, each naming its service. Every call returns the same.
func (l *List) Stop() error {
	l.stopOnce.Do(func() {
		err := l.life.Stop() // a Start in progress is cancelled and waited for
		l.stopErr = errors.Join(err, l.stopStarted())
	})
	return l.stopErr
}

func (l *List) stopStarted() error {
	var errs []error
	for {
		l.mu.Lock()
		if l.started == 0 {
			l.mu.Unlock()
			return errors.Join(errs...)
		}
		l.started--
		e := l.items[l.started]
		l.mu.Unlock()
		if err := e.svc.Stop(); err != nil {
			l.log.Warn("stop", "component", e.name, "err", err)
			errs = append(errs, fmt.Errorf("stop %s: %w", e.name, err))
		} else {
			l.log.Debug("stopped", "component", e.name)
		}
	}
}
