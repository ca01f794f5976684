package oncall

import "time"

// Event kinds written to the outbox, on the stream Stream.
const (
	// EventTaken: an expert took the pager until the next hand-over
	// (`/experts oncall take`). Payload TakenEvent. The bot announces it in
	// the desk channel.
	EventTaken = "oncall.taken"
)

// Stream is the outbox stream of every on-call event, so takes are
// announced in the order they happened.
const Stream = "oncall"

// TakenEvent is the payload of EventTaken, as JSON:
//
//	{"take_id": 7,
//	 "member": {"platform": "slack", "user_id": "U0EXPERT2"},
//	 "taken_at": "2026-03-03T10:15:00Z", "until": "2026-03-09T09:00:00Z",
//	 "displaced": {"platform": "slack", "user_id": "U0EXPERT1"},
//	 "displaced_take": false,
//	 "next": {"platform": "slack", "user_id": "U0EXPERT2"},
//	 "timezone": "Europe/London"}
type TakenEvent struct {
	// TakeID is the oncall_take row.
	TakeID int64 `json:"take_id"`
	// Member took the pager; it is theirs from TakenAt until Until (the next
	// hand-over), UTC.
	Member  Member    `json:"member"`
	TakenAt time.Time `json:"taken_at"`
	Until   time.Time `json:"until"`
	// Displaced held the pager just before: the scheduled expert, or
	// (DisplacedTake) whoever had taken it earlier in the same shift.
	Displaced     Member `json:"displaced"`
	DisplacedTake bool   `json:"displaced_take,omitempty"`
	// Next holds the pager from Until, by the schedule.
	Next Member `json:"next"`
	// Timezone is the IANA name of the rotation's time zone, to show Until
	// in ("until Mon 9 Mar 09:00 Europe/London").
	Timezone string `json:"timezone"`
}
