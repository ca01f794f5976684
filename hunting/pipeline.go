package hunting

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipeTx is a transaction whose Exec and QueryRow are queued on a batch
// instead of each costing a round trip; the caller sends the batch (in
// order, in the same transaction) before commit, and any statement's error
// fails it then. It is handed to outbox.Append, whose INSERT ... RETURNING
// id hunting does not need (the row's id is read back as 0), and whose
// pg_notify is queued once: notifications are coalesced per transaction.
type pipeTx struct {
	pgx.Tx
	b        *pgx.Batch
	notified map[string]bool
}

func newPipeTx(tx pgx.Tx) *pipeTx {
	return &pipeTx{Tx: tx, b: &pgx.Batch{}, notified: map[string]bool{}}
}

func (p *pipeTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if strings.HasPrefix(sql, "SELECT pg_notify(") {
		k := fmt.Sprint(args...)
		if p.notified[k] {
			return pgconn.CommandTag{}, nil
		}
		p.notified[k] = true
	}
	p.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (p *pipeTx) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	p.b.Queue(sql, args...)
	return deferredRow{}
}

// deferredRow is the result of a queued QueryRow: not known yet. Only an
// id (an *int64, left 0) may be scanned from it.
type deferredRow struct{}

func (deferredRow) Scan(dest ...any) error {
	for _, d := range dest {
		p, ok := d.(*int64)
		if !ok {
			return fmt.Errorf("hunting: a pipelined statement's result is not available (scan into %T)", d)
		}
		*p = 0
	}
	return nil
}
