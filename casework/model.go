package casework

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RefPrefix starts every case reference: EOD-12.
const RefPrefix = "EOD-"

// FormatRef returns the human reference of case number n, e.g. "EOD-12".
func FormatRef(n int64) string { return RefPrefix + strconv.FormatInt(n, 10) }

// ParseRef reads a case reference as people type it: "EOD-12", "eod-12",
// "#12" or "12". It returns the case number.
func ParseRef(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "#")
	if len(t) >= len(RefPrefix) && strings.EqualFold(t[:len(RefPrefix)], RefPrefix) {
		t = t[len(RefPrefix):]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a case reference like EOD-12: %w", s, ErrInvalid)
	}
	return n, nil
}

// Status is where a case stands.
type Status string

// Statuses, following the expert service's progress reports.
const (
	// StatusNew: opened, waiting for an expert to take it.
	StatusNew Status = "new"
	// StatusInProgress: an expert is working on it.
	StatusInProgress Status = "in_progress"
	// StatusMoreInfoNeeded: waiting on the requester for information; SLA clock paused.
	StatusMoreInfoNeeded Status = "more_info_needed"
	// StatusFileSampleNeeded: waiting on the requester for a file sample; SLA clock paused.
	StatusFileSampleNeeded Status = "file_sample_needed"
	// StatusNeedsMoreTime: the expert needs longer; the clock keeps running.
	StatusNeedsMoreTime Status = "needs_more_time"
	// StatusConcluded: the expert's answer (summary) is in.
	StatusConcluded Status = "concluded"
	// StatusClosed: done; may be reopened within the reopen window.
	StatusClosed Status = "closed"
	// StatusWithdrawn: the requester withdrew it; final.
	StatusWithdrawn Status = "withdrawn"
)

// allStatuses lists every status in lifecycle order.
var allStatuses = []Status{StatusNew, StatusInProgress, StatusMoreInfoNeeded, StatusFileSampleNeeded,
	StatusNeedsMoreTime, StatusConcluded, StatusClosed, StatusWithdrawn}

// Statuses returns every status in lifecycle order.
func Statuses() []Status { return append([]Status(nil), allStatuses...) }

// OpenStatuses returns the statuses in which a case still needs work.
func OpenStatuses() []Status {
	return []Status{StatusNew, StatusInProgress, StatusMoreInfoNeeded, StatusFileSampleNeeded, StatusNeedsMoreTime}
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, x := range allStatuses {
		if s == x {
			return true
		}
	}
	return false
}

// Open reports whether a case in s still needs work (it is not concluded,
// closed or withdrawn).
func (s Status) Open() bool {
	switch s {
	case StatusConcluded, StatusClosed, StatusWithdrawn:
		return false
	}
	return s.Valid()
}

// WaitingOnRequester reports whether s pauses the SLA clock.
func (s Status) WaitingOnRequester() bool {
	return s == StatusMoreInfoNeeded || s == StatusFileSampleNeeded
}

// clockRuns reports whether the SLA clock runs in s.
func (s Status) clockRuns() bool { return s.Open() && !s.WaitingOnRequester() }

// Label is the status in words, for sentences: "in progress".
func (s Status) Label() string {
	switch s {
	case StatusMoreInfoNeeded:
		return "waiting for more information"
	case StatusFileSampleNeeded:
		return "waiting for a file sample"
	case StatusNeedsMoreTime:
		return "marked as needing more time"
	}
	return strings.ReplaceAll(string(s), "_", " ")
}

// Priority orders cases and picks SLA targets.
type Priority string

// Priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityMedium Priority = "medium"
	PriorityLow    Priority = "low"
)

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return p == PriorityHigh || p == PriorityMedium || p == PriorityLow }

// Category is what kind of question a case asks.
type Category string

// Categories.
const (
	CategoryAlertInquiry         Category = "alert_inquiry"
	CategoryDeviceCompromise     Category = "device_compromise"
	CategoryThreatIntel          Category = "threat_intel"
	CategoryNotificationQuestion Category = "notification_question"
	CategoryOther                Category = "other"
	// CategoryNetworkConnection: the root cause of a suspicious network
	// connection (a case about an IP address, a URL or a domain).
	CategoryNetworkConnection Category = "network_connection"
)

