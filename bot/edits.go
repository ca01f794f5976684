package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Edits and deletions of relayed thread messages (issue 14, item 8). A
// thread message relayed to the other side of its case is recorded with
// the message it became there (bot_relay, migrations/0015, written with the
// relay's delivery). When its author edits it, the relayed message is
// edited to match; when it is deleted, the relayed message says "(message
// deleted)". The edit or deletion is an inbound event like a
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
	// Part is which of the Parts messages a long text was relayed as is
	// this one (0 for the first, or the only one; relayParts).
	Part, Parts int
}

// msgDeleted is what a relayed message says once its original is
// deleted. Neither platform's event says by whom: its author, or a
// moderator or admin of that side.
const msgDeleted = "(message deleted)"

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
INSERT INTO bot_relay (source_platform, source_channel, source_message, part, parts, stream, target, platform, workspace, channel, message, side, author_id, author_name)
VALUES ($1, $2, $3, $12, $14, $4, $5, $6, $7, $8, $9, $10, $11, $13)
ON CONFLICT (source_platform, source_channel, source_message, part) DO UPDATE SET
    stream = EXCLUDED.stream, target = EXCLUDED.target, platform = EXCLUDED.platform, workspace = EXCLUDED.workspace,
    channel = EXCLUDED.channel, message = EXCLUDED.message`,
		string(src.Source.Platform), src.Source.Channel, src.Source.Message, stream, target,
		string(ref.Platform), ref.Workspace, ref.Channel, ref.Message, string(src.Side), src.AuthorID, src.Part, src.Author, max(src.Parts, src.Part+1)); err != nil {
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

// relaysOf reads the messages src was relayed as, in order: none when it
// was never relayed, several when it was long (relayParts).
func (b *Bot) relaysOf(ctx context.Context, src Ref) ([]relayed, error) {
	rows, err := b.db.Query(ctx, `SELECT stream, target, platform, workspace, channel, message, side, author_id, author_name, part, parts
