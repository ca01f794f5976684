// Package outbox owns the outbox table: domain packages append events to it
// inside their own transactions, and delivery workers claim, deliver and
// settle them after commit.
//
// It imports only pgx, so casework and hunting can record events without
// knowing who renders or delivers them. Events of one stream (a case, an
// incident) are claimed strictly in order: a row is claimable only when no
// earlier row of its stream is still pending. A claim is a lease, so a worker
// that dies between claim and settle leaves a row that is claimed again once
// the lease runs out.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channel is the LISTEN/NOTIFY channel woken on every append.
const Channel = "threatdesk_outbox"

// Event is a domain event to record.
type Event struct {
	// Kind names what happened, e.g. "case.opened".
	Kind string
	// Stream orders delivery: events with the same stream are delivered in
	// the order they were appended, e.g. "case:EOD-12".
	Stream string
	// Payload is marshalled to JSON.
	Payload any
}

// DB is what the outbox needs from a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Append records e in tx and wakes the workers when tx commits.
func Append(ctx context.Context, tx pgx.Tx, e Event) (int64, error) {
	if e.Kind == "" || e.Stream == "" {
		return 0, fmt.Errorf("outbox: event needs a kind and a stream (kind %q, stream %q)", e.Kind, e.Stream)
	}
	payload, err := json.Marshal(e.Payload)
	if err != nil {
		return 0, fmt.Errorf("outbox: marshal %s payload: %w", e.Kind, err)
	}
	var id int64
	err = tx.QueryRow(ctx,
		`INSERT INTO outbox (kind, stream, payload) VALUES ($1, $2, $3) RETURNING id`,
		e.Kind, e.Stream, payload).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("outbox: append %s: %w", e.Kind, err)
	}
	// NOTIFY is delivered at commit, and coalesced per transaction.
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", Channel); err != nil {
		return 0, fmt.Errorf("outbox: notify: %w", err)
	}
	return id, nil
}

// Row is a claimed event.
type Row struct {
	ID        int64
	Kind      string
	Stream    string
	Payload   json.RawMessage
	Attempts  int // including this claim
	CreatedAt time.Time
}

// Claim leases up to limit deliverable rows for lease. A row is deliverable
// when it is pending, due, not leased, and the oldest pending row of its
// stream. Concurrent claimers never get the same row (FOR UPDATE SKIP LOCKED).
func Claim(ctx context.Context, db DB, limit int, lease time.Duration) ([]Row, error) {
	rows, err := db.Query(ctx, `
WITH c AS (
    SELECT o.id FROM outbox o
    WHERE o.delivered_at IS NULL AND o.dead_at IS NULL
      AND o.available_at <= now()
      AND (o.locked_until IS NULL OR o.locked_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.stream = o.stream AND p.id < o.id
            AND p.delivered_at IS NULL AND p.dead_at IS NULL)
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
UPDATE outbox SET locked_until = now() + $2::interval, attempts = outbox.attempts + 1
FROM c WHERE outbox.id = c.id
RETURNING outbox.id, outbox.kind, outbox.stream, outbox.payload, outbox.attempts, outbox.created_at`,
		limit, lease)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
		var x Row
		err := r.Scan(&x.ID, &x.Kind, &x.Stream, &x.Payload, &x.Attempts, &x.CreatedAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	// RETURNING does not keep the CTE's order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// ErrClaimLost is a settle of a row claimed again since (its lease ran
// out while its worker was still at it): the new claimer settles it, and
// this one must not free or end its lease.
var ErrClaimLost = errors.New("outbox: the row was claimed again after this claim's lease ran out")

// settle runs an update of row (sql, its first argument the row's id, its
// second the claim's attempts, then args), and reports ErrClaimLost when
// the row is no longer under that claim.
func settle(ctx context.Context, db DB, row Row, what, sql string, args ...any) error {
	tag, err := db.Exec(ctx, sql, append([]any{row.ID, row.Attempts}, args...)...)
	if err != nil {
		return fmt.Errorf("outbox: %s %d: %w", what, row.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("outbox: %s %d (attempt %d): %w", what, row.ID, row.Attempts, ErrClaimLost)
	}
	return nil
}

// Delivered marks a row done.
func Delivered(ctx context.Context, db DB, row Row) error {
	return settle(ctx, db, row, "mark delivered",
		`UPDATE outbox SET delivered_at = now(), locked_until = NULL, last_error = NULL WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`)
}

// Retry releases a row to be tried again after the given delay.
func Retry(ctx context.Context, db DB, row Row, after time.Duration, reason string) error {
	return settle(ctx, db, row, "schedule the retry of",
		`UPDATE outbox SET available_at = now() + $3::interval, locked_until = NULL, last_error = $4 WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`,
		after, reason)
}

// Release gives claimed rows back at once, for any worker to claim: a
// stopping worker's rows it has not begun (their lease would hold them,
// and every later row of their streams, until it ran out). A row claimed
// again since is left to its new claimer.
func Release(ctx context.Context, db DB, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]int64, len(rows))
	attempts := make([]int32, len(rows))
	for i, r := range rows {
		ids[i], attempts[i] = r.ID, int32(r.Attempts)
	}
	// Not begun, so no attempt: the claim's count is given back too.
	if _, err := db.Exec(ctx, `
UPDATE outbox SET locked_until = NULL, attempts = greatest(outbox.attempts - 1, 0)
FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
WHERE outbox.id = c.id AND outbox.attempts = c.attempts AND delivered_at IS NULL AND dead_at IS NULL`, ids, attempts); err != nil {
		return fmt.Errorf("outbox: release %d rows: %w", len(ids), err)
	}
	return nil
}

// Dead marks a row as permanently failed; reason should tell an operator what to do.
func Dead(ctx context.Context, db DB, row Row, reason string) error {
	return settle(ctx, db, row, "mark dead",
		`UPDATE outbox SET dead_at = now(), locked_until = NULL, last_error = $3 WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`, reason)
}

// Stats are the outbox's health figures.
type Stats struct {
	Pending   int
	OldestAge time.Duration
	Dead      int
}

// ReadStats reports pending depth, the age of the oldest pending row and the
// dead count, reading only the partial indexes' rows.
func ReadStats(ctx context.Context, db DB) (Stats, error) {
	var s Stats
	var age float64
	err := db.QueryRow(ctx, `
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&s.Pending, &age)
	if err != nil {
		return s, fmt.Errorf("outbox: stats: %w", err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`).Scan(&s.Dead); err != nil {
		return s, fmt.Errorf("outbox: dead count: %w", err)
	}
	s.OldestAge = time.Duration(age * float64(time.Second))
	return s, nil
}
