// Package pgtest is the test database harness: every test that touches the
// store gets its own PostgreSQL database, cloned from a template that has
// all migrations applied.
//
// It uses TEST_DATABASE_URL when set (a superuser URL; databases are created
// beside it). Otherwise it starts the same local PostgreSQL as the embedded
// default, with a password on every connection, in a directory under the
// system temp dir shared by every test process of this user
// (threatdesk-pgtest2-<uid>). Its name is predictable, so it gets the same
// checks as the embedded server's: it must be a real directory (never a
// symbolic link) owned by this user and no one else may write to it; one
// planted by another user is refused. A file lock inside it makes concurrent
// `go test` package processes start the server once. With CI=true a PostgreSQL that cannot be reached
// fails the test; elsewhere the test is skipped with the reason (shown by
// `go test -v`, and counted as a skip by test2json and gotestsum).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threatdesk/threatdesk/internal/pglocal"
	"github.com/threatdesk/threatdesk/migrations"
)

// testSettings trade durability for speed: test databases are disposable.
var testSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "400",
	"shared_buffers":     "128MB",
	"log_min_messages":   "warning",
}

type harness struct {
	admin    *pgxpool.Pool
	adminURL string
	template string
	err      error
	// broken: the migrations could not be applied (a migrationError).
	// That is the code's fault, not the machine's: it fails wherever it
	// runs.
	broken bool
}

var (
	once   sync.Once
	shared harness
)

// New returns a pool on a fresh, fully migrated database of its own, dropped
// when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := NewWithURL(t)
	return pool
}

// NewWithURL is New, also returning the database's connection URL (for code
// under test that opens its own pool).
func NewWithURL(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return create(t, true)
}

// Empty returns a pool on a fresh database with no migrations applied.
func Empty(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return create(t, false)
}

// unavailable says why there is no test database, if there is none, and
// whether that fails the test rather than skipping it: it fails in CI, and
// anywhere when the migrations cannot be applied.
func (h harness) unavailable(ci bool) (fail bool, msg string) {
	switch {
	case h.err == nil:
		return false, ""
	case h.broken:
		return true, fmt.Sprintf("the test database cannot be built: %v", h.err)
	case ci:
		return true, fmt.Sprintf("test database unavailable (CI=true, so this fails instead of skipping): %v", h.err)
	}
	return false, fmt.Sprintf("SKIPPED: no test database: %v (install the PostgreSQL server package or set TEST_DATABASE_URL)", h.err)
}

func create(t testing.TB, migrated bool) (*pgxpool.Pool, string) {
	t.Helper()
	h := setup()
	if fail, msg := h.unavailable(os.Getenv("CI") == "true"); msg != "" {
		if fail {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	name := "t_" + randomHex(8)
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if migrated {
		stmt += " TEMPLATE " + pgx.Identifier{h.template}.Sanitize()
	}
	if _, err := h.admin.Exec(ctx, stmt); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	url, err := withDatabase(h.adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse test database URL: %v", err)
	}
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return pool, url
}

func setup() harness {
	once.Do(func() {
		shared = start(context.Background())
	})
	return shared
}

func start(ctx context.Context) harness {
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		var err error
		url, err = startLocal(ctx)
		if err != nil {
			return harness{err: err}
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return harness{err: fmt.Errorf("parse TEST_DATABASE_URL: %w", err)}
	}
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return harness{err: fmt.Errorf("connect: %w", err)}
	}
	if err := admin.Ping(ctx); err != nil {
		admin.Close()
		return harness{err: fmt.Errorf("connect: %w", err)}
	}
	tpl, err := ensureTemplate(ctx, admin, url)
	if err != nil {
		admin.Close()
		return failed(err)
	}
	return harness{admin: admin, adminURL: url, template: tpl}
}

// startLocal starts (or joins) the per-user local test server, serialised
// across processes by a file lock.
func startLocal(ctx context.Context) (string, error) {
	return startLocalIn(ctx, filepath.Join(os.TempDir(), fmt.Sprintf("threatdesk-pgtest2-%d", os.Getuid())))
}

func startLocalIn(ctx context.Context, base string) (string, error) {
	// Private to this user; as root, the postgres user the server runs as
	// must pass through it to its own directory.
	perm := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		perm = 0o711
	}
	if _, err := pglocal.SecureDir(base, os.Geteuid(), os.Getegid(), perm); err != nil {
		return "", fmt.Errorf("test server directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(base, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("open harness lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("take harness lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	srv, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(base, "pg"), Settings: testSettings}, nil)
	if err != nil {
		return "", err
	}
	return srv.URL("postgres"), nil
}

// failed is the harness when building the test database failed with err.
func failed(err error) harness {
	var me *migrationError
	return harness{err: err, broken: errors.As(err, &me)}
}

// migrationError is a failure of the migrations themselves (their
// sequence, or applying them), as opposed to the server's.
type migrationError struct{ err error }

func (e *migrationError) Error() string { return e.err.Error() }
func (e *migrationError) Unwrap() error { return e.err }

// templateLock serialises template builds across processes.
const templateLock int64 = 0x7468726561746470 // "threatdp"

func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, adminURL string) (string, error) {
	fp, err := migrations.Fingerprint()
	if err != nil {
		return "", &migrationError{err}
	}
	name := "threatdesk_tpl_" + fp
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("acquire admin connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", fmt.Errorf("take template lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLock) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop half-built template: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	url, err := withDatabase(adminURL, building)
	if err != nil {
		return "", err
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("connect to template: %w", err)
	}
	_, err = migrations.Apply(ctx, db, nil)
	_ = db.Close(ctx)
	if err != nil {
		return "", &migrationError{fmt.Errorf("migrate template: %w", err)}
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("publish template: %w", err)
	}
	return name, nil
}

// withDatabase returns the URL with its database name replaced.
func withDatabase(raw, db string) (string, error) {
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + db
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
