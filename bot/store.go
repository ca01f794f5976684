package bot

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
		// Posted at last (a card posted again): it is no longer dead.
		if _, err := tx.Exec(ctx, `DELETE FROM bot_anchor_dead WHERE stream = $1 AND target = $2`, stream, target); err != nil {
			return fmt.Errorf("record anchor %s/%s: %w", stream, target, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record delivery %d/%s: commit: %w", id, part, err)
	}
	return nil
}

// markThread records msg, a reply in the case thread of parent that is
// stored (or one a catch-up read through), as taken from it
// (bot_thread_mark) when it is newer than the mark: where a catch-up after
// the platform may have missed delivering messages starts reading
// (ReplyMark, CaseThreads). Best effort: a mark left behind only makes a
// catch-up read, and hand over again, a few messages the inbound and chat
// keys already hold.
func (b *Bot) markThread(ctx context.Context, parent, msg Ref) {
	v, ok := markValue(msg.Platform, msg.Message)
	if !ok || v < b.firstMark(parent) {
		return // never behind where a catch-up would start without one
	}
	_, err := b.db.Exec(ctx, `
INSERT INTO bot_thread_mark AS t (platform, thread, message) VALUES ($1, $2, $3)
ON CONFLICT (platform, thread) DO UPDATE SET message = EXCLUDED.message, updated_at = now()
WHERE t.message < EXCLUDED.message`, string(parent.Platform), threadKey(parent), v)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("record the newest message taken from a thread", "channel", parent.Channel, "thread", parent.Message, "err", err)
	}
}

// threadKey names the thread hanging off parent in bot_thread_mark.
func threadKey(parent Ref) string { return parent.Channel + "/" + parent.Message }

// markValue is a message id as a number that grows with time: a Discord
// snowflake, or a Slack ts ("1700000000.000100") in microseconds.
func markValue(p Platform, id string) (int64, bool) {
	if p == Slack {
		sec, frac, ok := strings.Cut(id, ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		f, err2 := strconv.ParseInt(frac, 10, 64)
		if !ok || len(frac) != 6 || err1 != nil || err2 != nil || s <= 0 {
			return 0, false
		}
		return s*1_000_000 + f, true
	}
	v, err := strconv.ParseInt(id, 10, 64)
	return v, err == nil && v > 0
}

// markAt is the smallest message id of platform p posted at t or later.
func markAt(p Platform, t time.Time) int64 {
	if p == Slack {
		return t.UnixMicro()
	}
	// A snowflake's top bits are milliseconds since Discord's epoch.
	const discordEpoch = 1420070400000
	return max(0, t.UnixMilli()-discordEpoch) << 22
}

// firstMark is where a catch-up starts reading the thread of parent when
// nothing was taken from it yet: its start, but no earlier than the
// inbound keys reach back (Inbound.Retention). An older message may have
// been handled before this deployment kept marks, and without its key it
// would be handled again, judged by today's state.
func (b *Bot) firstMark(parent Ref) int64 {
	start, _ := markValue(parent.Platform, parent.Message)
	return max(start, markAt(parent.Platform, b.now().Add(-b.cfg.Inbound.Retention)))
}

// MarkRead records that an adapter catching up on the thread of parent
// read it through message msg, every message up to it handed over or not
// meant for the bot (so that the next catch-up starts after it). The
// adapter calls it only when no older message of the thread is waiting to
// be handed over.
func (b *Bot) MarkRead(ctx context.Context, parent Ref, msg string) {
	b.current().markThread(ctx, parent, Ref{Platform: parent.Platform, Message: msg})
}

// markID is markValue's inverse.
func markID(p Platform, v int64) string {
	if p == Slack {
		return fmt.Sprintf("%d.%06d", v/1_000_000, v%1_000_000)
	}
	return strconv.FormatInt(v, 10)
}

// ThreadMark is a thread whose replies are relayed (it hangs off a case's
// receipt or desk card, Parent), and the message after which a catch-up
// reads it: the newest taken from it, else the thread's start.
type ThreadMark struct {
	Parent Ref
	After  string
}

// ReplyMark tells an adapter catching up on a thread whose messages its
// platform may not have delivered (a Discord gateway session that could
// not resume) whether the thread hanging off parent (as a Reply's Parent)
// is relayed, and after which message to read.
func (b *Bot) ReplyMark(ctx context.Context, parent Ref) (after string, ok bool, err error) {
	b = b.current()
	an, ok, err := b.anchorAt(ctx, parent)
	if err != nil || !ok || !strings.HasPrefix(an.Stream, "case:") {
		return "", false, err
	}
	var mark int64
	err = b.db.QueryRow(ctx, `SELECT message FROM bot_thread_mark WHERE platform = $1 AND thread = $2`, string(parent.Platform), threadKey(parent)).Scan(&mark)
	if errors.Is(err, pgx.ErrNoRows) {
		return markID(parent.Platform, b.firstMark(parent)), true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the newest message taken from thread %s: %w", threadKey(parent), err)
	}
	// Never further back than the inbound keys reach (a mark of a thread
	// quiet for days is older).
	return markID(parent.Platform, max(mark, b.firstMark(parent))), true, nil
}

// CaseThreads lists, for an adapter catching up after its platform may
// have missed delivering messages (Slack after an outage longer than its
// retries), the threads on platform that hang off a case's receipt or
// desk card posted since since, newest first, at most limit.
func (b *Bot) CaseThreads(ctx context.Context, p Platform, since time.Time, limit int) ([]ThreadMark, error) {
	b = b.current()
	rows, err := b.db.Query(ctx, `
SELECT a.workspace, a.channel, a.message, m.message
FROM bot_anchor a
LEFT JOIN bot_thread_mark m ON m.platform = a.platform AND m.thread = a.channel || '/' || a.message
WHERE a.platform = $1 AND a.stream LIKE 'case:%' AND a.created_at >= $2
ORDER BY a.created_at DESC LIMIT $3`, string(p), since, limit)
	if err != nil {
		return nil, fmt.Errorf("list case threads on %s: %w", p, err)
	}
	defer rows.Close()
	var out []ThreadMark
	for rows.Next() {
		t := ThreadMark{Parent: Ref{Platform: p}}
		var mark *int64
		if err := rows.Scan(&t.Parent.Workspace, &t.Parent.Channel, &t.Parent.Message, &mark); err != nil {
			return nil, fmt.Errorf("list case threads on %s: %w", p, err)
		}
		after := b.firstMark(t.Parent)
		if mark != nil {
			after = max(after, *mark)
		}
		t.After = markID(p, after)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list case threads on %s: %w", p, err)
	}
	return out, nil
}
