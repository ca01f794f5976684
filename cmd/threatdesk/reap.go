package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// reaper reaps the children nobody waits for. PID 1 inherits every process
// whose parent died (in a container without an init, threatdesk is PID 1),
// the embedded PostgreSQL's postmaster among them once pg_ctl has exited; a
// dead one that is not reaped stays a zombie forever.
//
// Reaping any child (wait4(-1)) would also take the children os/exec is
// about to wait for, so pglocal holds guard (shared) from starting each child
// until it has been waited for, and the reaper reaps only while it holds it
// exclusively.
type reaper struct {
	mu sync.RWMutex
}

// guard is what child-starting code holds around each child's life.
func (r *reaper) guard() sync.Locker { return r.mu.RLocker() }

// run reaps on every SIGCHLD, and every few seconds in case one was
// coalesced while the guard was held. It never returns.
func (r *reaper) run() {
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, syscall.SIGCHLD)
	tick := time.NewTicker(5 * time.Second)
	for {
		r.reap()
		select {
		case <-sigc:
		case <-tick.C:
		}
	}
}

// reap collects every child that has exited.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
