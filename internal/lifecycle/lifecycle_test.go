package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// wait is how long a test waits for something that happens at once.
const wait = 5 * time.Second

type fixture struct {
	g   *lifecycle.Group
	reg *prometheus.Registry
	log *syncBuffer
}

func setup(t *testing.T, o lifecycle.Options) fixture {
	t.Helper()
	f := fixture{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	o.Log = slog.New(slog.NewTextHandler(f.log, nil))
	o.Registerer = f.reg
	g, err := lifecycle.New("test", o)
	require.NoError(t, err)
	f.g = g
	return f
}

// syncBuffer is a log destination goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panics reads threatdesk_panics_total{component} from reg.
func panics(t *testing.T, reg prometheus.Gatherer, component string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == component {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("threatdesk_panics_total{component=%q} is not registered", component)
	return 0
}

func nop(context.Context) error { return nil }

func TestStartedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	require.NoError(t, f.g.Start(t.Context(), nop))
	err := f.g.Start(t.Context(), nop)
	require.ErrorIs(t, err, lifecycle.ErrStarted, "a second Start is an error")
	require.Contains(t, err.Error(), "test", "the error names the component")
	require.NoError(t, f.g.Stop())
	require.ErrorIs(t, f.g.Start(t.Context(), nop), lifecycle.ErrStopped, "no Start after Stop")
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	worked := make(chan struct{})
	require.True(t, f.g.GoWork("work", func(ctx context.Context) error {
		<-ctx.Done()
		close(worked)
		return ctx.Err()
	}), "work is taken before Start")
	require.NoError(t, f.g.Stop(), "Stop before Start is safe")
	select {
	case <-worked:
	default:
		t.Fatal("Stop returned before the work handed to the group ended")
	}
	require.ErrorIs(t, f.g.Start(t.Context(), nop), lifecycle.ErrStopped)
	require.False(t, f.g.Go("late", nop), "nothing starts after Stop")
	require.False(t, f.g.GoWork("late", nop))
}

func TestStopIsIdempotentAndWaitsForEveryGoroutine(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	var ended atomic.Int32
	var begun sync.WaitGroup
	loop := func(ctx context.Context) error {
		begun.Done()
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // cleanup after the cancel that Stop must wait for
		ended.Add(1)
		return ctx.Err()
	}
	begun.Add(5)
	require.NoError(t, f.g.Start(t.Context(), func(ctx context.Context) error {
		f.g.Go("loop 1", loop)
		f.g.Go("loop 2", func(ctx context.Context) error {
			f.g.Go("started by a loop", loop) // a loop may start another
			return loop(ctx)
		})
		return nil
	}))
	f.g.GoWork("work 1", loop)
	f.g.GoWork("work 2", loop)
	begun.Wait()

	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- f.g.Stop() }()
	}
	for range 3 {
		select {
		case err := <-errs:
			require.NoError(t, err)
			require.EqualValues(t, 5, ended.Load(), "every Stop returns only when every goroutine has ended")
		case <-time.After(wait):
			t.Fatal("Stop did not return")
		}
	}
	require.NoError(t, f.g.Stop(), "and once more")
}

func TestGraceLetsWorkFinishAfterTheLoopsAreCancelled(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{Grace: time.Minute})
	loopCancelled := make(chan struct{})
	release := make(chan struct{})
	workCtx := make(chan context.Context, 1)
	require.NoError(t, f.g.Start(t.Context(), func(context.Context) error {
		f.g.Go("loop", func(ctx context.Context) error {
			<-ctx.Done()
			close(loopCancelled)
			return nil
		})
		return nil
	}))
	f.g.GoWork("work", func(ctx context.Context) error {
		workCtx <- ctx
		<-release
		return nil
	})
	ctx := <-workCtx
	stopped := make(chan error, 1)
	go func() { stopped <- f.g.Stop() }()
	select {
	case <-loopCancelled:
	case <-time.After(wait):
		t.Fatal("Stop did not cancel the loop first")
	}
	require.NoError(t, ctx.Err(), "work in flight keeps its context during the grace period")
	close(release)
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Stop did not return when the work finished inside the grace period")
	}
	require.Error(t, ctx.Err(), "the work context ends with the group")
}

func TestGraceRunsOut(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{Grace: 50 * time.Millisecond})
	f.g.GoWork("stubborn", func(ctx context.Context) error {
		<-ctx.Done() // only a cancel ends it
		return ctx.Err()
	})
	require.NoError(t, f.g.Stop())
	require.Contains(t, f.log.String(), "stopping with work in flight after the grace period")
}

func TestStartContextEndsTheLoopsNotTheWork(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	loopEnded := make(chan struct{})
	require.NoError(t, f.g.Start(ctx, func(context.Context) error {
		f.g.Go("loop", func(ctx context.Context) error {
			<-ctx.Done()
			close(loopEnded)
			return ctx.Err()
		})
		return nil
	}))
	cancel()
	select {
	case <-loopEnded:
	case <-time.After(wait):
		t.Fatal("the loop outlived Start's context")
	}
	require.NoError(t, f.g.WorkContext().Err(), "work outlives Start's context")
	require.NoError(t, f.g.Stop())
	require.Error(t, f.g.WorkContext().Err())
}

