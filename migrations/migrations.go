// Package migrations holds threatdesk's database schema as numbered SQL files
// (0001_init.sql, 0002_..., ...) embedded in the binary, and the forward-only
// runner that applies them.
//
// Each file is applied in its own transaction whose first statement takes a
// transaction-scoped advisory lock, so replicas starting at once serialise
// and all succeed. Applied versions are recorded in schema_migrations with a
// checksum. The file names must form a strict sequence from 1 with no gaps or
// duplicates; anything else is refused before a single statement runs.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed *.sql
var files embed.FS

// lockKey is the advisory lock every migration transaction takes first.
// It is the 64-bit prefix of sha256("threatdesk.migrations").
const lockKey int64 = 0x1d5e1f27a3b40c11

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// Conn is what the runner needs from a pgx connection or pool.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// All returns the embedded migrations in order, or an error when their
// numbering is not a strict sequence.
func All() ([]Migration, error) { return Load(files) }

// Load reads migrations from fsys and checks their numbering: versions must
// run 1, 2, 3, ... with no gap and no duplicate.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		want := i + 1
		switch {
		case i > 0 && m.Version == out[i-1].Version:
			return nil, fmt.Errorf("migration version %04d is used twice (%s and %s): renumber one", m.Version, out[i-1].Name, m.Name)
		case m.Version != want:
			return nil, fmt.Errorf("migration %04d_%s breaks the sequence: expected version %04d next (a gap or a wrong start)", m.Version, m.Name, want)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no migrations found")
	}
	return out, nil
}

// Fingerprint is a short hash of all embedded migrations, used to name
// template databases so that a schema change builds a fresh template.
func Fingerprint() (string, error) {
	all, err := All()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range all {
		h.Write([]byte(m.Checksum))
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Apply applies every embedded migration not yet applied.
func Apply(ctx context.Context, db Conn, log *slog.Logger) (int, error) {
	all, err := All()
	if err != nil {
		return 0, err
	}
	return ApplyList(ctx, db, all, log)
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// ApplyList applies the given migrations in order, each in one transaction
// that first takes the migration advisory lock. It returns how many it applied.
func ApplyList(ctx context.Context, db Conn, list []Migration, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	applied := 0
	for _, m := range list {
		did, err := applyOne(ctx, db, m)
		if err != nil {
			return applied, err
		}
		if did {
			applied++
			log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
	}
	return applied, nil
}

func applyOne(ctx context.Context, db Conn, m Migration) (bool, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migration %04d: begin: %w", m.Version, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return false, fmt.Errorf("migration %04d: take lock: %w", m.Version, err)
	}
	if _, err := tx.Exec(ctx, createTable); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var sum string
	err = tx.QueryRow(ctx, "SELECT checksum FROM schema_migrations WHERE version = $1", m.Version).Scan(&sum)
	switch {
	case err == nil:
		if sum != m.Checksum {
			return false, fmt.Errorf("migration %04d_%s was changed after it was applied (checksum %s, now %s): add a new migration instead of editing an applied one",
				m.Version, m.Name, sum[:12], m.Checksum[:12])
		}
		return false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return false, fmt.Errorf("migration %04d: read schema_migrations: %w", m.Version, err)
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
		m.Version, m.Name, m.Checksum); err != nil {
		return false, fmt.Errorf("record migration %04d: %w", m.Version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit migration %04d: %w", m.Version, err)
	}
	return true, nil
}

// Pending reports how many embedded migrations are not applied yet; readiness
// requires zero. It also fails when the database has versions this binary
// does not know (it is older than the schema).
func Pending(ctx context.Context, db Conn) (int, error) {
	all, err := All()
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("check schema_migrations: %w", err)
	}
	if !exists {
		return len(all), nil
	}
	var n, max int
	if err := db.QueryRow(ctx, "SELECT count(*), coalesce(max(version), 0) FROM schema_migrations").Scan(&n, &max); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	if max > len(all) {
		return 0, fmt.Errorf("database schema is at version %d but this binary knows only %d migrations: run a newer threatdesk", max, len(all))
	}
	return len(all) - n, nil
}
