package bot

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The bot's own tables (migrations/0004_bot.sql; 0006 in deliverstore.go): which message each outbox
// event produced, and the anchors later events edit and thread under. The
// inbound table is inbound.go's.

// anchor is a stream's card message for one target.
type anchor struct {
	Stream string
	Target string
	Ref    Ref
}

// anchorOf returns the anchor of stream for target; ok is false when none
// was posted (yet).
func (b *Bot) anchorOf(ctx context.Context, stream, target string) (Ref, bool, error) {
	var r Ref
	var p string
	err := b.db.QueryRow(ctx, `SELECT platform, workspace, channel, message FROM bot_anchor WHERE stream = $1 AND target = $2`,
		stream, target).Scan(&p, &r.Workspace, &r.Channel, &r.Message)
	if errors.Is(err, pgx.ErrNoRows) {
		return Ref{}, false, nil
	}
	if err != nil {
		return Ref{}, false, fmt.Errorf("read anchor %s/%s: %w", stream, target, err)
	}
	r.Platform = Platform(p)
	return r, true, nil
}

// shownDigest is a digest of what m shows, or nil when it cannot be taken
// (then every edit is sent).
func shownDigest(m Message) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// anchorShows reports whether the anchor of stream for target is known to
// show what digest stands for.
func (b *Bot) anchorShows(ctx context.Context, stream, target string, digest []byte) (bool, error) {
	if digest == nil {
		return false, nil
	}
	var same bool
	err := b.db.QueryRow(ctx, `SELECT coalesce(shown = $3, false) FROM bot_anchor WHERE stream = $1 AND target = $2`,
		stream, target, digest).Scan(&same)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("read what anchor %s/%s shows: %w", stream, target, err)
	}
	return same, nil
}

// setAnchorShown records what the anchor of stream for target shows now.
func (b *Bot) setAnchorShown(ctx context.Context, stream, target string, digest []byte) error {
	if _, err := b.db.Exec(ctx, `UPDATE bot_anchor SET shown = $3 WHERE stream = $1 AND target = $2`, stream, target, digest); err != nil {
		return fmt.Errorf("record what anchor %s/%s shows: %w", stream, target, err)
	}
	return nil
}

// anchorAt finds the stream and target whose anchor is the message at r.
func (b *Bot) anchorAt(ctx context.Context, r Ref) (anchor, bool, error) {
	a := anchor{Ref: r}
	err := b.db.QueryRow(ctx, `SELECT stream, target FROM bot_anchor WHERE platform = $1 AND channel = $2 AND message = $3`,
		string(r.Platform), r.Channel, r.Message).Scan(&a.Stream, &a.Target)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("find anchor of message %s: %w", r.Message, err)
	}
	return a, true, nil
}

// delivered returns the parts of outbox row id already sent, with their refs.
func (b *Bot) delivered(ctx context.Context, id int64) (map[string]Ref, error) {
	rows, err := b.db.Query(ctx, `SELECT part, platform, workspace, channel, message FROM bot_delivery WHERE outbox_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("read deliveries of %d: %w", id, err)
	}
	defer rows.Close()
	out := map[string]Ref{}
	for rows.Next() {
		var part, p string
		var r Ref
		if err := rows.Scan(&part, &p, &r.Workspace, &r.Channel, &r.Message); err != nil {
			return nil, fmt.Errorf("read deliveries of %d: %w", id, err)
		}
		r.Platform = Platform(p)
		out[part] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries of %d: %w", id, err)
	}
	return out, nil
}

// recordSent stores that part of row id produced r and, for an anchor part,
// makes r the stream's anchor for target, in one transaction.
func (b *Bot) recordSent(ctx context.Context, id int64, part string, r Ref, stream, target string) error {
	// The attempt marker (bot_attempt) goes with the record: the outcome is known.
	const insert = `
WITH known AS (DELETE FROM bot_attempt WHERE outbox_id = $1 AND part = $2)
INSERT INTO bot_delivery (outbox_id, part, platform, workspace, channel, message) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (outbox_id, part) DO NOTHING`
	if target == "" {
		if _, err := b.db.Exec(ctx, insert, id, part, string(r.Platform), r.Workspace, r.Channel, r.Message); err != nil {
			return fmt.Errorf("record delivery %d/%s: %w", id, part, err)
		}
		return nil
	}
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, insert, id, part, string(r.Platform), r.Workspace, r.Channel, r.Message); err != nil {
		return fmt.Errorf("record delivery %d/%s: %w", id, part, err)
	}
	if target != "" {
		if _, err := tx.Exec(ctx, `
INSERT INTO bot_anchor (stream, target, platform, workspace, channel, message) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (stream, target) DO UPDATE SET platform = EXCLUDED.platform, workspace = EXCLUDED.workspace,
    channel = EXCLUDED.channel, message = EXCLUDED.message, shown = NULL`,
			stream, target, string(r.Platform), r.Workspace, r.Channel, r.Message); err != nil {
			return fmt.Errorf("record anchor %s/%s: %w", stream, target, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record delivery %d/%s: commit: %w", id, part, err)
	}
	return nil
}

// markThread records msg as taken from its thread (bot_thread_mark), when
// it is newer than the mark: where a catch-up after a gateway session
// that missed messages starts reading (ReplyMark). Best effort: a mark left
// behind only makes a catch-up read, and hand over again, a few messages
// the inbound and chat keys already hold.
func (b *Bot) markThread(ctx context.Context, msg Ref) {
	id, err := strconv.ParseInt(msg.Message, 10, 64)
	if err != nil || id <= 0 {
		return
	}
	_, err = b.db.Exec(ctx, `
INSERT INTO bot_thread_mark AS t (platform, channel, message) VALUES ($1, $2, $3)
ON CONFLICT (platform, channel) DO UPDATE SET message = EXCLUDED.message, updated_at = now()
WHERE t.message < EXCLUDED.message`, string(msg.Platform), msg.Channel, id)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("record the newest message taken from a thread", "thread", msg.Channel, "err", err)
	}
}

// ReplyMark tells an adapter catching up on a thread whose messages its
// platform may not have delivered (a Discord gateway session that could
// not resume) whether the thread's replies are relayed (it hangs off a
// case's receipt or desk card: parent, as a Reply's Parent) and after which
// message to read: the newest taken from it, else the thread's start
// (Discord: the thread's id).
func (b *Bot) ReplyMark(ctx context.Context, parent Ref, thread string) (after string, ok bool, err error) {
	b = b.current()
	an, ok, err := b.anchorAt(ctx, parent)
	if err != nil || !ok || !strings.HasPrefix(an.Stream, "case:") {
		return "", false, err
	}
	var mark int64
	err = b.db.QueryRow(ctx, `SELECT message FROM bot_thread_mark WHERE platform = $1 AND channel = $2`, string(parent.Platform), thread).Scan(&mark)
	if errors.Is(err, pgx.ErrNoRows) {
		return thread, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the newest message taken from thread %s: %w", thread, err)
	}
	return strconv.FormatInt(mark, 10), true, nil
}
