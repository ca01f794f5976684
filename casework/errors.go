package casework

import (
	"errors"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// ErrNotFound is returned for a case that does not exist and, identically,
// for a case of another org than the viewer's.
var ErrNotFound = errors.New("case not found")

// ErrInvalid wraps a request the caller got wrong (a missing field, an
// unknown status); the message says which and how to fix it.
var ErrInvalid = errors.New("invalid request")

// TransitionError is a refused status change (or take, assign, message):
// Error is one sentence the bot can show as is.
type TransitionError struct {
	// Ref is the case; From its status at the time.
	Ref  string
	From Status
	// To is the status asked for; empty when the refused action was not a
	// status change (a message on a closed case).
	To Status
	// Role is the role that was refused.
	Role Role
	// Reason is the sentence.
	Reason string
}

// Error returns the sentence to show.
func (e *TransitionError) Error() string { return e.Reason }

// NoCreditsError refuses an open when the org has no credits left.
type NoCreditsError struct {
	// Org is the org refused; Balance its balance (0).
	Org     string
	Balance int
	// ResetsAt is when the next quarter's credits arrive.
	ResetsAt time.Time
	// NextBalance is the balance on ResetsAt.
	NextBalance int
}

// Error returns the sentence to show the org's members. It names no org id
// (Org is for the caller, which knows the org's name).
func (e *NoCreditsError) Error() string {
	next := "the next quarter brings none"
	if e.NextBalance > 0 {
		next = plural.Count(e.NextBalance, "more arrives", "more arrive") + " on " + e.ResetsAt.Format("2 January 2006")
	}
	return "There are no expert credits left this quarter; " + next
}

// AlreadyTakenError is returned when a case is taken by someone else.
type AlreadyTakenError struct {
	// Ref is the case; Holder the expert who has it.
	Ref    string
	Holder Person
}

// Error returns the sentence to show.
func (e *AlreadyTakenError) Error() string {
	return fmt.Sprintf("%s is already taken by %s", e.Ref, e.Holder.Name())
}

// TamperError reports a timeline that does not verify: an entry was edited,
// removed or reordered behind casework's back.
type TamperError struct {
	// Ref is the case whose timeline fails.
	Ref string
	// Seq is the first entry that does not verify (or the expected length,
	// when entries are missing at the end).
	Seq int
	// Reason says what is wrong.
	Reason string
}

// Error says which entry fails and why.
func (e *TamperError) Error() string {
	return fmt.Sprintf("timeline of %s fails verification at entry %d: %s", e.Ref, e.Seq, e.Reason)
}

// KeyingError reports that the timeline keying record does not verify: the
// database's timelines were keyed with another THREATDESK_SECRET_KEY, or the
// record was changed or removed behind casework's back.
type KeyingError struct {
	// Reason says what is wrong and what to do.
	Reason string
}

// Error says what is wrong.
func (e *KeyingError) Error() string { return "timeline keying: " + e.Reason }
