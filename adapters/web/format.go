package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/casework"
)

// How the tracker words and formats what casework returns. Everything here
// is plain text: html/template escapes it where it is shown.

// statusLabels are the statuses as chat names them.
var statusLabels = map[casework.Status]string{
	casework.StatusNew: "New", casework.StatusInProgress: "In progress", casework.StatusMoreInfoNeeded: "More information needed",
	casework.StatusFileSampleNeeded: "File sample needed", casework.StatusNeedsMoreTime: "Needs more time",
	casework.StatusConcluded: "Concluded", casework.StatusClosed: "Closed", casework.StatusWithdrawn: "Withdrawn",
}

func statusLabel(s casework.Status) string {
	if l, ok := statusLabels[s]; ok {
		return l
	}
	return string(s)
}

// statusClass is the CSS class of a status badge.
func statusClass(s casework.Status) string {
	switch {
	case s.WaitingOnRequester():
		return "st-wait"
	case s.Open():
		return "st-open"
	}
	return "st-done"
}

var categoryLabels = map[casework.Category]string{
	casework.CategoryAlertInquiry: "Alert inquiry", casework.CategoryDeviceCompromise: "Possible device compromise",
	casework.CategoryThreatIntel: "Threat intelligence", casework.CategoryNotificationQuestion: "Question about a notification",
	casework.CategoryOther: "Other",
}

func categoryLabel(c casework.Category) string {
	if l, ok := categoryLabels[c]; ok {
		return l
	}
	return string(c)
}

// subjectText names what a case is about: "Alert Suspicious PowerShell",
// "General question".
func subjectText(s casework.Subject) string {
	if s.Kind == casework.SubjectNone || s.Kind == "" {
		return "General question"
	}
	name := s.ID
	if s.Name != "" {
		name = s.Name
	}
	return strings.ToUpper(string(s.Kind[:1])) + string(s.Kind[1:]) + " " + name
}

// durationText is a duration for people: "45s", "42m", "3h 10m", "2d 4h".
func durationText(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	// Rounded to the last unit shown, as the chat's words are (1h 59m 45s
	// reads 2h there and here), then put in words from the rounded value.
	switch {
	case d < time.Minute:
		d = d.Round(time.Second)
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Hour)
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}

// seconds turns casework's float seconds into a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// timeText is a moment in the tracker's zone: "10 Feb 2026 09:42 GMT".
func (h *Handler) timeText(t time.Time) string {
	return t.In(h.cfg.Location).Format("2 Jan 2006 15:04 MST")
}

// slaState is a case's SLA state in the list: fine, warned, breached or
// paused while open; met or stopped after.
type slaState struct {
	Label, Class, Title string
}

func listSLA(c casework.Case, now time.Time) slaState {
	switch {
	case c.Breached:
		return slaState{"Breached", "sla-breached", "An SLA target was missed"}
	case c.Status.Open() && c.Status.WaitingOnRequester():
		return slaState{"Paused", "sla-paused", "Waiting on the requester: the clocks are paused"}
	case c.Status.Open() && c.AtRisk:
		return slaState{"Warned" + dueText(c.DueAt, now), "sla-warned", "Past the warning point of a target"}
	case c.Status.Open():
		return slaState{"Fine" + dueText(c.DueAt, now), "sla-fine", "On time"}
	case c.Status == casework.StatusWithdrawn:
		return slaState{"Stopped", "sla-stopped", "Withdrawn"}
	}
	return slaState{"Met", "sla-fine", "Concluded within its targets"}
}

// clockView is one SLA clock on the case page.
type clockView struct {
	Name, Label, Class, Detail string
}

func (h *Handler) clock(name string, c casework.RecordClock, now time.Time) clockView {
	target, elapsed := seconds(c.TargetSeconds), seconds(c.ElapsedSeconds)
	v := clockView{Name: name}
	of := durationText(elapsed) + " of " + durationText(target)
	switch {
	case c.Met && c.Breached:
		v.Label, v.Class = "Met late", "sla-breached"
		v.Detail = "after " + of
	case c.Met:
		v.Label, v.Class = "Met", "sla-fine"
		v.Detail = "after " + of
	case c.Breached:
		v.Label, v.Class = "Breached", "sla-breached"
		v.Detail = of + " so far"
	case c.Paused:
		v.Label, v.Class = "Paused", "sla-paused"
		v.Detail = of + "; waiting on the requester"
	case c.Running && c.Warned:
		v.Label, v.Class = "Warned", "sla-warned"
		v.Detail = of
	case c.Running:
		v.Label, v.Class = "Running", "sla-fine"
		v.Detail = of
	default:
		v.Label, v.Class = "Stopped", "sla-stopped"
		v.Detail = of
	}
	if c.Due != nil && c.Running {
		if left := c.Due.Sub(now); left >= 0 {
			v.Detail += "; due " + h.timeText(*c.Due) + " (in " + durationText(left) + ")"
		} else {
			v.Detail += "; was due " + h.timeText(*c.Due) + " (" + durationText(left) + " ago)"
		}
	}
	return v
}

// dueText is " · due in 2h" for a due time ahead, "" otherwise.
func dueText(due *time.Time, now time.Time) string {
	if due == nil || due.Before(now) {
		return ""
	}
	return " · due in " + durationText(due.Sub(now))
}
