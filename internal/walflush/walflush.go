// Package walflush waits for PostgreSQL's write-ahead log to reach the disk.
//
// Hunting's intake commits without waiting for its WAL to be flushed
// (synchronous_commit off, for its own transactions only), and waits once
// for the disk before answering anyone. Whatever reads that data and shows
// it to a person waits the same way after reading, so that nothing shown
// can be taken back by a crash of the database.
package walflush

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
)

// Execer runs one SQL string (a pool, a connection).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Flush returns once every transaction committed before it was called is
// on disk. A transaction that wrote WAL and commits synchronously flushes
// the WAL up to its own commit record, which comes after every commit
// before it; a transaction id alone is not enough (PostgreSQL commits a
// transaction that wrote no WAL of its own without a flush), so it writes
// a transactional logical message: one WAL record, no table, any
// wal_level, no privilege needed. PostgreSQL flushes for several
// committers at once, so concurrent callers share one fsync. It is one
// round trip (the simple protocol runs the statements in order).
func Flush(ctx context.Context, db Execer) error {
	_, err := db.Exec(ctx, flushSQL)
	return err
}

const flushSQL = `BEGIN; SET LOCAL synchronous_commit TO on; SELECT pg_logical_emit_message(true, 'threatdesk', ''); COMMIT`
