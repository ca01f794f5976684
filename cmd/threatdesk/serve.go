package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/migrations"
)

// shutdownGrace bounds how long requests in flight and workers get to finish.
const shutdownGrace = 20 * time.Second

func cmdServe(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), guard sync.Locker) error {
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
	dbFailed := db.supervise(ctx, reg)

	srv, err := httpapi.New(httpapi.Config{
		Addr:        cfg.HTTPAddr,
		MetricsAddr: cfg.MetricsAddr,
		Gatherer:    reg,
		Ready: func(ctx context.Context) error {
			// Only the reason is shown; the error, which can name hosts
			// and users, is logged.
			if err := db.Pool.Ping(ctx); err != nil {
				return httpapi.NotReady("database unreachable", err)
			}
			n, err := migrations.Pending(ctx, db.Pool)
			if err != nil {
				return httpapi.NotReady("database unreachable", err)
			}
			if n > 0 {
				return httpapi.NotReady(fmt.Sprintf("%d migration(s) pending", n), nil)
			}
			return nil
		},
	}, log, reg)
	if err != nil {
		return err
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

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if err := app.Start(ctx); err != nil {
		shutdown(ctx, srv, app, log)
		return err
	}
	log.Info("threatdesk is ready", "took", time.Since(started).Round(time.Millisecond))

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if err != nil {
			app.Stop(context.WithoutCancel(ctx))
			return err
		}
	case err := <-dbFailed:
		// Restarting the embedded PostgreSQL keeps failing: exit non-zero so
		// that systemd, Kubernetes or Docker restart the whole service.
		log.Error("the embedded PostgreSQL cannot be restarted; exiting", "err", err)
		shutdown(ctx, srv, app, log)
		return fmt.Errorf("the embedded PostgreSQL cannot be restarted: %w", err)
	}
	shutdown(ctx, srv, app, log)
	return nil
}

func shutdown(ctx context.Context, srv *httpapi.Server, app *application, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("http shutdown", "err", err)
	}
	app.Stop(sctx)
}
