package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// The experts' on-call rotation, as the bot consumes it: who holds the
// pager (mentioned on new desk cards, told of high-priority cases, named
// in SLA warnings), who is paged next, `/experts oncall` and
// `/experts oncall take`, and the announcement of a take in the desk. The
// oncall package keeps the rotation; NewOncallRota adapts it.

// OnCallMember is a person on the rotation: a user on a platform.
type OnCallMember struct {
	Platform Platform
	ID       string
}

// IsZero reports whether m names nobody.
func (m OnCallMember) IsZero() bool { return m.ID == "" }

// OnCallNow is who holds the pager at a moment.
type OnCallNow struct {
	// Member holds it until Until (the next hand-over, or the end of their
	// take); Next holds it from then.
	Member OnCallMember
	Until  time.Time
	Next   OnCallMember
	// Scheduled is who the schedule puts on call; Taken is true when Member
	// took the pager from them (`/experts oncall take`).
	Scheduled OnCallMember
	Taken     bool
}

// PagerTaken is an announcement that an expert took the pager.
type PagerTaken struct {
	// Member holds the pager until Until; Displaced held it before; Next
	// holds it from Until.
	Member, Displaced, Next OnCallMember
	Until                   time.Time
}

// OnCallPage is whom a case nobody took pages: Member, who holds the
// pager now when Holder (someone else held it when the case opened), else
// the next expert on the rotation.
type OnCallPage struct {
	Member OnCallMember
	Holder bool
}

// OnCall is what the bot needs from the on-call rotation.
type OnCall interface {
	// Current is who holds the pager at now; ok is false when no rotation
	// is configured. Only current members of the rotation are ever named.
	Current(ctx context.Context, now time.Time) (cur OnCallNow, ok bool, err error)
	// WhoToPage is whom to page at now about a case opened at opened that
	// nobody took: the next expert on the rotation after whoever holds the
	// pager, or the holder when the pager changed hands since the case
	// opened (the earlier holder was told, they were not). ok is false
	// when there is nobody.
	WhoToPage(ctx context.Context, opened, now time.Time) (p OnCallPage, ok bool, err error)
	// Take makes m hold the pager from now until the next hand-over,
	// recorded and announced (an outbox event DecodeEvent reads). A take the
	// rotation refuses (m is not on it, already holds the pager, no rotation
	// is configured) is a *Refusal.
	Take(ctx context.Context, m OnCallMember, now time.Time) (OnCallNow, error)
	// DecodeEvent reads an outbox row of the rotation's; ok is false for
	// kinds that are not its.
	DecodeEvent(kind string, payload json.RawMessage) (ev PagerTaken, ok bool, err error)
}

// UseOnCall gives the bot the experts' rotation. Call it before Start;
// without it nobody is on call (cards name nobody, pages go to managers).
func (b *Bot) UseOnCall(o OnCall) { b.onCall = o }

// oncallCommand answers `/experts oncall` and `/experts oncall take`.
func (b *Bot) oncallCommand(ctx context.Context, w who, r request) (Message, error) {
	if b.onCall == nil {
		return Message{}, &Refusal{Msg: noRotation}
	}
	now := b.now()
	if r.take {
		cur, err := b.onCall.Take(ctx, OnCallMember{Platform: w.user.Platform, ID: w.user.ID}, now)
		if err != nil {
			return Message{}, err
		}
		return Message{Text: []Line{{T("You hold the pager until "), b.when(cur.Until), T(". The desk has been told.")}},
			Fallback: "You hold the pager until " + zoned(cur.Until, b.cfg.Location)}, nil
	}
	cur, ok, err := b.onCall.Current(ctx, now)
	if err != nil {
		return Message{}, err
	}
	if !ok {
		return Message{}, &Refusal{Msg: noRotation}
	}
	holder := b.personOf(ctx, cur.Member.Platform, cur.Member.ID)
	m := Message{Title: "On call", Fallback: "On call: " + holder.name}
	now1 := Line{B(holder.name)}
	if cur.Taken {
		now1 = append(now1, T(" (took the pager from "+b.personOf(ctx, cur.Scheduled.Platform, cur.Scheduled.ID).name+")"))
	}
	m.Fields = []Field{
		{Label: "Now", Value: now1},
		{Label: "Until", Value: Line{b.when(cur.Until), T(" (in " + duration(cur.Until.Sub(now)) + ")")}},
		{Label: "Next", Value: Line{T(b.personOf(ctx, cur.Next.Platform, cur.Next.ID).name)}},
	}
	m.Footer = Line{T("Experts on the rotation take the pager until the next hand-over with /experts oncall take.")}
	return m, nil
}

const noRotation = "No on-call rotation is configured: an admin sets oncall.handover and oncall.rotation in the config file."

// renderTaken announces a take in the desk channel.
func (b *Bot) renderTaken(ctx context.Context, ev PagerTaken) []part {
	name := func(m OnCallMember) string {
		if m.IsZero() {
			return "nobody"
		}
		return b.personOf(ctx, m.Platform, m.ID).name
	}
	line := Line{B("On call: "), T(name(ev.Member) + " took the pager until "), b.when(ev.Until), T(", from " + name(ev.Displaced) + ".")}
	if !ev.Next.IsZero() {
		line = append(line, T(" Next: "+name(ev.Next)+"."))
	}
	return []part{{key: "desk", dest: b.cfg.Desk.DeskDest(), msg: note(line...)}}
}

// decodeOnCall renders a row of the rotation's, when it is one; ok is
// false for other rows.
func (b *Bot) decodeOnCall(ctx context.Context, row outbox.Row) (parts []part, ok bool, err error) {
	if b.onCall == nil {
		return nil, false, nil
	}
	ev, ok, err := b.onCall.DecodeEvent(row.Kind, row.Payload)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
	}
	return b.renderTaken(ctx, ev), true, nil
}
