package casework

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Verification is the result of checking a case's timeline chain (Verify).
type Verification struct {
	Ref string `json:"ref"`
	// Intact is true when every entry and the head verify.
	Intact bool `json:"intact"`
	// Entries is how many entries the timeline holds.
	Entries int `json:"entries"`
	// Head is the chain head recorded on the case, in hex.
	Head string `json:"head"`
	// FailedSeq is the first entry that does not verify (0 when intact, or
	// when the keying record itself fails); Reason says why.
	FailedSeq int    `json:"failed_seq,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// CheckedAt is when the check ran (UTC).
	CheckedAt time.Time `json:"checked_at"`
}

// headAbbrev is how many hex digits of the head String shows.
const headAbbrev = 16

// String is the result as one sentence: "EOD-12: intact, 7 entries, head
// 3f2a9c01d4e5b6a7…", or which entry fails and why.
func (v *Verification) String() string {
	switch {
	case v.Intact:
		head := v.Head
		if len(head) > headAbbrev {
			head = head[:headAbbrev] + "…"
		}
		return fmt.Sprintf("%s: intact, %s, head %s", v.Ref, plural.Count(v.Entries, "entry", "entries"), head)
	case v.FailedSeq > 0:
		return fmt.Sprintf("%s: entry %d does not match: %s", v.Ref, v.FailedSeq, v.Reason)
	}
	return fmt.Sprintf("%s cannot be verified: %s", v.Ref, v.Reason)
}

// verification turns verifyChain's outcome into a Verification; errors
// other than a broken chain or keying record are returned.
func (s *Service) verification(x *row, entries []Entry, ks *keyState, at time.Time) (*Verification, error) {
	head := x.timelineHead
	if head == nil {
		head = genesis
	}
	res := &Verification{Ref: x.Ref, Entries: len(entries), Head: hex.EncodeToString(head), CheckedAt: at}
	var err error
	if ks == nil {
		err = &KeyingError{Reason: "the keying record could not be read"}
	} else {
		err = s.verifyChain(x, entries, ks)
	}
	var te *TamperError
	var ke *KeyingError
	switch {
	case err == nil:
		res.Intact = true
	case errors.As(err, &te):
		res.FailedSeq, res.Reason = te.Seq, te.Reason
	case errors.As(err, &ke):
		res.Reason = ke.Error()
	default:
		return nil, err
	}
	return res, nil
}

// Verify checks a case's keyed hash chain (as VerifyTimeline does) and
// returns the result, intact or not: for "/experts verify EOD-n". A
// case v may not see is ErrNotFound. A failed check is a result, not an
// error: it names the first entry that does not match.
func (s *Service) Verify(ctx context.Context, v Viewer, ref string) (*Verification, error) {
	x, entries, ks, err := s.readTimeline(ctx, v, ref, true)
	var ke *KeyingError
	if errors.As(err, &ke) {
		// The keying record fails: no entry can be trusted. Say so as the result.
		if x, entries, err = s.timeline(ctx, v, ref); err != nil {
			return nil, err
		}
		res, err := s.verification(x, entries, nil, s.cfg.now())
		if res != nil {
			res.Reason = ke.Error()
		}
		return res, err
	}
	if err != nil {
		return nil, err
	}
	return s.verification(x, entries, ks, s.cfg.now())
}

// Record is a case's full record, for "/experts export EOD-n": what it is
// about, the question, every message with its author and side, the status
// history, the SLA figures, and the timeline with each entry's hash and the
// chain's verification. Markdown and JSON render it as the files to upload.
type Record struct {
	Ref        string    `json:"ref"`
	Org        string    `json:"org"`
	Subject    Subject   `json:"subject"`
	Category   Category  `json:"category"`
	Priority   Priority  `json:"priority"`
	Question   string    `json:"question"`
	Requester  Person    `json:"requester"`
	Contact    string    `json:"contact,omitempty"`
	Assignee   *Person   `json:"assignee,omitempty"`
	Status     Status    `json:"status"`
	Summary    string    `json:"summary,omitempty"`
	CreditUsed bool      `json:"credit_used"`
	OpenedAt   time.Time `json:"opened_at"`
	// TakenAt .. ClosedAt are nil until they happen.
	TakenAt         *time.Time `json:"taken_at,omitempty"`
	FirstResponseAt *time.Time `json:"first_response_at,omitempty"`
	ConcludedAt     *time.Time `json:"concluded_at,omitempty"`
	ClosedAt        *time.Time `json:"closed_at,omitempty"`
	// Messages is the conversation in order (internal notes only when
	// IncludesInternal).
	Messages []RecordMessage `json:"messages"`
	// Statuses is every stay in a status, in order.
	Statuses []StatusStay `json:"statuses"`
	// SLA is the clocks as SLA computes them at ExportedAt.
	SLA RecordSLA `json:"sla"`
	// Timeline is every entry of the chain, in order. When internal notes
	// are not included, their entries are kept (with their hashes, so the
	// chain shows whole) but their content is withheld.
	Timeline     []RecordEntry `json:"timeline"`
	Verification Verification  `json:"verification"`
	// IncludesInternal says whether internal expert notes are in the record.
	IncludesInternal bool      `json:"includes_internal"`
	ExportedAt       time.Time `json:"exported_at"`
	// Location is the time zone Markdown shows times in (nil: UTC); not
	// part of the JSON, whose times are RFC 3339 in UTC.
	Location *time.Location `json:"-"`
}

// RecordMessage is one message of a Record.
type RecordMessage struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Side     Side      `json:"side"`
	Author   Person    `json:"author"`
	Internal bool      `json:"internal,omitempty"`
	Text     string    `json:"text"`
}

// StatusStay is one stay in a status; To is nil for the current one, whose
// Seconds run until the export.
type StatusStay struct {
	Status  Status     `json:"status"`
	From    time.Time  `json:"from"`
	To      *time.Time `json:"to,omitempty"`
	Seconds float64    `json:"seconds"`
}

// RecordSLA is the SLA picture of a Record.
type RecordSLA struct {
	Paused        bool        `json:"paused"`
	Breached      bool        `json:"breached"`
	FirstResponse RecordClock `json:"first_response"`
	Conclusion    RecordClock `json:"conclusion"`
	// TimeInStatus is the seconds spent in each status.
	TimeInStatus map[Status]float64 `json:"time_in_status_seconds"`
}

// RecordClock is one SLA clock of a Record (see ClockState), in seconds.
type RecordClock struct {
	TargetSeconds  float64    `json:"target_seconds"`
	ElapsedSeconds float64    `json:"elapsed_seconds"`
	Met            bool       `json:"met"`
	MetAt          *time.Time `json:"met_at,omitempty"`
	Warned         bool       `json:"warned"`
	Breached       bool       `json:"breached"`
	Running        bool       `json:"running"`
	Paused         bool       `json:"paused"`
	Due            *time.Time `json:"due,omitempty"`
}

// RecordEntry is one timeline entry of a Record.
type RecordEntry struct {
	Seq       int       `json:"seq"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	ActorRole Role      `json:"actor_role"`
	ActorID   string    `json:"actor_id,omitempty"`
	ActorName string    `json:"actor_name,omitempty"`
	// Detail is the entry's payload; {"withheld": "internal expert note"}
	// when Withheld.
	Detail   json.RawMessage `json:"detail"`
	Withheld bool            `json:"withheld,omitempty"`
	// Redacted names the detail's fields left out of a member's record
	// (the desk's network addresses and chat references); the hash is
	// over the whole detail, as the desk's record shows it.
	Redacted []string `json:"redacted,omitempty"`
	// PrevHash and Hash are the chain, in hex; Keyed is false for entries
	// written before the chain was keyed (unkeyed SHA-256).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	Keyed    bool   `json:"keyed"`
}