func TestFailedStartStopsWhatItBegan(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	boom := errors.New("token refused")
	loopEnded := make(chan struct{})
	err := f.g.Start(t.Context(), func(ctx context.Context) error {
		f.g.Go("loop", func(ctx context.Context) error {
			<-ctx.Done()
			close(loopEnded)
			return nil
		})
		return boom
	})
	require.ErrorIs(t, err, boom)
	select {
	case <-loopEnded:
	default:
		t.Fatal("a failed Start returned before the loop it began had ended")
	}
	require.NoError(t, f.g.Start(t.Context(), nop), "a failed Start may be tried again")
	require.NoError(t, f.g.Stop())
}

func TestPanicInAGoroutineBecomesAnError(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	require.Zero(t, panics(t, f.reg, "test"), "the counter exists before any panic")
	panicked := make(chan struct{})
	survivor := make(chan struct{})
	require.NoError(t, f.g.Start(t.Context(), func(context.Context) error {
		f.g.Go("doomed", func(context.Context) error {
			defer close(panicked)
			var m map[string]int
			m["x"] = 1 // a nil map write: a runtime panic
			return nil
		})
		f.g.Go("survivor", func(ctx context.Context) error {
			<-ctx.Done()
			close(survivor)
			return nil
		})
		return nil
	}))
	<-panicked
	f.g.GoWork("after the panic", nop) // the group, and the process, go on
	err := f.g.Stop()
	require.Error(t, err, "Stop reports the panic")
	require.True(t, lifecycle.IsPanic(err))
	require.Contains(t, err.Error(), "doomed")
	require.Contains(t, err.Error(), "assignment to entry in nil map")
	<-survivor
	require.EqualValues(t, 1, panics(t, f.reg, "test"))
	logs := f.log.String()
	require.Contains(t, logs, "recovered a panic")
	require.Contains(t, logs, "lifecycle_test.go", "the stack is logged")
	require.Equal(t, err, f.g.Stop(), "every Stop returns the same")
}

func TestGoroutineErrorsAreReportedButCancellationIsNot(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	failed := make(chan struct{})
	require.NoError(t, f.g.Start(t.Context(), func(context.Context) error {
		f.g.Go("cancelled", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		f.g.Go("failing", func(context.Context) error {
			defer close(failed)
			return errors.New("scheduler shutdown timed out")
		})
		return nil
	}))
	<-failed
	err := f.g.Stop()
	require.EqualError(t, err, "test: failing: scheduler shutdown timed out")
	require.Zero(t, panics(t, f.reg, "test"))
}

func TestGuard(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	want := errors.New("plain failure")
	require.Equal(t, want, f.g.Guard("event", func() error { return want }))
	require.NoError(t, f.g.Guard("event", func() error { return nil }))
	require.Zero(t, panics(t, f.reg, "test"))

	err := f.g.Guard("event EOD-7", func() error { panic(want) })
	var pe *lifecycle.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "event EOD-7", pe.In)
	require.ErrorIs(t, err, want, "a panic with an error unwraps to it")
	require.NotEmpty(t, pe.Stack)
	require.EqualValues(t, 1, panics(t, f.reg, "test"))
	require.True(t, strings.Contains(f.log.String(), "in=\"event EOD-7\""), f.log.String())
}

func TestStopCancelsAStartInProgress(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{})
	inStart := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		started <- f.g.Start(t.Context(), func(ctx context.Context) error {
			close(inStart)
			<-ctx.Done() // e.g. a slow call at start that honours ctx
			return ctx.Err()
		})
	}()
	<-inStart
	require.NoError(t, f.g.Stop())
	select {
	case err := <-started:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(wait):
		t.Fatal("Start did not give up when Stop began")
	}
}

func TestPanicsCounterIsSharedOnARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, err := lifecycle.New("bot", lifecycle.Options{Registerer: reg})
	require.NoError(t, err)
	b, err := lifecycle.New("slack", lifecycle.Options{Registerer: reg})
	require.NoError(t, err)
	again, err := lifecycle.New("bot", lifecycle.Options{Registerer: reg})
	require.NoError(t, err, "a second group of one component shares its counter")
	_ = a.Guard("x", func() error { panic("a") })
	_ = again.Guard("x", func() error { panic("a") })
	_ = b.Guard("x", func() error { panic("b") })
	require.EqualValues(t, 2, panics(t, reg, "bot"))
	require.EqualValues(t, 1, panics(t, reg, "slack"))

	_, err = lifecycle.New("", lifecycle.Options{})
	require.Error(t, err)
}

func TestStoppingEndsWaitsThatStopNeedNotWaitFor(t *testing.T) {
	t.Parallel()
	f := setup(t, lifecycle.Options{Grace: time.Minute})
	fired := make(chan bool, 1)
	f.g.GoWork("watchdog", func(context.Context) error {
		select {
		case <-time.After(time.Hour):
			fired <- true
		case <-f.g.Stopping():
			fired <- false
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- f.g.Stop() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Stop waited for the grace period on a timer")
	}
	require.False(t, <-fired)
}
