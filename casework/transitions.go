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
	// The requester withdraws a case before it is concluded: only the
	// person who asked (checkTransition), not a colleague, not a manager.
	{StatusNew, StatusWithdrawn}:                {RoleRequester},
	{StatusInProgress, StatusWithdrawn}:         {RoleRequester},
	{StatusMoreInfoNeeded, StatusWithdrawn}:     {RoleRequester},
	{StatusFileSampleNeeded, StatusWithdrawn}:   {RoleRequester},
	{StatusNeedsMoreTime, StatusWithdrawn}:      {RoleRequester},
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
	// Closing: the requester (the person who asked), a manager, or
	// threatdesk after AutoCloseAfter.
	{StatusConcluded, StatusClosed}: {RoleRequester, RoleManager, RoleSystem},
	// Reopening within the reopen window: the requester or a manager.
	{StatusConcluded, StatusInProgress}: {RoleRequester, RoleManager},
	{StatusClosed, StatusInProgress}:    {RoleRequester, RoleManager},
}

// Allowed reports whether role may move a case from one status to another
// (ignoring the reopen window, who holds the case, and that withdrawing,
// closing and reopening as a requester is for the case's own requester).
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

// ownRequesterOnly reports whether from -> to, when made as a requester, is
// for the person who asked the case only: withdrawing, closing, reopening.
// Colleagues in the same org may see the case and add to it, not end it.
func ownRequesterOnly(from, to Status) bool {
	return to == StatusWithdrawn || to == StatusClosed || isReopen(from, to)
}

// checkTransition returns nil when actor may move c to `to` now, or a
// *TransitionError whose message is one sentence.
func (s *Service) checkTransition(c *Case, to Status, actor Actor, now time.Time) error {
	role := actor.Role
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
	if role == RoleExpert && from != StatusNew && !isReopen(from, to) && !c.Assignee.IsZero() &&
		(actor.Person.Platform != c.Assignee.Platform || actor.Person.UserID != c.Assignee.UserID) {
		// (By platform and user id: the same expert acting from another
		// context, a Discord DM without a guild, is the same person.)
		// The case is the holder's: another expert's conclusion or request
		// would undo the one-winner take, and the holder not be told.
		return refuse("%s is with %s: assign it to yourself first to %s it", c.Ref, c.Assignee.Name(), verbFor(to))
	}
	if role == RoleRequester && ownRequesterOnly(from, to) && !actor.Person.Same(c.Requester) {
		verb := map[Status]string{StatusWithdrawn: "withdraw", StatusClosed: "close"}[to]
		if verb == "" {
			verb = "reopen"
		}
		others := ""
		for _, r := range roles {
			if r == RoleManager {
				others = " or a manager"
			}
		}
		return refuse("only %s, who asked,%s can %s %s", c.Requester.Name(), others, verb, c.Ref)
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

// verbFor is what an expert does by moving a case to to.
func verbFor(to Status) string {
	switch to {
	case StatusConcluded:
		return "conclude"
	case StatusMoreInfoNeeded:
		return "ask for more information on"
	case StatusFileSampleNeeded:
		return "ask for a sample on"
	case StatusNeedsMoreTime:
		return "ask for more time on"
	}
	return "move"
}