var withheldDetail = json.RawMessage(`{"withheld":"internal expert note"}`)

// Export returns the full record of a case as v sees it. Internal expert
// notes are included only when forExpert is set, which only an all-orgs
// viewer may ask for (an org viewer asking is refused with ErrInvalid). A
// case v may not see is ErrNotFound. The record is read in one snapshot,
// and its timeline verified as Verify does.
func (s *Service) Export(ctx context.Context, v Viewer, ref string, forExpert bool) (*Record, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if forExpert && !v.all {
		return nil, fmt.Errorf("export %s: internal notes are for experts only: %w", ref, ErrInvalid)
	}
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var rec *Record
	err = s.readOnly(ctx, "export "+FormatRef(number), func(tx pgx.Tx) error {
		now := s.cfg.now()
		x, err := s.load(ctx, tx, v, number, false)
		if err != nil {
			return err
		}
		ks, kerr := s.readKeying(ctx, tx, false)
		var ke *KeyingError
		if kerr != nil && !errors.As(kerr, &ke) {
			return kerr
		}
		byCase, err := s.readEntries(ctx, tx, []int64{number})
		if err != nil {
			return err
		}
		entries := byCase[number]
		ver, err := s.verification(x, entries, ks, now)
		if err != nil {
			return err
		}
		if ke != nil {
			ver.Reason = ke.Error()
		}
		sql := messageSelect + ` WHERE case_number = $1`
		if !forExpert {
			sql += ` AND NOT internal`
		}
		rows, err := tx.Query(ctx, sql+` ORDER BY id`, number)
		if err != nil {
			return fmt.Errorf("export %s: read messages: %w", x.Ref, err)
		}
		msgs, err := collectMessages(rows, x.Ref)
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT status, started_at, ended_at FROM case_status_periods WHERE case_number = $1 ORDER BY seq`, number)
		if err != nil {
			return fmt.Errorf("export %s: read status history: %w", x.Ref, err)
		}
		var stays []StatusStay
		ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (period, error) {
			var p period
			var end *time.Time
			if err := r.Scan(&p.status, &p.start, &end); err != nil {
				return p, err
			}
			p.start, p.end = p.start.UTC(), now
			if end != nil {
				p.end = end.UTC()
			}
			stays = append(stays, StatusStay{Status: p.status, From: p.start, To: utcPtr(end), Seconds: p.end.Sub(p.start).Seconds()})
			return p, nil
		})
		if err != nil {
			return fmt.Errorf("export %s: read status history: %w", x.Ref, err)
		}
		rec = s.record1(x, msgs, stays, s.slaFrom(x, ps, now), entries, ver, forExpert, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// record1 assembles a Record.
func (s *Service) record1(x *row, msgs []Message, stays []StatusStay, sla *SLAState, entries []Entry, ver *Verification,
	internal bool, now time.Time) *Record {
	r := &Record{Ref: x.Ref, Org: x.Org, Subject: x.Subject, Category: x.Category, Priority: x.Priority, Question: x.Question,
		Requester: x.Requester, Contact: x.Contact, Status: x.Status, Summary: x.Summary, CreditUsed: x.CreditUsed,
		OpenedAt: x.CreatedAt, TakenAt: x.TakenAt, FirstResponseAt: x.FirstResponseAt, ConcludedAt: x.ConcludedAt, ClosedAt: x.ClosedAt,
		Messages: []RecordMessage{}, Statuses: stays, Timeline: []RecordEntry{}, Verification: *ver,
		IncludesInternal: internal, ExportedAt: now}
	if r.Statuses == nil {
		r.Statuses = []StatusStay{}
	}
	if !x.Assignee.IsZero() {
		a := x.Assignee
		r.Assignee = &a
	}
	for _, m := range msgs {
		r.Messages = append(r.Messages, RecordMessage{ID: m.ID, At: m.CreatedAt, Side: m.Side, Author: m.Author, Internal: m.Internal, Text: m.Text})
	}
	clock := func(c ClockState) RecordClock {
		return RecordClock{TargetSeconds: c.Target.Seconds(), ElapsedSeconds: c.Elapsed.Seconds(), Met: c.Met, MetAt: c.MetAt,
			Warned: c.Warned, Breached: c.Breached, Running: c.Running, Paused: c.Paused, Due: c.Due}
	}
	r.SLA = RecordSLA{Paused: sla.Paused, Breached: sla.Breached, FirstResponse: clock(sla.FirstResponse), Conclusion: clock(sla.Conclusion),
		TimeInStatus: map[Status]float64{}}
	for st, d := range sla.TimeInStatus {
		r.SLA.TimeInStatus[st] = d.Seconds()
	}
	for _, e := range entries {
		re := RecordEntry{Seq: e.Seq, At: e.At, Kind: e.Kind, ActorRole: e.Actor.Role, ActorID: e.Actor.UserID,
			ActorName: e.Actor.DisplayName, Detail: e.Detail, PrevHash: hex.EncodeToString(e.PrevHash),
			Hash: hex.EncodeToString(e.Hash), Keyed: e.Keyed}
		if !internal && isInternalNote(e) {
			re.Detail, re.Withheld = withheldDetail, true
		} else if !internal {
			re.Detail, re.Redacted = forMembers(e)
		}
		r.Timeline = append(r.Timeline, re)
	}
	return r
}

// deskOnly are the detail fields of the custody entries that describe the
// desk rather than the customer: where an expert downloaded a sample from
// (their network address) and the desk's chat message of a file an expert
// posted.
var deskOnly = map[string][]string{
	EventSampleDownloaded: {"address"},
	EventSampleStored:     {"chat", "file_id"},
}

// forMembers returns e's detail without the fields only the desk may see:
// an expert's download address, and for a sample posted on the desk side,
// its chat reference (a sample from the customer's side keeps its own).
func forMembers(e Entry) (json.RawMessage, []string) {
	fields := deskOnly[e.Kind]
	if len(fields) == 0 {
		return e.Detail, nil
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(e.Detail, &d) != nil {
		return withheldDetail, []string{"detail"}
	}
	var side Side
	if e.Kind == EventSampleStored && json.Unmarshal(d["side"], &side) == nil && side != SideExpert {
		return e.Detail, nil
	}
	var gone []string
	for _, f := range fields {
		if _, ok := d[f]; ok {
			delete(d, f)
			gone = append(gone, f)
		}
	}
	if len(gone) == 0 {
		return e.Detail, nil
	}
	out, err := json.Marshal(d)
	if err != nil {
		return withheldDetail, []string{"detail"}
	}
	return out, gone
}

// isInternalNote reports whether e records an internal expert note. An
// entry whose detail cannot be read is treated as one: withheld, not leaked.
func isInternalNote(e Entry) bool {
	if e.Kind != EventMessageAdded {
		return false
	}
	var m MessageAddedEvent
	return json.Unmarshal(e.Detail, &m) != nil || m.Internal
}

// FileName is the name of the record's file with extension ext ("md",
// "json"): "EOD-12.md".
func (r *Record) FileName(ext string) string { return r.Ref + "." + ext }

// JSON renders the record as indented JSON (the .json file).
func (r *Record) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the record of %s: %w", r.Ref, err)
	}
	return append(b, '\n'), nil
}

// Markdown renders the record as a Markdown document (the .md file). Text
// that people wrote (the question, messages, names) is untrusted: it is
// shown in fenced blocks or escaped, so it can never pass itself off as
// part of the document (a forged "intact" line, a heading, a link).
func (r *Record) Markdown() []byte {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	ts := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05 MST") }
	tsp := func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return ts(*t)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# %s — case record\n\n", r.Ref)
	internal := "not included"
	if r.IncludesInternal {
		internal = "included"
	}
	p("Exported %s. Internal expert notes: %s.\n\n", ts(r.ExportedAt), internal)

	p("## Timeline verification\n\n")
	if r.Verification.Intact {
		p("**Intact**: %s, head `%s`.\n\n", plural.Count(r.Verification.Entries, "entry", "entries"), r.Verification.Head)
	} else {
		p("**Does not verify**: %s\n\n", mdEscape(r.Verification.String()))
	}

	p("## Case\n\n| | |\n|---|---|\n")
	row := func(k, v string) { p("| %s | %s |\n", k, v) }
	row("Org", mdEscape(r.Org))
	subject := string(r.Subject.Kind)
	if r.Subject.ID != "" {
		subject += " " + mdCode(r.Subject.ID)
	}
	if r.Subject.Name != "" {
		subject += " (" + mdEscape(r.Subject.Name) + ")"
	}
	row("Subject", subject)
	if r.Subject.Severity != "" {
		row("Severity", mdEscape(r.Subject.Severity))
	}
	if r.Subject.Link != "" {
		row("Link", mdCode(r.Subject.Link))
	}
	row("Category", string(r.Category))
	row("Priority", string(r.Priority))
	row("Status", r.Status.Label())
	row("Requester", mdPerson(r.Requester))
	if r.Contact != "" {
		row("Contact", mdEscape(r.Contact))
	}
	assignee := "—"
	if r.Assignee != nil {
		assignee = mdPerson(*r.Assignee)
	}
	row("Assignee", assignee)
	row("Credit used", fmt.Sprint(r.CreditUsed))
	row("Opened", ts(r.OpenedAt))
	row("Taken", tsp(r.TakenAt))
	row("First response", tsp(r.FirstResponseAt))
	row("Concluded", tsp(r.ConcludedAt))
	row("Closed", tsp(r.ClosedAt))
	p("\n## Question\n\n%s\n", fence(r.Question))
	if r.Summary != "" {
		p("## Conclusion\n\n%s\n", fence(r.Summary))
	}

	p("## Messages\n\n")
	if len(r.Messages) == 0 {
		p("No messages.\n\n")
	}
	for i, m := range r.Messages {
		kind := string(m.Side) + " side"
		if m.Internal {
			kind = "internal expert note"
		}
		p("### %d. %s, %s, %s\n\n%s\n", i+1, ts(m.At), mdPerson(m.Author), kind, fence(m.Text))
	}

	p("## Statuses\n\n| Status | From | To | Time |\n|---|---|---|---|\n")
	for _, st := range r.Statuses {
		p("| %s | %s | %s | %s |\n", st.Status.Label(), ts(st.From), tsp(st.To), secondsText(st.Seconds))
	}

	p("\n## SLA\n\n| Clock | Target | Clock time | Met | Breached |\n|---|---|---|---|---|\n")
	for _, c := range []struct {
		name string
		c    RecordClock
	}{{"First response", r.SLA.FirstResponse}, {"Conclusion", r.SLA.Conclusion}} {
		met := "no"
		if c.c.Met {
			met = tsp(c.c.MetAt)
		}
		p("| %s | %s | %s | %s | %t |\n", c.name, secondsText(c.c.TargetSeconds), secondsText(c.c.ElapsedSeconds), met, c.c.Breached)
	}
	if r.SLA.Paused {
		p("\nThe clocks are paused: the case waits on the requester.\n")
	}

	p("\n## Timeline\n\nEach entry's hash is an HMAC-SHA256 (keyed) over its predecessor's hash and its content" +
		" (unkeyed SHA-256 for entries marked legacy).\n\n")
	for _, e := range r.Timeline {
		actor := string(e.ActorRole)
		if e.ActorID != "" {
			actor += " " + mdPerson(Person{UserID: e.ActorID, DisplayName: e.ActorName})
		}
		legacy := ""
		if !e.Keyed {
			legacy = " (legacy)"
		}
		p("### %d. %s, %s, %s\n\n- hash%s: `%s`\n- previous: `%s`\n\n", e.Seq, ts(e.At), mdEscape(e.Kind), actor, legacy, e.Hash, e.PrevHash)
		if e.Withheld {
			p("Content withheld: internal expert note.\n\n")
			continue
		}
		p("%s\n", fenceLang("json", string(e.Detail)))
		if len(e.Redacted) > 0 {
			p("Left out of this record (the desk's own details): %s.\n\n", strings.Join(e.Redacted, ", "))
		}
	}
	return []byte(b.String())
}

// secondsText renders seconds as a duration rounded to the second.
func secondsText(s float64) string {
	return (time.Duration(s*float64(time.Second)) / time.Second * time.Second).String()
}

func mdPerson(p Person) string {
	if p.DisplayName != "" && p.DisplayName != p.UserID {
		return mdEscape(p.DisplayName) + " (" + mdEscape(p.UserID) + ")"
	}
	return mdEscape(p.UserID)
}

// mdCell makes s fit on one table row.
func mdCell(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "|", `\|`).Replace(s)
}

// mdEscape makes untrusted text inline literal: every character that
// Markdown or HTML would interpret mid-line is backslash-escaped, and it
// stays on one line (and in its table cell).
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case strings.ContainsRune("\\`*_[]<>&|~", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode shows untrusted text as an inline code span (never a link), in
// a delimiter longer than any backtick run inside it.
func mdCode(s string) string {
	d := strings.Repeat("`", longestRun(s, '`')+1)
	return d + " " + mdCell(s) + " " + d
}

func longestRun(s string, c rune) int {
	longest, run := 0, 0
	for _, r := range s {
		if r == c {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// fence puts untrusted text in a fenced block that its content cannot close.
func fence(s string) string { return fenceLang("text", s) }

func fenceLang(lang, s string) string {
	f := strings.Repeat("`", max(3, longestRun(s, '`')+1))
	return f + lang + "\n" + strings.TrimRight(s, "\n") + "\n" + f + "\n"
}
