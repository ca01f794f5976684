// Package lifecycle is how threatdesk's long-running parts start and stop.
//
// Every service (the bot, each chat adapter, casework's and hunting's
// schedulers, the embedded PostgreSQL's supervisor) owns one Group. The
// Group gives it the same rules everywhere:
//
//   - Start runs once. A second Start is an error (ErrStarted), and so is a
//     Start after Stop (ErrStopped). A Start that fails has started nothing:
//     the goroutines it began are stopped and waited for, and Start may be
//     tried again.
//   - Stop is: cancel, then wait. It may be called before Start (it then
//     waits for the work already handed to the group), more than once, and
//     from several goroutines; every call returns when the group has ended,
//     with the same result.
//   - Every goroutine of the service is started through its Group (Go for
//     loops, GoWork for work on behalf of an inbound event), so that Stop
//     waits for all of them. A panic in one becomes an error: logged with
//     its stack, counted in threatdesk_panics_total{component}, and returned
//     by Stop; the process goes on.
//   - Guard is the panic boundary for one event or row: a service calls it
//     where it hands one piece of work to code that may fail, and turns the
//     error into the answer it gives for any other failure.
//
// List starts services in order and stops them in reverse; cmd/threatdesk
// starts everything through one.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Service is a long-running part: Start returns once it runs (its work goes
// on in goroutines of its own), Stop ends it and returns when it has ended.
// Both follow the package's rules.
type Service interface {
	Start(ctx context.Context) error
	Stop() error
}

var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("already started")
	// ErrStopped is returned by Start after Stop.
	ErrStopped = errors.New("stopped")
)

// Options tune a Group. The zero value is usable.
type Options struct {
	// Log receives recovered panics and what Stop has to say. Tag it with the
	// component once (the Group adds nothing). Default: discarded.
	Log *slog.Logger
	// Registerer receives threatdesk_panics_total, shared by every component
	// registered on it. Optional.
	Registerer prometheus.Registerer
	// Grace is how long Stop lets goroutines finish after it has cancelled
	// the loops, before it cancels the work started with GoWork too. Zero:
	// both are cancelled at once.
	Grace time.Duration
}

type state int

const (
	idle state = iota
	running
	stopped
)

// Group runs one service's goroutines and owns its start and stop.
//
// Its goroutines see one of two contexts. Loops (Go) get the run context: it
// ends when Stop begins, or when the context given to Start ends. Work
// (GoWork) gets the work context: it outlives Start's context and ends
// Options.Grace after Stop begins, so that work in flight can finish.
type Group struct {
	component string
	log       *slog.Logger
	panics    prometheus.Counter
	grace     time.Duration

	// stopping ends when Stop begins; work ends Grace later (stopping is
	// its child, so cancelling work ends both).
	work, stopping         context.Context
	cancelWork, cancelStop context.CancelCauseFunc

	// startMu serialises Start and Stop.
	startMu sync.Mutex

	// mu guards what follows, and every Add on the WaitGroups: once state
	// is stopped nothing is added, so Stop's Wait is never raced.
	mu    sync.Mutex
	state state
	run   context.Context // the loops' context: stopping before Start
	loops sync.WaitGroup
	all   sync.WaitGroup
	errs  []error

	done    chan struct{} // closed when Stop has finished
	stopErr error
}

