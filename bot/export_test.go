package bot

import (
	"context"
	"errors"
	"time"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Internals the external tests (package bot_test, which may import
// bot/bottest) reach for.
var (
	Tokenize      = tokenize
	CutRunes      = cut
	DurationWords = durationWords
)

// Config is the bot's configuration, defaults filled.
func (b *Bot) Config() Config { return b.cfg }

// DeliverBatch claims and delivers one batch, as a worker does.
func (b *Bot) DeliverBatch(ctx context.Context) (int, error) { return b.deliverBatch(ctx) }

// DeliverRow leases row id and delivers it as a worker that got it would,
// whatever its place in its stream: Claim never hands out a row while an
// earlier row of its stream is pending, and this reaches past that.
func (b *Bot) DeliverRow(ctx context.Context, id int64) error {
	var row outbox.Row
	err := b.db.QueryRow(ctx, `UPDATE outbox SET locked_until = now() + interval '1 minute', attempts = attempts + 1 WHERE id = $1
RETURNING id, kind, stream, payload, attempts, created_at`, id).Scan(&row.ID, &row.Kind, &row.Stream, &row.Payload, &row.Attempts, &row.CreatedAt)
	if err != nil {
		return err
	}
	b.deliverRow(ctx, time.Now().Add(time.Minute), row)
	return nil
}

// CrashAfterAck makes the bot store and acknowledge inbound events but never
// work on them, as a process that dies right after each acknowledgement:
// their rows keep this process's lease until it runs out.
func (b *Bot) CrashAfterAck() { b.holdInbound.Store(true) }

// OnSettled calls f after each outbox or inbound row a worker has handled
// (delivered, retried, dead, given back). Set it before Start.
func (b *Bot) OnSettled(f func()) { b.settled = f }

// OnRelayMissed calls f when an edit or a deletion finds no relay of its
// message on its first read, before it looks whether one is pending. Set it
// before Start.
func (b *Bot) OnRelayMissed(f func()) { b.relayMissed = f }

// PruneInbound forgets old inbound keys, as the hourly housekeeping does.
func (b *Bot) PruneInbound(ctx context.Context) { b.pruneInbound(ctx) }

// CaseAnchors returns the receipt and the desk card of case ref, as the
// delivery recorded them (ok is false for one not posted yet).
func (b *Bot) CaseAnchors(ctx context.Context, ref string) (receipt, desk Ref, ok bool, err error) {
	receipt, okR, err := b.anchorOf(ctx, "case:"+ref, targetReceipt)
	if err != nil {
		return Ref{}, Ref{}, false, err
	}
	desk, okD, err := b.anchorOf(ctx, "case:"+ref, targetDesk)
	return receipt, desk, okR && okD, err
}

// OutboxIdle reports whether every outbox row is settled (delivered or dead).
func (b *Bot) OutboxIdle(ctx context.Context) bool {
	var n int
	err := b.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).Scan(&n)
	return err == nil && n == 0
}

// InboundIdle reports whether every stored inbound event is settled.
func (b *Bot) InboundIdle(ctx context.Context) bool {
	var n int
	err := b.db.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL`).Scan(&n)
	return err == nil && n == 0
}

// MarkAttempt records an attempt to post part of row id, as a delivery
// worker does before it calls the platform.
func (b *Bot) MarkAttempt(ctx context.Context, id int64, part string) error {
	return b.markAttempt(ctx, id, part)
}

// Thread marks (store.go).
var (
	MarkValue = markValue
	MarkID    = markID
	MarkAt    = markAt
)

// TakeBack is takeBack: an inbound event the sender is told was not done.
func (b *Bot) TakeBack(ctx context.Context, key string, p Platform, kind string) bool {
	return b.takeBack(ctx, key, p, kind)
}

// SettleStalled settles inbound event key as a worker of its attempt
// whose lease ran out would, once each way: retried, given back, dead and
// done.
func (b *Bot) SettleStalled(ctx context.Context, key string, p Platform, kind string, attempt int) {
	row := inboundRow{key: key, platform: p, kind: kind, attempts: attempt}
	b.settleRetry(ctx, row, 0, errors.New("slow"))
	b.release(ctx, row, errors.New("stopping"))
	b.settleDead(ctx, row, errors.New("gave up"))
	b.settleDone(ctx, row)
}
