package testwait_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/testwait"
)

// failure records what a wait reported instead of failing the real test.
type failure struct {
	testing.TB
	msg string
}

func (f *failure) Helper() {}

func (f *failure) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f) // stops the waiting function, as FailNow would
}

// catch runs fn, which is expected to fail through f.
func catch(f *failure, fn func()) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	fn()
}

func TestWaitOrTimeout(t *testing.T) {
	t.Parallel()
	ch := make(chan string, 1)
	ch <- "posted"
	require.Equal(t, "posted", testwait.WaitOrTimeout(t, ch, time.Second, "the post"))

	f := &failure{TB: t}
	catch(f, func() { testwait.WaitOrTimeout(f, make(chan int), 10*time.Millisecond, "the desk card") })
	require.Equal(t, "timed out after 10ms waiting for the desk card", f.msg)
}

func TestForWakesOnSignalsNotOnTime(t *testing.T) {
	t.Parallel()
	var sig testwait.Signal
	var state atomic.Int32
	var checks atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(20 * time.Millisecond)
			state.Add(1)
			sig.Notify()
		}
	}()
	testwait.For(t, 5*time.Second, "three changes", func() bool {
		checks.Add(1)
		return state.Load() == 3
	}, &sig)
	require.LessOrEqual(t, checks.Load(), int32(4), "checked once at first and once per signal, never polled")

	f := &failure{TB: t}
	catch(f, func() {
		testwait.For(f, 10*time.Millisecond, "a fourth change", func() bool { return state.Load() == 4 }, &sig)
	})
	require.Equal(t, "timed out after 10ms waiting for a fourth change", f.msg)
}

func TestForSeesAChangeBetweenSubscribingAndTheFirstCheck(t *testing.T) {
	t.Parallel()
	var sig testwait.Signal
	var state atomic.Bool
	first := true
	testwait.For(t, 5*time.Second, "the change", func() bool {
		if first {
			first = false
			state.Store(true) // changes after the subscription, before the first check returns
			sig.Notify()
			return false
		}
		return state.Load()
	}, &sig)
}

func TestSignalNeverBlocksAndForgetsCancelledSubscriptions(t *testing.T) {
	t.Parallel()
	var sig testwait.Signal
	ch, cancel := sig.Subscribe()
	for range 10 {
		sig.Notify() // merged into one pending signal
	}
	<-ch
	select {
	case <-ch:
		t.Fatal("signals were not merged")
	default:
	}
	cancel()
	sig.Notify()
	select {
	case <-ch:
		t.Fatal("a cancelled subscription was signalled")
	default:
	}
}