// New returns a Group for the component named (the label of its panics in
// threatdesk_panics_total).
func New(component string, o Options) (*Group, error) {
	if component == "" {
		return nil, errors.New("lifecycle: a component name is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Grace < 0 {
		return nil, fmt.Errorf("lifecycle: %s: negative grace %s", component, o.Grace)
	}
	vec, err := panicsVec(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: %s: %w", component, err)
	}
	g := &Group{component: component, log: o.Log, panics: vec.WithLabelValues(component), grace: o.Grace, done: make(chan struct{})}
	g.work, g.cancelWork = context.WithCancelCause(context.Background())
	g.stopping, g.cancelStop = context.WithCancelCause(g.work)
	g.run = g.stopping
	return g, nil
}

// Start runs start with the run context, once. Goroutines start may begin
// with Go run until Stop, or until ctx ends. When start fails (or panics),
// what it began is stopped and waited for and the error is returned; the
// Group may then be started again.
func (g *Group) Start(ctx context.Context, start func(ctx context.Context) error) error {
	g.startMu.Lock()
	defer g.startMu.Unlock()
	g.mu.Lock()
	switch g.state {
	case running:
		g.mu.Unlock()
		return fmt.Errorf("%s: %w", g.component, ErrStarted)
	case stopped:
		g.mu.Unlock()
		return fmt.Errorf("%s: %w", g.component, ErrStopped)
	}
	run, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(g.stopping, func() { cancel(context.Cause(g.stopping)) })
	g.run, g.state = run, running
	g.mu.Unlock()

	err := g.Guard("start", func() error { return start(run) })
	if err == nil {
		return nil
	}
	cancel(err)
	unhook()
	g.loops.Wait()
	g.mu.Lock()
	g.run, g.state = g.stopping, idle
	g.mu.Unlock()
	return err
}

// errStopping is the cause of the contexts Stop cancels.
var errStopping = errors.New("stopping")

// Stop cancels the loops, lets every goroutine finish for up to
// Options.Grace, cancels the work, and waits for all of them. It returns
// the errors the goroutines ended with (a panic is one), joined; every call
// returns the same.
func (g *Group) Stop() error {
	g.cancelStop(errStopping) // at once, so that a Start in progress gives up
	g.startMu.Lock()
	defer g.startMu.Unlock()
	g.mu.Lock()
	if g.state == stopped {
		g.mu.Unlock()
		<-g.done
		return g.stopErr
	}
	g.state = stopped
	g.mu.Unlock()

	ended := make(chan struct{})
	go func() { // the group's own: it ends with the last of the others
		g.all.Wait()
		close(ended)
	}()
	if g.grace > 0 {
		t := time.NewTimer(g.grace)
		select {
		case <-ended:
		case <-t.C:
			g.log.Warn("stopping with work in flight after the grace period; cancelling it", "grace", g.grace)
		}
		t.Stop()
	}
	g.cancelWork(errStopping)
	<-ended
	g.mu.Lock()
	g.stopErr = errors.Join(g.errs...)
	g.mu.Unlock()
	close(g.done)
	return g.stopErr
}

// Go starts a loop: f gets the run context (see Group). It reports whether
// f was started: after Stop it is not.
func (g *Group) Go(name string, f func(ctx context.Context) error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stopped {
		return false
	}
	g.loops.Add(1)
	g.all.Add(1)
	ctx := g.run
	go func() {
		defer g.all.Done()
		defer g.loops.Done()
		g.ended(name, ctx, g.Guard(name, func() error { return f(ctx) }))
	}()
	return true
}

// GoWork starts work on behalf of an inbound event: f gets the work context
// (see Group), before Start as after. It reports whether f was started:
// after Stop it is not, and the caller answers as it would if it could not
// do the work now.
func (g *Group) GoWork(name string, f func(ctx context.Context) error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stopped {
		return false
	}
	g.all.Add(1)
	go func() {
		defer g.all.Done()
		g.ended(name, g.work, g.Guard(name, func() error { return f(g.work) }))
	}()
	return true
}

// WorkContext is the work context (see Group), for work a loop does in
// place that should finish as GoWork's does.
func (g *Group) WorkContext() context.Context { return g.work }

// Stopping is closed when Stop begins: work that only waits (a timer that
// may fire later) selects on it, so that Stop does not wait for it.
func (g *Group) Stopping() <-chan struct{} { return g.stopping.Done() }

// ended records the error a goroutine ended with. A goroutine that returns
// the cancellation of its own context has simply stopped.
func (g *Group) ended(name string, ctx context.Context, err error) {
	if err == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return
	}
	if _, isPanic := errors.AsType[*PanicError](err); !isPanic {
		g.log.Error("a goroutine ended with an error", "goroutine", name, "err", err)
	}
	g.mu.Lock()
	g.errs = append(g.errs, fmt.Errorf("%s: %s: %w", g.component, name, err))
	g.mu.Unlock()
}
