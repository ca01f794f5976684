package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AsyncCommit commits a transaction that wrote WAL without waiting for the
// disk, as an ingest does, and returns the WAL position after it.
func AsyncCommit(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL synchronous_commit TO off"}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, 'test', 'async')`)
		return err
	})
	if err != nil {
		t.Fatalf("asynchronous commit: %v", err)
	}
	var lsn string
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatalf("read the WAL position: %v", err)
	}
	return lsn
}

// Flushed reports whether the WAL is on disk up to lsn.
func Flushed(t testing.TB, pool *pgxpool.Pool, lsn string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, lsn).Scan(&ok); err != nil {
		t.Fatalf("read the flushed WAL position: %v", err)
	}
	return ok
}
