package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/pglocal"
	"github.com/threatdesk/threatdesk/migrations"
)

// database is the pool plus, for the embedded default, the local server and
// its supervisor.
type database struct {
	Pool  *pgxpool.Pool
	local *pglocal.Server
	lock  *os.File
	log   *slog.Logger

	sup *supervisor // nil until supervisor is called
}

// lockDataDir makes one process the owner of the embedded PostgreSQL: a
// second threatdesk on the same data dir would share the server and stop it
// under the first. The lock dies with its process, so a crash leaves the
// server to be adopted by the next start. The data dir belongs to this
// process's user and no one else may write to it; as root, others may pass
// through it (the server runs as the postgres user, in its own directory).
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create the parent of THREATDESK_DATA_DIR %q: %w", dir, err)
	}
	perm := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		perm = 0o711
	}
	if _, err := pglocal.SecureDir(dir, os.Geteuid(), os.Getegid(), perm); err != nil {
		return nil, fmt.Errorf("THREATDESK_DATA_DIR: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "threatdesk.lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another threatdesk is already using THREATDESK_DATA_DIR %q and its embedded PostgreSQL: stop it, choose another data dir, or point every replica at one server with DATABASE_URL", dir)
	}
	return f, nil
}

// appRole is the embedded database's role for the service: it owns the
// threatdesk database but is not a superuser.
const appRole = "threatdesk"

// openDatabase connects to DATABASE_URL, or starts the embedded PostgreSQL.
// guard, when set, is held around the child processes the embedded server
// needs (see reaper).
func openDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger, guard sync.Locker) (*database, error) {
	url := cfg.DatabaseURL
	d := &database{log: log}
	if url == "" {
		lock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		d.lock = lock
		start := time.Now()
		srv, err := pglocal.Start(ctx, pglocal.Options{
			Dir:      filepath.Join(cfg.DataDir, "postgres"),
			Database: "threatdesk",
			AppRole:  appRole,
			Guard:    guard,
		}, log)
		if err != nil {
			d.Close(ctx)
			return nil, fmt.Errorf("start the embedded PostgreSQL (DATABASE_URL is not set): %w", err)
		}
		d.local = srv
		url = srv.AppURL()
		log.Info("using the embedded PostgreSQL", "data_dir", srv.DataDir(), "reused_running_server", srv.Adopted(),
			"took", time.Since(start).Round(time.Millisecond))
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		d.Close(ctx)
		// The URL may hold a password: do not echo it.
		return nil, fmt.Errorf("DATABASE_URL cannot be parsed: check its form, postgres://user:password@host:5432/dbname")
	}
	pcfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		d.Close(ctx)
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		d.Close(ctx)
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	d.Pool = pool
	return d, nil
}

func migrateDatabase(ctx context.Context, d *database, log *slog.Logger) (int, error) {
	n, err := migrations.Apply(ctx, d.Pool, log)
	if err != nil {
		return n, fmt.Errorf("migrate database: %w", err)
	}
	return n, nil
}

// supervisor restarts the embedded PostgreSQL whenever it dies
// (pglocal's Supervise), as a service: started in the list before the
// components, stopped after them and before the server. Without an embedded
// server it does nothing.
type supervisor struct {
	local  *pglocal.Server
	reg    prometheus.Registerer
	life   *lifecycle.Group
	failed chan error
}

// supervisor returns the database's supervisor; Close stops it.
func (d *database) supervisor(reg prometheus.Registerer) (*supervisor, error) {
	life, err := lifecycle.New("pglocal", lifecycle.Options{Log: d.log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	d.sup = &supervisor{local: d.local, reg: reg, life: life, failed: make(chan error, 1)}
	return d.sup, nil
}

// Start starts watching the embedded server.
func (s *supervisor) Start(ctx context.Context) error {
	return s.life.Start(ctx, func(context.Context) error {
		if s.local == nil {
			return nil
		}
		s.life.Go("supervise", func(ctx context.Context) error {
			if err := s.local.Supervise(ctx, pglocal.SuperviseOptions{Registerer: s.reg}); err != nil {
				s.failed <- err
			}
			return nil
		})
		return nil
	})
}

// Stop stops watching; the server is left running (Close stops it).
func (s *supervisor) Stop() error { return s.life.Stop() }

// Failed yields an error when restarting the embedded server keeps failing:
// the service should then exit, for systemd, Kubernetes or Docker to
// restart it. Without an embedded server it never yields.
func (s *supervisor) Failed() <-chan error { return s.failed }

// Close closes the pool, stops the supervisor and then the embedded server,
// if any.
func (d *database) Close(ctx context.Context) {
	if d.sup != nil {
		_ = d.sup.Stop() // stopped already, unless serving ended early
	}
	if d.Pool != nil {
		d.Pool.Close()
	}
	if d.local != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
		defer cancel()
		if err := d.local.Stop(ctx); err != nil {
			d.log.Error("stop the embedded PostgreSQL", "err", err)
		}
	}
	if d.lock != nil {
		_ = d.lock.Close() // releases the flock
	}
}
