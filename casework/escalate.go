package casework

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Escalations: telling people a case needs them, decided once by the sweep.
//
//   - A high-priority case still new Config.PageAfter after it opened is
//     paged: EventPaged, once per case (cases.paged_at).
//   - A case waiting on its requester (more_info_needed, file_sample_needed)
//     for Config.RemindAfter gets EventReminded, once per wait
//     (cases.reminded_at, due again when the case entered a waiting status
//     after the last reminder). The SLA clock stays paused: a reminder is
//     not a status change.
//
// Each is a conditional UPDATE of its column in the same transaction as its
// timeline entry and outbox event, under the case's row lock (skipped when
// another sweeper holds it), so several replicas sweeping at once, or a
// sweep run again after a crash, page and remind once. Whom to page or
// mention is the bot's to decide when it delivers the event.

// escalation is one kind of escalation the sweep looks for.
type escalation struct {
	name string
	// find lists the due cases' numbers (at most sweepBatch).
	find string
	// flag sets the column if the case is still due, $1 the case, $2 now,
	// $3 the cutoff; it affects one row when this sweep escalates.
	flag string
	// event builds the outbox event of case x.
	event func(x *row, now time.Time) (kind string, payload any)
}

var pageEscalation = escalation{
	name: "page",
	find: `SELECT number FROM cases WHERE status = 'new' AND priority = 'high' AND paged_at IS NULL AND created_at <= $1
 ORDER BY created_at LIMIT $2`,
	flag: `UPDATE cases SET paged_at = $2
 WHERE number = $1 AND status = 'new' AND priority = 'high' AND paged_at IS NULL AND created_at <= $3`,
	event: func(x *row, now time.Time) (string, any) {
		return EventPaged, PagedEvent{Ref: x.Ref, Priority: x.Priority, OpenedAt: x.CreatedAt,
			WaitedSeconds: int64(now.Sub(x.CreatedAt) / time.Second), PagedAt: now}
	},
}

var remindEscalation = escalation{
	name: "reminder",
	find: `SELECT number FROM cases WHERE status IN ('more_info_needed', 'file_sample_needed') AND status_at <= $1
 AND (reminded_at IS NULL OR reminded_at <= status_at) ORDER BY status_at LIMIT $2`,
	flag: `UPDATE cases SET reminded_at = $2
 WHERE number = $1 AND status IN ('more_info_needed', 'file_sample_needed') AND status_at <= $3
 AND (reminded_at IS NULL OR reminded_at <= status_at)`,
	event: func(x *row, now time.Time) (string, any) {
		return EventReminded, RemindedEvent{Ref: x.Ref, Status: x.Status, WaitingSince: x.StatusAt,
			WaitedSeconds: int64(now.Sub(x.StatusAt) / time.Second), Requester: x.Requester}
	},
}

// sweepEscalations pages and reminds what is due at now.
func (s *Service) sweepEscalations(ctx context.Context, now time.Time) (paged, reminded int, err error) {
	if s.cfg.PageAfter > 0 {
		if paged, err = s.escalate(ctx, pageEscalation, now, now.Add(-s.cfg.PageAfter)); err != nil {
			return paged, 0, err
		}
	}
	reminded, err = s.escalate(ctx, remindEscalation, now, now.Add(-s.cfg.RemindAfter))
	return paged, reminded, err
}

// escalate runs one escalation over every case due at cutoff.
func (s *Service) escalate(ctx context.Context, e escalation, now, cutoff time.Time) (int, error) {
	done := 0
	seen := map[int64]bool{}
	for {
		rows, err := s.pool.Query(ctx, e.find, cutoff, sweepBatch)
		if err != nil {
			return done, fmt.Errorf("%s sweep: find due cases: %w", e.name, err)
		}
		numbers, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return done, fmt.Errorf("%s sweep: find due cases: %w", e.name, err)
		}
		fresh := 0
		for _, n := range numbers {
			if seen[n] {
				continue // held by another sweeper
			}
			seen[n] = true
			fresh++
			ok, err := s.escalateOne(ctx, e, n, now, cutoff)
			if err != nil && ctx.Err() != nil {
				return done, err
			}
			if err != nil {
				// Skipped: the other cases are paged all the same.
				s.log.ErrorContext(ctx, e.name+" sweep: a case skipped; the others go on", "ref", FormatRef(n), "err", err)
				continue
			}
			if ok {
				done++
			}
		}
		if len(numbers) < sweepBatch || fresh == 0 {
			return done, nil
		}
	}
}

// escalateOne escalates case number if it is still due and no other
// sweeper holds it; ok reports whether this call did.
func (s *Service) escalateOne(ctx context.Context, e escalation, number int64, now, cutoff time.Time) (ok bool, err error) {
	var x *row
	err = s.inTx(ctx, e.name+" sweep of "+FormatRef(number), func(tx pgx.Tx) error {
		var err error
		x, err = s.scanRow(tx.QueryRow(ctx, "SELECT "+caseCols+caseFrom+" WHERE c.number = $1 FOR NO KEY UPDATE OF c SKIP LOCKED", number))
		if errors.Is(err, pgx.ErrNoRows) {
			x = nil
			return nil // another replica has it
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", FormatRef(number), err)
		}
		tag, err := tx.Exec(ctx, e.flag, number, now, cutoff)
		if err != nil {
			return fmt.Errorf("flag the %s of %s: %w", e.name, x.Ref, err)
		}
		if tag.RowsAffected() != 1 {
			x = nil
			return nil // no longer due, or already done
		}
		kind, payload := e.event(x, now)
		if err := s.record(ctx, tx, x, now, System(), kind, payload, true); err != nil {
			return err
		}
		// Nobody changed the case: keep updated_at.
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil || x == nil {
		return false, err
	}
	s.log.InfoContext(ctx, "case "+e.name, "ref", x.Ref, "status", x.Status)
	return true, nil
}