FROM bot_relay WHERE source_platform = $1 AND source_channel = $2 AND source_message = $3 ORDER BY part`,
		string(src.Platform), src.Channel, src.Message)
	if err != nil {
		return nil, fmt.Errorf("read the relay of message %s: %w", src.Message, err)
	}
	var out []relayed
	for rows.Next() {
		var r relayed
		var p, side string
		if err := rows.Scan(&r.Stream, &r.Target, &p, &r.Ref.Workspace, &r.Ref.Channel, &r.Ref.Message,
			&side, &r.AuthorID, &r.Author, &r.Part, &r.Parts); err != nil {
			return nil, fmt.Errorf("read the relay of message %s: %w", src.Message, err)
		}
		r.Ref.Platform, r.Side, r.Source = Platform(p), Side(side), src
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the relay of message %s: %w", src.Message, err)
	}
	return out, nil
}

// relayChange passes an edit or a deletion of a thread message to the
// message it was relayed as.
func (b *Bot) relayChange(ctx context.Context, r Reply) error {
	rels, err := b.relaysOf(ctx, r.Message)
	if err != nil {
		return err
	}
	if len(rels) == 0 {
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
		if rels, err = b.relaysOf(ctx, r.Message); err != nil {
			return err
		}
		if len(rels) == 0 {
			return nil // never relayed (not a case's thread, or not someone who may write there): nothing to change
		}
	} else {
		// A long message is relayed in parts, recorded one by one: wait
		// for all of them, and read them again once none is pending (the
		// last may have been recorded since the first read).
		pending, err := b.relayPending(ctx, r)
		if err != nil {
			return err
		}
		if pending {
			return fmt.Errorf("message %s is still being relayed: its %s waits for it", r.Message.Message, r.Change)
		}
		if rels, err = b.relaysOf(ctx, r.Message); err != nil {
			return err
		}
	}
	rel := rels[0]
	if r.Change == ReplyEdited && r.Author.ID != "" && rel.AuthorID != "" && r.Author.ID != rel.AuthorID {
		b.log.Info("not relaying an edit by someone other than the message's author", "message", r.Message.Message)
		return nil
	}
	ref, isCase := strings.CutPrefix(rel.Stream, "case:")
	if !isCase {
		return nil
	}
	c, err := b.cases.Get(ctx, Scope{All: true}, ref)
	if err != nil {
		return err
	}
	// A channel a reload gave to another org gets none of the case, edits
	// included: an expert's message was relayed into the org's thread (the
	// receipt's), a requester's into the desk card's thread, which the
	// desk's former channel, given to an org, must not get. The anchor
	// says which channel (a relayed message's own ref names the thread on
	// Discord, which no org lists).
	role, anchor, p := "threat expert", targetReceipt, part{key: "relay.edit", org: c.Org}
	if rel.Side == SideRequester {
		role, anchor, p = "requester, "+b.orgName(c.Org), targetDesk, part{key: "relay.edit", thread: targetDesk}
	}
	at, ok, err := b.anchorOf(ctx, rel.Stream, anchor)
	if err != nil {
		return err
	}
	if ok {
		if err := b.stillTheirs(p, at); err != nil {
			b.log.Warn("not editing a relayed message in a channel now another org's", "case", ref, "err", err)
			return nil
		}
	}
	// Each piece goes to its part; a part that was never posted (it failed
	// for good) is a gap, and one removed since fails for good on its own:
	// the others are still edited.
	ms := editedRelays(rel.Author, role, r, max(rel.Parts, rels[len(rels)-1].Part+1))
	var errs []error
	for _, p := range rels {
		err := b.editRelay(ctx, ref, p.Ref, ms[p.Part])
		if err == nil {
			continue
		}
		if kind, _ := Classify(err); kind == Permanent {
			b.log.Warn("a part of a relayed message could not be edited", "case", ref, "part", p.Part+1, "err", err)
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// editedRelays are the messages that n relayed parts of a message become
// once it was edited or deleted. An edit is split as the original was
// (relayParts): parts it no longer needs say so, and an edit needing more
// parts than were relayed ends the last with how much did not fit (the
// original, on the other side, has it all).
func editedRelays(author, role string, r Reply, n int) []Message {
	italic := func(s string) Line { return Line{Span{Text: s, Style: StyleItalic}} }
	out := make([]Message, n)
	if r.Change == ReplyDeleted {
		for i := range out {
			out[i] = Message{Text: []Line{relayHead(author, role, i, n), italic(msgDeleted)}, Fallback: author + ": " + msgDeleted}
		}
		return out
	}
	pieces := textParts(r.Text, maxTextRunes)
	var left int
	if len(pieces) > n {
		for _, p := range pieces[n:] {
			left += utf8.RuneCountInString(p)
		}
		pieces = pieces[:n]
	}
	for i := range out {
		head := relayHead(author, role, i, n)
		switch {
		case i >= len(pieces):
			out[i] = Message{Text: []Line{head, italic("(edited: the message is shorter now, and this part is no longer part of it)")},
				Fallback: author + ": (edited)"}
		default:
			marker := "(edited)"
			if i == n-1 && left > 0 {
				marker = "(edited: " + plural.Count(left, "more character", "more characters") + " did not fit here; the original message has them)"
			}
			// The marker follows the text, as small print.
			out[i] = Message{Text: []Line{head}, Quote: quoted(pieces[i]), Footer: italic(marker), Fallback: cut(author+": "+pieces[i], maxListLineRunes)}
		}
	}
	return out
}

// editRelay edits one relayed message of case ref.
func (b *Bot) editRelay(ctx context.Context, ref string, to Ref, m Message) error {
	a, ok := b.adapter(to.Platform)
	if !ok {
		return fmt.Errorf("no %s adapter to edit a relayed message", to.Platform)
	}
	if err := b.pacer.wait(ctx, to.Platform, to.Channel); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	defer cancel()
	if err := a.Update(cctx, to, m); err != nil {
		return fmt.Errorf("edit the relayed message %s of %s: %w", to.Message, ref, err)
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
