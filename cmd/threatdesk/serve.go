package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/plural"
	"github.com/threatdesk/threatdesk/migrations"
)

// shutdownGrace bounds how long requests in flight and workers get to finish.
const shutdownGrace = 20 * time.Second

func cmdServe(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), guard sync.Locker) error {
	// SIGHUP asks for a reload, which the reloader hears while it runs
	// (reload.go). Before it starts and after it stops (starting the
	// database, migrating, stopping) a SIGHUP must not end the process,
	// Go's default, which left the embedded PostgreSQL running orphaned.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
		}
	}()
	cfg, log, err := prepare("serve", "Usage: threatdesk [serve]\n\nRuns the service: applies migrations, serves HTTP (health, metrics, alert\nintake, Slack and Discord endpoints), connects to the chat platforms that are\nconfigured, and runs the delivery workers and scheduled sweeps. The embedded\nPostgreSQL is restarted when it dies; when that keeps failing the service\nexits with status 1, for its supervisor to restart it. SIGINT or SIGTERM\nstops it cleanly, the embedded PostgreSQL included.\n"+envHelp,
		args, stdout, stderr, lookup)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	return serveWith(ctx, cfg, log, guard)
}

// serve runs the service until ctx ends.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return serveWith(ctx, cfg, log, nil)
}

// serveWith is serve with the guard of a reaping PID 1 (nil otherwise).
func serveWith(ctx context.Context, cfg *config.Config, log *slog.Logger, guard sync.Locker) error {
	started := time.Now()
	v := buildVersion()
	log.Info("starting threatdesk", "version", v.Version, "commit", v.Revision, "http_addr", cfg.HTTPAddr)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "threatdesk", Name: "build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
	reg.MustRegister(buildInfo)

	db, err := openDatabase(ctx, cfg, log, guard)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	if _, err := migrateDatabase(ctx, db, log); err != nil {
		return err
	}
	sup, err := db.supervisor(reg)
	if err != nil {
		return err
	}

	// Ready only once every service has started: a load balancer (or a
	// test) must not send work to a replica still starting, nor take a
	// replica that fails to start for a ready one.
	var running atomic.Bool
	srv, err := httpapi.New(httpapi.Config{
		Addr:        cfg.HTTPAddr,
		MetricsAddr: cfg.MetricsAddr,
		Gatherer:    reg,
		Ready:       readiness(db.Pool, &running),
	}, log, reg)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr == "" {
		log.Info("/metrics on THREATDESK_HTTP_ADDR answers only scrapes from this machine, since its series name every org; set THREATDESK_METRICS_ADDR to scrape from elsewhere")
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}

	app, err := wire(cfg, db.Pool, srv, log, reg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// The embedded PostgreSQL's supervisor starts first and stops last.
	services := lifecycle.NewList(log)
	services.Add("database supervisor", sup)
	services.Add("components", app)

	web, err := newWebServer(srv, ln, log, reg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// HTTP serves while the services start (health, metrics) and stops
	// before them, so that no new request arrives while they stop.
	if err := web.Start(ctx); err != nil {
		return err
	}
	if err := services.Start(ctx); err != nil {
		shutdown(web, services, log)
		return err
	}
	running.Store(true)
	log.Info("threatdesk is ready", "took", time.Since(started).Round(time.Millisecond))

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-web.Failed():
		shutdown(web, services, log)
		return err
	case err := <-sup.Failed():
		// Restarting the embedded PostgreSQL keeps failing: exit non-zero so
		// that systemd, Kubernetes or Docker restart the whole service.
		log.Error("the embedded PostgreSQL cannot be restarted; exiting", "err", err)
		shutdown(web, services, log)
		return fmt.Errorf("the embedded PostgreSQL cannot be restarted: %w", err)
	}
	shutdown(web, services, log)
	return nil
}

// shutdown stops HTTP (requests in flight get shutdownGrace), then the
// services in reverse order; the List logs what fails to stop.
func shutdown(web *webServer, services *lifecycle.List, log *slog.Logger) {
	if err := web.Stop(); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	_ = services.Stop()
}

// webServer is the HTTP server as a service: Start serves on the listener,
// Stop drains the requests in flight (up to shutdownGrace) and waits for
// the server to end.
type webServer struct {
	srv    *httpapi.Server
	ln     net.Listener
	life   *lifecycle.Group
	failed chan error
}

func newWebServer(srv *httpapi.Server, ln net.Listener, log *slog.Logger, reg prometheus.Registerer) (*webServer, error) {
	life, err := lifecycle.New("http", lifecycle.Options{Log: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return &webServer{srv: srv, ln: ln, life: life, failed: make(chan error, 1)}, nil
}

// Start serves until Stop.
func (w *webServer) Start(ctx context.Context) error {
	return w.life.Start(ctx, func(context.Context) error {
		w.life.Go("serve", func(context.Context) error {
			if err := w.srv.Serve(w.ln); err != nil {
				w.failed <- err
			}
			return nil
		})
		return nil
	})
}

// Stop drains the requests in flight and waits for the server to end.
func (w *webServer) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := w.srv.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, w.life.Stop())
}

// Failed yields the error a listener failed with.
func (w *webServer) Failed() <-chan error { return w.failed }

// readiness is the /readyz check: the database answers, every migration is
// applied, and every service has started (running). Only the reason is
// shown; the error, which can name hosts and users, is logged.
func readiness(pool *pgxpool.Pool, running *atomic.Bool) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return httpapi.NotReady("database unreachable", err)
		}
		n, err := migrations.Pending(ctx, pool)
		if err != nil {
			return httpapi.NotReady("database unreachable", err)
		}
		if n > 0 {
			return httpapi.NotReady(plural.S(n, "migration")+" pending", nil)
		}
		if !running.Load() {
			return httpapi.NotReady("starting", nil)
		}
		return nil
	}
}