// CategoryFor is the category of a case about a subject of kind k: an
// alert is an alert inquiry, a device a possible compromise, a file threat
// intelligence, an incident (what a targeted attack notification shows) a
// question about a notification, an IP address or a URL a suspicious
// network connection, a threat actor or campaign threat intelligence, and
// a general question other.
func CategoryFor(k SubjectKind) Category {
	switch k {
	case SubjectAlert:
		return CategoryAlertInquiry
	case SubjectDevice:
		return CategoryDeviceCompromise
	case SubjectFile:
		return CategoryThreatIntel
	case SubjectIncident:
		return CategoryNotificationQuestion
	case SubjectIP, SubjectURL:
		return CategoryNetworkConnection
	case SubjectActor:
		return CategoryThreatIntel
	}
	return CategoryOther
}

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	switch c {
	case CategoryAlertInquiry, CategoryDeviceCompromise, CategoryThreatIntel, CategoryNotificationQuestion, CategoryOther,
		CategoryNetworkConnection:
		return true
	}
	return false
}

// SubjectKind is what a case is about.
type SubjectKind string

// Subject kinds.
const (
	SubjectNone     SubjectKind = "none"
	SubjectAlert    SubjectKind = "alert"
	SubjectDevice   SubjectKind = "device"
	SubjectFile     SubjectKind = "file"
	SubjectIncident SubjectKind = "incident"
	// SubjectIP is an IP address, SubjectURL a URL or a domain (a
	// suspicious network connection), SubjectActor a threat actor or
	// campaign, by name.
	SubjectIP    SubjectKind = "ip"
	SubjectURL   SubjectKind = "url"
	SubjectActor SubjectKind = "actor"
)

// SubjectKinds lists every subject kind.
func SubjectKinds() []SubjectKind {
	return []SubjectKind{SubjectNone, SubjectAlert, SubjectDevice, SubjectFile, SubjectIncident, SubjectIP, SubjectURL, SubjectActor}
}

// Valid reports whether k is a known subject kind.
func (k SubjectKind) Valid() bool { return slices.Contains(SubjectKinds(), k) }

// Subject is what a case is about, with a link back to its source.
type Subject struct {
	// Kind is alert, device, file, incident, ip, url, actor, or none for a
	// general question.
	Kind SubjectKind `json:"kind"`
	// ID is the source's id: alert id, device id or name, file hash,
	// incident id, IP address, URL or domain, actor name.
	ID string `json:"id,omitempty"`
	// Name is a display name ("WIN-7 lateral movement", "laptop-042").
	Name string `json:"name,omitempty"`
	// Link points back to the source (Defender portal, notification), if any.
	Link string `json:"link,omitempty"`
	// Severity is the source's severity (informational, low, medium, high,
	// critical), when it has one; it sets the default priority.
	Severity string `json:"severity,omitempty"`
}

// Person is someone on a chat platform. casework keeps the ids as plain
// strings and knows nothing of the platforms.
type Person struct {
	// Platform, Workspace and UserID identify the account; DisplayName is
	// for showing.
	Platform    string `json:"platform"`
	Workspace   string `json:"workspace,omitempty"`
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
}

// IsZero reports whether p names nobody.
func (p Person) IsZero() bool { return p.UserID == "" }

// Same reports whether p and q are the same account.
func (p Person) Same(q Person) bool {
	return p.Platform == q.Platform && p.Workspace == q.Workspace && p.UserID == q.UserID
}

// Name is the display name, or the user id when there is none.
func (p Person) Name() string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.UserID
}

// Role is what an actor may do.
type Role string

// Roles.
const (
	// RoleRequester is a member of the case's org (SOC analyst).
	RoleRequester Role = "requester"
	// RoleExpert is a threat expert: sees every org, works cases.
	RoleExpert Role = "expert"
	// RoleManager sees every org and may do what requesters and experts do.
	RoleManager Role = "manager"
	// RoleSystem is threatdesk itself (SLA sweep, timeouts).
	RoleSystem Role = "system"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleRequester || r == RoleExpert || r == RoleManager || r == RoleSystem
}

// Actor is who makes a change.
type Actor struct {
	// Role decides what the actor may do (see Allowed).
	Role Role `json:"role"`
	// Org is the actor's org; required for requesters, who act only on their
	// org's cases.
	Org string `json:"org,omitempty"`
	// Person is who the actor is.
	Person
}

// System is the actor for threatdesk's own changes.
func System() Actor {
	return Actor{Role: RoleSystem, Person: Person{UserID: "threatdesk", DisplayName: "threatdesk"}}
}

// Viewer returns the read scope of a.
func (a Actor) Viewer() Viewer {
	if a.Role == RoleRequester {
		return OrgViewer(a.Org)
	}
	return AllOrgs()
}

func (a Actor) validate() error {
	if !a.Role.Valid() {
		return fmt.Errorf("actor role %q is not one of requester, expert, manager, system: %w", a.Role, ErrInvalid)
	}
	if a.Role == RoleRequester && a.Org == "" {
		return fmt.Errorf("a requester must belong to an org: %w", ErrInvalid)
	}
	if a.Role != RoleSystem && a.UserID == "" {
		return fmt.Errorf("a %s actor needs a user id: %w", a.Role, ErrInvalid)
	}
	return nil
}

