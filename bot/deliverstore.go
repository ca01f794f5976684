package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// What the delivery worker records beyond bot_delivery and bot_anchor
// (migrations/0006_bot_delivery_guarantees.sql): the parts it is about to
// post, whose outcome is unknown until their delivery is recorded, and the
// anchors that failed for good.

// attempts returns the parts of row id whose post was started and never
// recorded, with when the first such attempt started.
func (b *Bot) attempts(ctx context.Context, id int64) (map[string]time.Time, error) {
	rows, err := b.db.Query(ctx, `SELECT part, started_at FROM bot_attempt WHERE outbox_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("read attempts of %d: %w", id, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var part string
		var at time.Time
		if err := rows.Scan(&part, &at); err != nil {
			return nil, fmt.Errorf("read attempts of %d: %w", id, err)
		}
		out[part] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attempts of %d: %w", id, err)
	}
	return out, nil
}

// markAttempt records, before the platform is called, that part of row id is
// being posted. The first attempt's time is kept. It always writes, a
// synchronous commit, also on a later attempt: that flushes the WAL past
// whatever the message shows, which an ingest may have committed without
// waiting for the disk (hunting's durable), so nothing is posted that a
// crash of the database could take back.
func (b *Bot) markAttempt(ctx context.Context, id int64, part string) error {
	// Synchronous whatever the server's default: the flush is the point.
	err := pgx.BeginTxFunc(ctx, b.db, pgx.TxOptions{BeginQuery: `BEGIN; SET LOCAL synchronous_commit TO on`}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO bot_attempt (outbox_id, part) VALUES ($1, $2)
ON CONFLICT (outbox_id, part) DO UPDATE SET part = EXCLUDED.part`, id, part)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the attempt to post %d/%s: %w", id, part, err)
	}
	return nil
}

// clearAttempt forgets an attempt the platform answered with a refusal (a
// rate limit, a permanent error): it did not post.
func (b *Bot) clearAttempt(ctx context.Context, id int64, part string) error {
	if _, err := b.db.Exec(ctx, `DELETE FROM bot_attempt WHERE outbox_id = $1 AND part = $2`, id, part); err != nil {
		return fmt.Errorf("clear the attempt to post %d/%s: %w", id, part, err)
	}
	return nil
}

// deadAnchorInfo is why a stream's anchor will never exist.
type deadAnchorInfo struct {
	reason string // for operators
	code   string // the platform's short error code, for the notice
}

// deadAnchor returns why the anchor of stream for target failed for good;
// ok is false when it is not recorded dead.
func (b *Bot) deadAnchor(ctx context.Context, stream, target string) (deadAnchorInfo, bool, error) {
	var d deadAnchorInfo
	err := b.db.QueryRow(ctx, `SELECT reason, code FROM bot_anchor_dead WHERE stream = $1 AND target = $2`, stream, target).Scan(&d.reason, &d.code)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("read dead anchor %s/%s: %w", stream, target, err)
	}
	return d, true, nil
}

// recordDeadAnchor records that the anchor of stream for target failed for
// good (the first record wins) and returns the record that holds.
func (b *Bot) recordDeadAnchor(ctx context.Context, stream, target string, id int64, d deadAnchorInfo) (deadAnchorInfo, error) {
	if _, err := b.db.Exec(ctx, `INSERT INTO bot_anchor_dead (stream, target, outbox_id, reason, code) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (stream, target) DO NOTHING`, stream, target, id, d.reason, d.code); err != nil {
		return d, fmt.Errorf("record dead anchor %s/%s: %w", stream, target, err)
	}
	got, ok, err := b.deadAnchor(ctx, stream, target)
	if err != nil || !ok {
		return d, err
	}
	return got, nil
}

// claimNotice makes row id the one that tells the other side about the dead
// anchor of stream for target, unless another row already did; it reports
// whether row id carries the notice.
func (b *Bot) claimNotice(ctx context.Context, stream, target string, id int64) (bool, error) {
	tag, err := b.db.Exec(ctx, `UPDATE bot_anchor_dead SET notice_row = $3
WHERE stream = $1 AND target = $2 AND (notice_row IS NULL OR notice_row = $3)`, stream, target, id)
	if err != nil {
		return false, fmt.Errorf("claim the notice for dead anchor %s/%s: %w", stream, target, err)
	}
	return tag.RowsAffected() == 1, nil
}

// anchorLost reports whether stream's anchor target (an incident's card)
// will never be posted by what is queued: it is not recorded, no event of
// the stream is pending, and its post failed for good (recorded dead: the
// rest of its row may have gone out) or an event of it went dead. seq is
// the newest notification sequence the stream's events carried (payload
// "seq"), what a repost checks nothing went out since.
func (b *Bot) anchorLost(ctx context.Context, stream, target string) (lost bool, seq int, err error) {
	err = b.db.QueryRow(ctx, `
SELECT NOT EXISTS (SELECT 1 FROM bot_anchor WHERE stream = $1 AND target = $2)
        AND NOT EXISTS (SELECT 1 FROM outbox WHERE stream = $1 AND delivered_at IS NULL AND dead_at IS NULL)
        AND (EXISTS (SELECT 1 FROM bot_anchor_dead WHERE stream = $1 AND target = $2)
             OR EXISTS (SELECT 1 FROM outbox WHERE stream = $1 AND dead_at IS NOT NULL)),
    coalesce((SELECT max((payload->>'seq')::int) FROM outbox WHERE stream = $1), 0)`, stream, target).Scan(&lost, &seq)
	if err != nil {
		return false, 0, fmt.Errorf("is the %s of %s lost: %w", target, stream, err)
	}
	return lost, seq, nil
}

// earlierRows reports whether a row of row's stream before it is still
// pending, and the last error of the latest one that went dead.
func (b *Bot) earlierRows(ctx context.Context, row outbox.Row) (pending bool, deadReason string, err error) {
	var reason *string
	err = b.db.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM outbox WHERE stream = $1 AND id < $2 AND delivered_at IS NULL AND dead_at IS NULL),
       (SELECT last_error FROM outbox WHERE stream = $1 AND id < $2 AND dead_at IS NOT NULL ORDER BY id DESC LIMIT 1)`,
		row.Stream, row.ID).Scan(&pending, &reason)
	if err != nil {
		return false, "", fmt.Errorf("read earlier events of %s: %w", row.Stream, err)
	}
	if reason != nil {
		deadReason = *reason
	}
	return pending, deadReason, nil
}
