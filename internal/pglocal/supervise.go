package pglocal

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SuperviseOptions tune Supervise.
type SuperviseOptions struct {
	// Interval between checks that the server lives (default 1s).
	Interval time.Duration
	// MaxFailures is how many restarts in a row may fail before Supervise
	// gives up and returns an error (default 5).
	MaxFailures int
	// BackoffBase and BackoffMax bound the doubling wait between failed
	// restarts (default 1s and 30s).
	BackoffBase, BackoffMax time.Duration
	// Registerer receives threatdesk_embedded_postgres_up and
	// threatdesk_embedded_postgres_restarts_total{result}. Optional.
	Registerer prometheus.Registerer
}

// Supervise watches the server until ctx ends and restarts it when it dies
// (killed, crashed, stopped behind our back), waiting longer after each
// failed restart. When MaxFailures restarts in a row fail it returns an
// error, so that the process can exit and its own supervisor (systemd,
// Kubernetes, Docker) take over. It returns nil when ctx ends. Stop the
// server only after Supervise has returned.
func (s *Server) Supervise(ctx context.Context, o SuperviseOptions) error {
	o.Interval = cmp.Or(o.Interval, time.Second)
	o.MaxFailures = cmp.Or(o.MaxFailures, 5)
	o.BackoffBase = cmp.Or(o.BackoffBase, time.Second)
	o.BackoffMax = cmp.Or(o.BackoffMax, 30*time.Second)
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "threatdesk", Subsystem: "embedded_postgres", Name: "up",
		Help: "1 while the embedded PostgreSQL server's process lives.",
	})
	restarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threatdesk", Subsystem: "embedded_postgres", Name: "restarts_total",
		Help: "Restarts of the embedded PostgreSQL server after it died, by result (ok, failed).",
	}, []string{"result"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(up); err != nil {
			return fmt.Errorf("register embedded PostgreSQL metrics: %w", err)
		}
		if err := o.Registerer.Register(restarts); err != nil {
			return fmt.Errorf("register embedded PostgreSQL metrics: %w", err)
		}
	}
	restarts.WithLabelValues("ok")
	restarts.WithLabelValues("failed")
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		if s.Running() {
			up.Set(1)
		} else {
			up.Set(0)
			s.log.Error("the local PostgreSQL server is not running; restarting it", "dir", s.opts.Dir)
			wait := o.BackoffBase
			for failures := 1; ; failures++ {
				err := s.launch(ctx)
				if ctx.Err() != nil {
					return nil
				}
				if err == nil {
					restarts.WithLabelValues("ok").Inc()
					up.Set(1)
					s.log.Info("the local PostgreSQL server is back", "failed_attempts", failures-1)
					break
				}
				restarts.WithLabelValues("failed").Inc()
				if failures >= o.MaxFailures {
					return fmt.Errorf("the local PostgreSQL server died and %d restarts in a row failed; the last: %w", failures, err)
				}
				s.log.Error("restarting the local PostgreSQL server failed; trying again", "attempt", failures, "retry_in", wait, "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				wait = min(2*wait, o.BackoffMax)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