// Viewer is the scope of a read: one org (its members), or all orgs
// (experts and managers). The zero Viewer sees nothing.
type Viewer struct {
	org string
	all bool
}

// OrgViewer scopes reads to org.
func OrgViewer(org string) Viewer { return Viewer{org: org} }

// AllOrgs is the scope of experts and managers.
func AllOrgs() Viewer { return Viewer{all: true} }

// Org returns the viewer's org ("" for all orgs).
func (v Viewer) Org() string { return v.org }

// All reports whether the viewer sees every org.
func (v Viewer) All() bool { return v.all }

func (v Viewer) validate() error {
	if !v.all && v.org == "" {
		return fmt.Errorf("viewer has no org and is not all-orgs: %w", ErrInvalid)
	}
	return nil
}

func (v Viewer) sees(org string) bool { return v.all || v.org == org }

// Place is a chat channel, whatever the platform: where a case was asked.
type Place struct {
	// Platform is "slack" or "discord" (casework does not interpret it).
	Platform string `json:"platform"`
	// Workspace is the Slack team or Discord guild id.
	Workspace string `json:"workspace,omitempty"`
	// Channel is the channel id.
	Channel string `json:"channel"`
}

// IsZero reports whether p names no channel.
func (p Place) IsZero() bool { return p.Channel == "" }

// ChatRef points at one chat message: plain strings, whatever the platform.
type ChatRef struct {
	// Platform is "slack" or "discord" (casework does not interpret it).
	Platform string `json:"platform"`
	// Workspace is the Slack team or Discord guild id.
	Workspace string `json:"workspace,omitempty"`
	// Channel holds the message.
	Channel string `json:"channel"`
	// Message is the Slack ts or the Discord message id.
	Message string `json:"message"`
}

// IsZero reports whether r points nowhere.
func (r ChatRef) IsZero() bool { return r.Message == "" }

// Side is which side of the conversation a message is on.
type Side string

// Sides.
const (
	SideRequester Side = "requester"
	SideExpert    Side = "expert"
)

// Case is an experts-on-demand case.
type Case struct {
	// Ref is the human reference, "EOD-12"; Number is its 12.
	Ref    string
	Number int64
	// Org is the org that asked; only its members (and experts, managers) see the case.
	Org string
	// Subject is what the case is about; Category what kind of question it is.
	Subject  Subject
	Category Category
	// Question is the requester's question, as typed (untrusted text).
	Question string
	// Priority picks the SLA targets.
	Priority Priority
	// PriorityBy is who chose the priority when the case was opened; zero
	// when it was derived from the subject (DerivePriority).
	PriorityBy Person
	// Requester is who asked.
	Requester Person
	// Contact is an optional way to reach the requester outside chat.
	Contact string
	// Origin is the chat channel the case was asked in, stored with the
	// case when it opens; zero for cases opened without one.
	Origin Place
	// Assignee is the expert who has the case; zero until taken.
	Assignee Person
	// Status is where the case stands.
	Status Status
	// Summary is the expert's conclusion, once concluded.
	Summary string
	// CreditUsed is true while the case holds one of its org's credits.
	CreditUsed bool

	// CreatedAt is when the case was opened; UpdatedAt when it last changed.
	CreatedAt time.Time
	UpdatedAt time.Time
	// StatusAt is when the case entered its current status; TakenAt,
	// FirstResponseAt, ConcludedAt and ClosedAt are nil until they happen
	// (ClosedAt is also set on withdrawal).
	StatusAt        time.Time
	TakenAt         *time.Time
	FirstResponseAt *time.Time
	ConcludedAt     *time.Time
	ClosedAt        *time.Time

	// DueAt is the earliest due time of a running SLA clock; nil while the
	// clock is paused or stopped.
	DueAt *time.Time
	// AtRisk is true when a pending SLA clock has passed its warning point.
	AtRisk bool
	// Breached is true when an SLA target was missed (response or conclusion).
	Breached bool
}

// Message is one message of a case's conversation.
type Message struct {
	// ID orders a case's messages; Ref is the case.
	ID  int64
	Ref string
	// Side is whose side wrote it; Author who.
	Side   Side
	Author Person
	// Text is the message as written (untrusted).
	Text string
	// Internal notes are for experts only and never relayed.
	Internal bool
	// Chat is where the message was written, when it came from chat.
	Chat ChatRef
	// CreatedAt is when it was stored.
	CreatedAt time.Time
}
