package casework

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Timeline algorithms, per entry (case_timeline.alg).
const (
	// algLegacy: Hash = SHA-256(PrevHash || content), unkeyed. Written
	// before the chain was keyed (migration 0008); still verified, but only
	// as the recorded prefix of a case that existed then.
	algLegacy = 1
	// algHMAC: Hash = HMAC-SHA256(timeline subkey, PrevHash || content).
	// Every entry written now.
	algHMAC = 2
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
	// PrevHash and Hash chain the entries: Hash = HMAC-SHA256(timeline
	// subkey of THREATDESK_SECRET_KEY, PrevHash || content), or, for a
	// legacy entry (Keyed false), SHA-256(PrevHash || content).
	PrevHash []byte
	Hash     []byte
	// Keyed is false for legacy entries, written before the chain was keyed.
	Keyed bool
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

func entryContent(ref string, e Entry) ([]byte, error) {
	b, err := json.Marshal(canonical{Case: ref, Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Kind: e.Kind,
		ActorRole: e.Actor.Role, ActorID: e.Actor.UserID, ActorName: e.Actor.DisplayName, Detail: e.Detail})
	if err != nil {
		return nil, fmt.Errorf("encode timeline entry %d of %s: %w", e.Seq, ref, err)
	}
	return b, nil
}

// legacyHash is the unkeyed hash of entries written before the chain was keyed.
func legacyHash(ref string, e Entry) ([]byte, error) {
	b, err := entryContent(ref, e)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(e.PrevHash)
	h.Write(b)
	return h.Sum(nil), nil
}

// entryHash is the keyed hash of an entry.
func (s *Service) entryHash(ref string, e Entry) ([]byte, error) {
	b, err := entryContent(ref, e)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, s.entryKey)
	h.Write(e.PrevHash)
	h.Write(b)
	return h.Sum(nil), nil
}

// headMAC binds a case's chain head, its length and its count of legacy
// entries to the key, so that neither truncating the chain (and pointing
// the head at an earlier entry) nor passing keyed entries off as legacy ones
// can be done without the key.
func (s *Service) headMAC(x *row) []byte {
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], uint64(x.timelineLen))
	binary.BigEndian.PutUint64(n[8:], uint64(x.legacyLen))
	head := x.timelineHead
	if head == nil {
		head = genesis
	}
	return s.cfg.Key.MAC(secrets.PurposeTimelineHead, []byte("case-head"), []byte(x.Ref), n[:], head)
}

// keyingMAC binds the legacy cutoff to the key.
func (s *Service) keyingMAC(cutoff int64) []byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(cutoff))
	return s.cfg.Key.MAC(secrets.PurposeTimelineHead, []byte("legacy-cutoff"), n[:])
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
	e := Entry{Seq: x.timelineLen + 1, At: at, Kind: kind, Actor: actor, Detail: detail, PrevHash: prev, Keyed: true}
	if e.Hash, err = s.entryHash(x.Ref, e); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO case_timeline (case_number, seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash, alg)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		x.Number, e.Seq, e.At, e.Kind, e.Actor.Role, e.Actor.UserID, e.Actor.DisplayName, string(e.Detail), e.PrevHash, e.Hash, algHMAC); err != nil {
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
	x, entries, _, err := s.readTimeline(ctx, v, ref, false)
	return x, entries, err
}

// readTimeline reads a case and its entries in one snapshot, and with
// keying the state of the timeline keying.
func (s *Service) readTimeline(ctx context.Context, v Viewer, ref string, keying bool) (*row, []Entry, *keyState, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read timeline of %s: begin: %w", FormatRef(number), err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	x, err := s.load(ctx, tx, v, number, false)
	if err != nil {
		return nil, nil, nil, err
	}
	var ks *keyState
	if keying {
		if ks, err = s.readKeying(ctx, tx, false); err != nil {
			return nil, nil, nil, err
		}
	}
	byCase, err := s.readEntries(ctx, tx, []int64{number})
	if err != nil {
		return nil, nil, nil, err
	}
	return x, byCase[number], ks, nil
}

// readEntries reads the timelines of the given cases, each in order.
func (s *Service) readEntries(ctx context.Context, q pgxQuerier, numbers []int64) (map[int64][]Entry, error) {
	rows, err := q.Query(ctx, `SELECT case_number, seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash, alg
 FROM case_timeline WHERE case_number = ANY($1) ORDER BY case_number, seq`, numbers)
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][]Entry, len(numbers))
	for rows.Next() {
		var e Entry
		var n int64
		var detail string
		var alg int16
		if err := rows.Scan(&n, &e.Seq, &e.At, &e.Kind, &e.Actor.Role, &e.Actor.UserID, &e.Actor.DisplayName, &detail,
			&e.PrevHash, &e.Hash, &alg); err != nil {
			return nil, fmt.Errorf("read timelines: %w", err)
		}
		e.At = e.At.UTC()
		e.Detail = json.RawMessage(detail)
		e.Keyed = alg == algHMAC // the table allows only algLegacy and algHMAC
		out[n] = append(out[n], e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	return out, nil
}

// VerifyTimeline checks a case's keyed hash chain: every entry's HMAC over
// its content and its predecessor's hash, consecutive sequence numbers, the
// head and length kept on the case, and the keyed MAC over them. Legacy
// (unkeyed) entries pass only as the recorded prefix of a case that existed
// before the chain was keyed. It returns nil when intact, a *TamperError
// naming the first entry that fails, or a *KeyingError when the keying record
// itself fails.
func (s *Service) VerifyTimeline(ctx context.Context, v Viewer, ref string) error {
	x, entries, ks, err := s.readTimeline(ctx, v, ref, true)
	if err != nil {
		return err
	}
	return s.verifyChain(x, entries, ks)
}

// verifyChain checks one case's entries against its row; pure.
func (s *Service) verifyChain(x *row, entries []Entry, ks *keyState) error {
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
		var h []byte
		var err error
		switch {
		case e.Keyed && e.Seq > x.legacyLen:
			h, err = s.entryHash(x.Ref, e)
		case e.Keyed:
			return tamper(e.Seq, "a keyed entry stands where the case records a legacy one")
		case x.Number > ks.cutoff:
			return tamper(e.Seq, "it is an unkeyed entry, but %s was opened after the timeline was keyed (rewritten without the key)", x.Ref)
		case e.Seq > x.legacyLen:
			return tamper(e.Seq, "it is an unkeyed entry after the chain became keyed (rewritten without the key)")
		default:
			h, err = legacyHash(x.Ref, e)
		}
		if err != nil {
			return err
		}
		if !hmac.Equal(h, e.Hash) {
			return tamper(e.Seq, "its content no longer matches its hash (it was edited, or rehashed without the key)")
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
	switch {
	case x.timelineMAC == nil && (ks.sealed || x.Number > ks.cutoff):
		return tamper(x.timelineLen, "the case's chain head carries no MAC (it was removed)")
	case x.timelineMAC == nil:
		// A case from before the chain was keyed, not sealed yet: its legacy
		// entries verify as they always did.
	case !hmac.Equal(x.timelineMAC, s.headMAC(x)):
		return tamper(x.timelineLen, "the MAC over the chain head does not verify (the head, the length or the legacy count was changed without the key)")
	}
	return nil
}
