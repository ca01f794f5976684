package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Edits and deletions of relayed thread messages (issue 14, item 8). A
// thread message relayed to the other side of its case is recorded with
// the message it became there (bot_relay, migrations/0015, written with the
// relay's delivery). When its author edits it, the relayed message is
// edited to match; when it is deleted, the relayed message says "(message
// deleted by its author)". The edit or deletion is an inbound event like a
// reply (durable, keyed on the platform's event), worked with retries: one
// that arrives before its original was relayed waits for it. Internal
// notes never cross, and neither do changes of a message that was not
// relayed (it has no record).

// relaySource is where a relayed message came from.
type relaySource struct {
	Source Ref
	Side   Side
	// AuthorID and Author are who wrote it (id, display name).
	AuthorID string
	Author   string
}

// msgDeleted is what a relayed message says once its original is deleted.
const msgDeleted = "(message deleted by its author)"

// relaySourceOf is the source of a relayed message event, or nil when it
// did not come from a chat message.
func relaySourceOf(ev CaseEvent) *relaySource {
	if ev.Chat.IsZero() || ev.Chat.Channel == "" {
		return nil
	}
	return &relaySource{Source: ev.Chat, Side: ev.Side, AuthorID: ev.ActorID, Author: ev.Actor}
}

// recordRelay records that src was relayed as ref, into the thread of
// stream's target.
func (b *Bot) recordRelay(ctx context.Context, stream, target string, src relaySource, ref Ref) error {
	if _, err := b.db.Exec(ctx, `
INSERT INTO bot_relay (source_platform, source_channel, source_message, stream, target, platform, workspace, channel, message, side, author_id, author_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (source_platform, source_channel, source_message) DO UPDATE SET
    stream = EXCLUDED.stream, target = EXCLUDED.target, platform = EXCLUDED.platform, workspace = EXCLUDED.workspace,
    channel = EXCLUDED.channel, message = EXCLUDED.message`,
		string(src.Source.Platform), src.Source.Channel, src.Source.Message, stream, target,
		string(ref.Platform), ref.Workspace, ref.Channel, ref.Message, string(src.Side), src.AuthorID, src.Author); err != nil {
		return fmt.Errorf("record the relay of message %s: %w", src.Source.Message, err)
	}
	return nil
}

// relayed is a relayed message as recorded.
type relayed struct {
	relaySource
	Stream, Target string
	Ref            Ref
}

func (b *Bot) relayOf(ctx context.Context, src Ref) (relayed, bool, error) {
	var r relayed
	var p, side string
	err := b.db.QueryRow(ctx, `SELECT stream, target, platform, workspace, channel, message, side, author_id, author_name
FROM bot_relay WHERE source_platform = $1 AND source_channel = $2 AND source_message = $3`,
		string(src.Platform), src.Channel, src.Message).Scan(&r.Stream, &r.Target, &p, &r.Ref.Workspace, &r.Ref.Channel, &r.Ref.Message,
		&side, &r.AuthorID, &r.Author)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("read the relay of message %s: %w", src.Message, err)
	}
	r.Ref.Platform, r.Side, r.Source = Platform(p), Side(side), src
	return r, true, nil
}

// relayChange passes an edit or a deletion of a thread message to the
// message it was relayed as.
func (b *Bot) relayChange(ctx context.Context, r Reply) error {
	rel, ok, err := b.relayOf(ctx, r.Message)
	if err != nil {
		return err
	}
	if !ok {
		if b.relayMissed != nil {
			b.relayMissed()
		}
		pending, err := b.relayPending(ctx, r)
		if err != nil {
			return err
		}
		if pending {
			return fmt.Errorf("message %s is not relayed yet: its %s waits for it", r.Message.Message, r.Change)
		}
		// The relay may have been recorded, and its outbox row settled,
		// between the first read and this one: a relay is recorded before
		// its row is settled, so a second read after "not pending" sees it.
		if rel, ok, err = b.relayOf(ctx, r.Message); err != nil {
			return err
		}
		if !ok {
			return nil // never relayed (not a case's thread, or not someone who may write there): nothing to change
		}
	}
	if r.Change == ReplyEdited && r.Author.ID != "" && rel.AuthorID != "" && r.Author.ID != rel.AuthorID {
		b.log.Info("not relaying an edit by someone other than the message's author", "message", r.Message.Message)
		return nil
	}
	ref, isCase := strings.CutPrefix(rel.Stream, "case:")
	if !isCase {
		return nil
	}
	head := Line{B(rel.Author), T(" (threat expert) wrote:")}
	if rel.Side == SideRequester {
		c, err := b.cases.Get(ctx, Scope{All: true}, ref)
		if err != nil {
			return err
		}
		head = Line{B(rel.Author), T(" (requester, " + b.orgName(c.Org) + ") wrote:")}
	}
	m := Message{Text: []Line{head}}
	switch r.Change {
	case ReplyDeleted:
		m.Text = append(m.Text, Line{Span{Text: msgDeleted, Style: StyleItalic}})
		m.Fallback = rel.Author + ": " + msgDeleted
	default:
		m.Text = append(m.Text, paragraphs(r.Text)...)
		m.Text = append(m.Text, Line{Span{Text: "(edited)", Style: StyleItalic}})
		m.Fallback = cut(rel.Author+": "+r.Text, maxListLineRunes)
	}
	a, ok := b.adapter(rel.Ref.Platform)
	if !ok {
		return fmt.Errorf("no %s adapter to edit a relayed message", rel.Ref.Platform)
	}
	if err := b.pacer.wait(ctx, rel.Ref.Platform, rel.Ref.Channel); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	defer cancel()
	if err := a.Update(cctx, rel.Ref, m); err != nil {
		return fmt.Errorf("edit the relayed message %s of %s: %w", rel.Ref.Message, ref, err)
	}
	return nil
}

// relayPending reports whether r's message may still be relayed: its own
// reply is still being worked, or the relay of it is still in the outbox.
func (b *Bot) relayPending(ctx context.Context, r Reply) (bool, error) {
	var pending bool
	err := b.db.QueryRow(ctx, `SELECT
    EXISTS (SELECT 1 FROM bot_inbound WHERE kind = 'reply' AND done_at IS NULL AND dead_at IS NULL
            AND payload->'reply'->'Message'->>'Message' = $1 AND payload->'reply'->'Message'->>'Channel' = $2
            AND coalesce(payload->'reply'->>'Change', '') = '')
 OR EXISTS (SELECT 1 FROM outbox WHERE kind = 'case.message_added' AND delivered_at IS NULL AND dead_at IS NULL
            AND payload->'source'->>'message' = $1 AND payload->'source'->>'channel' = $2)`,
		r.Message.Message, r.Message.Channel).Scan(&pending)
	if err != nil {
		return false, fmt.Errorf("look for the relay of message %s: %w", r.Message.Message, err)
	}
	return pending, nil
}
