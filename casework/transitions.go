package casework

import (
	"fmt"
	"strings"
	"time"
)

// edge is one status change.
type edge struct{ from, to Status }

// transitions is THE table of allowed status changes and who may make each.
// Everything else is refused. new -> in_progress happens through Take or
// Assign; * -> withdrawn through Transition(StatusWithdrawn).
var transitions = map[edge][]Role{
	// An expert takes the case (or a manager assigns it).
	{StatusNew, StatusInProgress}: {RoleExpert, RoleManager},
	// The requester (or a manager) withdraws a case before it is concluded.
	{StatusNew, StatusWithdrawn}:                {RoleRequester, RoleManager},
	{StatusInProgress, StatusWithdrawn}:         {RoleRequester, RoleManager},
	{StatusMoreInfoNeeded, StatusWithdrawn}:     {RoleRequester, RoleManager},
	{StatusFileSampleNeeded, StatusWithdrawn}:   {RoleRequester, RoleManager},
	{StatusNeedsMoreTime, StatusWithdrawn}:      {RoleRequester, RoleManager},
	{StatusInProgress, StatusMoreInfoNeeded}:    {RoleExpert, RoleManager},
	{StatusInProgress, StatusFileSampleNeeded}:  {RoleExpert, RoleManager},
	{StatusInProgress, StatusNeedsMoreTime}:     {RoleExpert, RoleManager},
	{StatusInProgress, StatusConcluded}:         {RoleExpert, RoleManager},
	{StatusNeedsMoreTime, StatusInProgress}:     {RoleExpert, RoleManager},
	{StatusNeedsMoreTime, StatusMoreInfoNeeded}: {RoleExpert, RoleManager},
	{StatusNeedsMoreTime, StatusFileSampleNeeded}: {
		RoleExpert, RoleManager},
	{StatusNeedsMoreTime, StatusConcluded}: {RoleExpert, RoleManager},
	// Waiting on the requester: their answer resumes the clock (AddMessage
	// does this for them, as the requester); an expert may resume it too.
	{StatusMoreInfoNeeded, StatusInProgress}:       {RoleRequester, RoleExpert, RoleManager, RoleSystem},
	{StatusFileSampleNeeded, StatusInProgress}:     {RoleRequester, RoleExpert, RoleManager, RoleSystem},
	{StatusMoreInfoNeeded, StatusFileSampleNeeded}: {RoleExpert, RoleManager},
	{StatusFileSampleNeeded, StatusMoreInfoNeeded}: {RoleExpert, RoleManager},
	{StatusMoreInfoNeeded, StatusConcluded}:        {RoleExpert, RoleManager},
	{StatusFileSampleNeeded, StatusConcluded}:      {RoleExpert, RoleManager},
	// Closing: the requester, a manager, or threatdesk after AutoCloseAfter.
	{StatusConcluded, StatusClosed}: {RoleRequester, RoleManager, RoleSystem},
	// Reopening within the reopen window.
	{StatusConcluded, StatusInProgress}: {RoleRequester, RoleManager},
	{StatusClosed, StatusInProgress}:    {RoleRequester, RoleManager},
}

// Allowed reports whether role may move a case from one status to another
// (ignoring the reopen window and who holds the case).
func Allowed(from, to Status, role Role) bool {
	for _, r := range transitions[edge{from, to}] {
		if r == role {
			return true
		}
	}
	return false
}

// Transitions returns a copy of the allowed (from, to) pairs with the roles
// that may make each, for help texts and tests.
func Transitions() map[[2]Status][]Role {
	out := make(map[[2]Status][]Role, len(transitions))
	for e, roles := range transitions {
		out[[2]Status{e.from, e.to}] = append([]Role(nil), roles...)
	}
	return out
}

// isReopen reports whether from -> to reopens a finished case.
func isReopen(from, to Status) bool {
	return to == StatusInProgress && (from == StatusConcluded || from == StatusClosed)
}

// checkTransition returns nil when role may move c to `to` now, or a
// *TransitionError whose message is one sentence.
func (s *Service) checkTransition(c *Case, to Status, role Role, now time.Time) error {
	refuse := func(format string, args ...any) error {
		return &TransitionError{Ref: c.Ref, From: c.Status, To: to, Role: role, Reason: fmt.Sprintf(format, args...)}
	}
	from := c.Status
	roles, ok := transitions[edge{from, to}]
	if !ok {
		switch {
		case from == to:
			return refuse("%s is already %s", c.Ref, from.Label())
		case from == StatusConcluded:
			return refuse("%s is already concluded; use Reopen", c.Ref)
		case from == StatusClosed:
			return refuse("%s is closed; use Reopen", c.Ref)
		case from == StatusWithdrawn:
			return refuse("%s was withdrawn and cannot change any more", c.Ref)
		case from == StatusNew && to != StatusClosed:
			return refuse("%s has not been taken yet; an expert must take it first", c.Ref)
		case to == StatusWithdrawn:
			return refuse("%s is %s and can no longer be withdrawn", c.Ref, from.Label())
		case to == StatusClosed:
			return refuse("%s can be closed only once it is concluded", c.Ref)
		}
		return refuse("%s cannot go from %s to %s", c.Ref, from.Label(), to.Label())
	}
	allowed := false
	for _, r := range roles {
		allowed = allowed || r == role
	}
	if !allowed {
		what := "move " + c.Ref + " to " + to.Label()
		switch {
		case isReopen(from, to):
			what = "reopen " + c.Ref
		case from == StatusNew && to == StatusInProgress:
			what = "take " + c.Ref
		case to == StatusWithdrawn:
			what = "withdraw " + c.Ref
		case to == StatusConcluded:
			what = "conclude " + c.Ref
		case to == StatusClosed:
			what = "close " + c.Ref
		}
		return refuse("%s cannot %s; only %s can", article(string(role)), what, roleList(roles))
	}
	if isReopen(from, to) {
		since := c.ConcludedAt
		if from == StatusClosed && c.ClosedAt != nil {
			since = c.ClosedAt
		}
		if since != nil && now.Sub(*since) > s.cfg.ReopenWindow {
			return refuse("%s was %s more than %s ago and can no longer be reopened; open a new case",
				c.Ref, from.Label(), humanDuration(s.cfg.ReopenWindow))
		}
	}
	return nil
}

func article(w string) string {
	if w == "" {
		return "someone"
	}
	switch w[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + w
	}
	return "a " + w
}

func roleList(roles []Role) string {
	var names []string
	for _, r := range roles {
		if r == RoleSystem {
			continue
		}
		names = append(names, article(string(r)))
	}
	switch len(names) {
	case 0:
		return "threatdesk"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// humanDuration renders whole days or hours: "14 days", "4 hours".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d == 24*time.Hour:
		return "1 day"
	case d >= 2*time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d == time.Hour:
		return "1 hour"
	}
	return d.String()
}
