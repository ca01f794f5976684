package casework

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Entry is one event on a case's timeline.
type Entry struct {
	// Seq numbers a case's entries from 1; At is when it happened; Kind is
	// the event kind (EventOpened, ...).
	Seq  int
	At   time.Time
	Kind string
	// Actor is who caused it: role, user id and display name.
	Actor Actor
	// Detail is the event's payload as JSON (the same struct as the outbox
	// payload of Kind).
	Detail json.RawMessage
	// PrevHash and Hash chain the entries: Hash = SHA-256(PrevHash || content).
	PrevHash []byte
	Hash     []byte
}

// genesis is the PrevHash of a case's first entry.
var genesis = make([]byte, sha256.Size)

// canonical is the content an entry's hash covers, in a fixed field order.
type canonical struct {
	Case      string          `json:"case"`
	Seq       int             `json:"seq"`
	At        string          `json:"at"`
	Kind      string          `json:"kind"`
	ActorRole Role            `json:"actor_role"`
	ActorID   string          `json:"actor_id"`
	ActorName string          `json:"actor_name"`
	Detail    json.RawMessage `json:"detail"`
}

func entryHash(ref string, e Entry) ([]byte, error) {
	b, err := json.Marshal(canonical{Case: ref, Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Kind: e.Kind,
		ActorRole: e.Actor.Role, ActorID: e.Actor.UserID, ActorName: e.Actor.DisplayName, Detail: e.Detail})
	if err != nil {
		return nil, fmt.Errorf("encode timeline entry %d of %s: %w", e.Seq, ref, err)
	}
	h := sha256.New()
	h.Write(e.PrevHash)
	h.Write(b)
	return h.Sum(nil), nil
}

// record appends an event to x's timeline and, when emit is set, to the
// outbox on the case's stream, both in tx.
func (s *Service) record(ctx context.Context, tx pgx.Tx, x *row, at time.Time, actor Actor, kind string, payload any, emit bool) error {
	detail, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s of %s: %w", kind, x.Ref, err)
	}
	prev := x.timelineHead
	if prev == nil {
		prev = genesis
	}
	e := Entry{Seq: x.timelineLen + 1, At: at, Kind: kind, Actor: actor, Detail: detail, PrevHash: prev}
	if e.Hash, err = entryHash(x.Ref, e); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO case_timeline (case_number, seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		x.Number, e.Seq, e.At, e.Kind, e.Actor.Role, e.Actor.UserID, e.Actor.DisplayName, string(e.Detail), e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("append %s to the timeline of %s: %w", kind, x.Ref, err)
	}
	x.timelineLen, x.timelineHead = e.Seq, e.Hash
	if emit {
		if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kind, Stream: Stream(x.Ref), Payload: payload}); err != nil {
			return fmt.Errorf("record %s of %s: %w", kind, x.Ref, err)
		}
	}
	return nil
}

// Timeline returns every event of a case in order, as v sees it. Org
// members do not see internal notes.
func (s *Service) Timeline(ctx context.Context, v Viewer, ref string) ([]Entry, error) {
	_, entries, err := s.timeline(ctx, v, ref)
	if err != nil {
		return nil, err
	}
	if v.all {
		return entries, nil
	}
	out := entries[:0:0]
	for _, e := range entries {
		if e.Kind == EventMessageAdded {
			var m MessageAddedEvent
			if json.Unmarshal(e.Detail, &m) == nil && m.Internal {
				continue
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Service) timeline(ctx context.Context, v Viewer, ref string) (*row, []Entry, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, nil, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, fmt.Errorf("read timeline of %s: begin: %w", FormatRef(number), err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	x, err := s.load(ctx, tx, v, number, false)
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, `SELECT seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash
 FROM case_timeline WHERE case_number = $1 ORDER BY seq`, number)
	if err != nil {
		return nil, nil, fmt.Errorf("read timeline of %s: %w", x.Ref, err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		var detail string
		err := r.Scan(&e.Seq, &e.At, &e.Kind, &e.Actor.Role, &e.Actor.UserID, &e.Actor.DisplayName, &detail, &e.PrevHash, &e.Hash)
		e.At = e.At.UTC()
		e.Detail = json.RawMessage(detail)
		return e, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read timeline of %s: %w", x.Ref, err)
	}
	return x, entries, nil
}

// VerifyTimeline checks a case's hash chain: every entry's hash over its
// content and its predecessor's hash, consecutive sequence numbers, and the
// head and length kept on the case. It returns nil when intact, or a
// *TamperError naming the first entry that fails.
func (s *Service) VerifyTimeline(ctx context.Context, v Viewer, ref string) error {
	x, entries, err := s.timeline(ctx, v, ref)
	if err != nil {
		return err
	}
	tamper := func(seq int, format string, args ...any) error {
		return &TamperError{Ref: x.Ref, Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	prev := genesis
	for i, e := range entries {
		want := i + 1
		if e.Seq != want {
			return tamper(want, "entry %d is missing (found %d next)", want, e.Seq)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			return tamper(e.Seq, "it does not follow its predecessor (an entry before it was changed or removed)")
		}
		h, err := entryHash(x.Ref, Entry{Seq: e.Seq, At: e.At, Kind: e.Kind, Actor: e.Actor, Detail: e.Detail, PrevHash: e.PrevHash})
		if err != nil {
			return err
		}
		if !bytes.Equal(h, e.Hash) {
			return tamper(e.Seq, "its content no longer matches its hash (it was edited)")
		}
		prev = e.Hash
	}
	if len(entries) != x.timelineLen {
		return tamper(len(entries)+1, "the case records %d entries but %d remain", x.timelineLen, len(entries))
	}
	head := x.timelineHead
	if head == nil {
		head = genesis
	}
	if !bytes.Equal(prev, head) {
		return tamper(len(entries), "the last entry's hash %s is not the head recorded on the case %s",
			hex.EncodeToString(prev)[:12], hex.EncodeToString(head)[:12])
	}
	return nil
}
