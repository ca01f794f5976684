package lifecycle

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// PanicError is a panic turned into an error by Guard.
type PanicError struct {
	// In names what was running (Guard's what).
	In string
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// Error says what panicked and with what; the stack is logged, not repeated.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic in %s: %v", e.In, e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// IsPanic reports whether err is, or wraps, a recovered panic.
func IsPanic(err error) bool {
	_, ok := errors.AsType[*PanicError](err)
	return ok
}

// Guard runs f and returns its error; a panic in f is returned as a
// *PanicError instead, after it is logged at error level with its stack and
// counted in threatdesk_panics_total{component}. It is the boundary at which
// a service hands one event or row to code that may fail: the caller turns
// the error into the answer it gives for any other failure, and the process
// goes on.
func (g *Group) Guard(what string, f func() error) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		pe := &PanicError{In: what, Value: p, Stack: debug.Stack()}
		g.panics.Inc()
		g.log.Error("recovered a panic; it is handled as an error", "in", what, "panic", fmt.Sprint(p), "stack", string(pe.Stack))
		err = pe
	}()
	return f()
}

// panicsVec is threatdesk_panics_total on reg: registered by the first
// component, reused by the others.
func panicsVec(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threatdesk", Name: "panics_total",
		Help: "Panics recovered and handled as errors, by component. Any increase is a bug: the log has the stack.",
	}, []string{"component"})
	if reg == nil {
		return vec, nil
	}
	err := reg.Register(vec)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("register threatdesk_panics_total: %w", err)
	}
	return vec, nil
}
