package casework

import "time"

// Event kinds written to the outbox (and to the case timeline), one per
// change. Every event of a case goes on the stream Stream(ref), so the bot
// receives them in order. The bot renders each by loading the current case
// (Get) and using the payload for what changed.
const (
	// EventOpened: a case was opened. Payload OpenedEvent.
	EventOpened = "case.opened"
	// EventAssigned: an expert took the case or it was (re)assigned. Payload AssignedEvent.
	EventAssigned = "case.assigned"
	// EventMessageAdded: a message to relay to the other side. Payload
	// MessageAddedEvent. Internal notes are on the timeline only: no event
	// is written for them, so they cannot be relayed by mistake.
	EventMessageAdded = "case.message_added"
	// EventStatusChanged: the status changed. Payload StatusChangedEvent.
	EventStatusChanged = "case.status_changed"
	// EventSLAWarning: a clock passed its warning point (once per clock and
	// case). Payload SLAEvent.
	EventSLAWarning = "case.sla_warning"
	// EventSLABreach: a clock passed its target (once per clock and case).
	// Payload SLAEvent.
	EventSLABreach = "case.sla_breach"
	// EventCreditsChanged: the case used or gave back one of its org's
	// credits. Payload CreditsChangedEvent.
	EventCreditsChanged = "case.credits_changed"
	// EventPaged: a high-priority case was still new Config.PageAfter after
	// it opened; the bot pages the next expert on the rotation and the
	// managers (once per case). Payload PagedEvent.
	EventPaged = "case.paged"
	// EventReminded: the case waited Config.RemindAfter on its requester
	// (more information or a file sample); the bot reminds them (once per
	// wait). The SLA clock stays paused. Payload RemindedEvent.
	EventReminded = "case.requester_reminded"
)

// Stream is the outbox stream of a case's events: "case:EOD-12".
func Stream(ref string) string { return "case:" + ref }

// OpenedEvent is the payload of EventOpened.
type OpenedEvent struct {
	Ref       string   `json:"ref"`
	Org       string   `json:"org"`
	Priority  Priority `json:"priority"`
	Category  Category `json:"category"`
	Subject   Subject  `json:"subject"`
	Requester Person   `json:"requester"`
	Question  string   `json:"question"`
	// Origin is the chat channel the case was asked in, when known.
	Origin *Place `json:"origin,omitempty"`
	// PriorityBy is who chose Priority; absent when it was derived from
	// the subject.
	PriorityBy *Person `json:"priority_by,omitempty"`
	// ApprovedBy is the manager who approved this case beyond the org's
	// credits (it used none); absent for a case that used a credit.
	ApprovedBy *Actor `json:"approved_by,omitempty"`
}

// AssignedEvent is the payload of EventAssigned.
type AssignedEvent struct {
	Ref      string `json:"ref"`
	Assignee Person `json:"assignee"`
	// Previous is the former assignee on a reassignment.
	Previous *Person `json:"previous,omitempty"`
	// By is who made the change (the assignee on a take).
	By Actor `json:"by"`
	// Taken is true when the expert took the case themselves.
	Taken bool `json:"taken"`
	// Key is the take's request key (TakeKeyed), when it had one.
	Key string `json:"key,omitempty"`
}

// MessageAddedEvent is the payload of EventMessageAdded.
type MessageAddedEvent struct {
	Ref       string `json:"ref"`
	MessageID int64  `json:"message_id"`
	Side      Side   `json:"side"`
	Author    Person `json:"author"`
	Text      string `json:"text"`
	// Internal is always false in the outbox; true only on the timeline.
	Internal bool `json:"internal,omitempty"`
	// Source is the chat message it came from: relay to the other anchor,
	// never back into this thread.
	Source *ChatRef `json:"source,omitempty"`
}

// StatusChangedEvent is the payload of EventStatusChanged.
type StatusChangedEvent struct {
	Ref  string `json:"ref"`
	From Status `json:"from"`
	To   Status `json:"to"`
	By   Actor  `json:"by"`
	// Summary is the conclusion, when To is concluded.
	Summary string `json:"summary,omitempty"`
	// Note is the actor's optional reason ("need the process tree").
	Note string `json:"note,omitempty"`
	// Reopened is true for concluded/closed -> in_progress.
	Reopened bool `json:"reopened,omitempty"`
	// Resumed is true when a requester's message ended a wait.
	Resumed bool `json:"resumed,omitempty"`
	// Key is the request's (TransitionRequest.Key), when it had one.
	Key string `json:"key,omitempty"`
}

// Clock names an SLA clock.
type Clock string

// SLA clocks.
const (
	ClockFirstResponse Clock = "first_response"
	ClockConclusion    Clock = "conclusion"
)

// SLAEvent is the payload of EventSLAWarning and EventSLABreach.
type SLAEvent struct {
	Ref string `json:"ref"`
	// Clock is the clock that warned or breached.
	Clock    Clock    `json:"clock"`
	Priority Priority `json:"priority"`
	// TargetSeconds is the clock's target.
	TargetSeconds int64 `json:"target_seconds"`
	// ElapsedSeconds is the running time (pauses excluded) when emitted.
	ElapsedSeconds int64 `json:"elapsed_seconds"`
	// DueAt is when the target is (or was) reached, pauses accounted for.
	// While Paused, a target not reached yet has no time: DueAt is when it
	// would have been reached had the clock not paused (from the pause).
	DueAt time.Time `json:"due_at"`
	// Paused: the clock was paused (the case waits on the requester).
	Paused bool `json:"paused,omitempty"`
	// Assignee is who holds the case; zero if nobody took it.
	Assignee Person `json:"assignee"`
}

// CreditsChangedEvent is the payload of EventCreditsChanged.
type CreditsChangedEvent struct {
	Ref string `json:"ref"`
	Org string `json:"org"`
	// Delta is -1 when the case used a credit, +1 on a refund.
	Delta int `json:"delta"`
	// Balance is the org's balance after the change.
	Balance int `json:"balance"`
	// Reason is "opened" or "withdrawn before an expert took it".
	Reason   string    `json:"reason"`
	ResetsAt time.Time `json:"resets_at"`
}

// PagedEvent is the payload of EventPaged. Whom to page is the bot's to
// decide when it delivers the event, from the rotation and the managers in
// the config then (someone who left is never paged).
type PagedEvent struct {
	Ref      string   `json:"ref"`
	Priority Priority `json:"priority"`
	// OpenedAt is when the case opened; WaitedSeconds how long it had been
	// new when the sweep paged (at least Config.PageAfter).
	OpenedAt      time.Time `json:"opened_at"`
	WaitedSeconds int64     `json:"waited_seconds"`
	// PagedAt is when the sweep decided to page: who is paged is who was
	// next on call then (zero in events recorded before it was added).
	PagedAt time.Time `json:"paged_at,omitzero"`
}

// RemindedEvent is the payload of EventReminded.
type RemindedEvent struct {
	Ref string `json:"ref"`
	// Status is what the case waits for: more_info_needed or
	// file_sample_needed, since WaitingSince.
	Status       Status    `json:"status"`
	WaitingSince time.Time `json:"waiting_since"`
	// WaitedSeconds is how long it had waited when the sweep reminded.
	WaitedSeconds int64 `json:"waited_seconds"`
	// Requester is who is reminded.
	Requester Person `json:"requester"`
}
