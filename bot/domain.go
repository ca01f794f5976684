package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// The bot's view of the domains it drives. casework and hunting know nothing
// of chat; these consumer-owned interfaces are what the bot needs from them,
// so the bot compiles and is tested without either, and a small shim maps
// each domain's API onto them (see casework.go).

// Status is a case status, named as casework names it.
type Status string

// Case statuses.
const (
	StatusNew        Status = "new"
	StatusInProgress Status = "in_progress"
	StatusMoreInfo   Status = "more_info_needed"
	StatusSample     Status = "file_sample_needed"
	StatusMoreTime   Status = "needs_more_time"
	StatusConcluded  Status = "concluded"
	StatusClosed     Status = "closed"
	StatusWithdrawn  Status = "withdrawn"
)

// Side is which end of a case a message comes from.
type Side string

// Sides.
const (
	SideRequester Side = "requester"
	SideExpert    Side = "expert"
)

// SubjectKind is what a case is about.
type SubjectKind string

// Subject kinds.
const (
	SubjectNone     SubjectKind = "none"
	SubjectAlert    SubjectKind = "alert"
	SubjectDevice   SubjectKind = "device"
	SubjectFile     SubjectKind = "file"
	SubjectIncident SubjectKind = "incident"
	// An IP address, a URL or domain (a suspicious network connection), a
	// threat actor or campaign by name (insight.go).
	SubjectIP    SubjectKind = "ip"
	SubjectURL   SubjectKind = "url"
	SubjectActor SubjectKind = "actor"
)

// Subject is what a case is about, enriched from hunting where it knows it.
type Subject struct {
	Kind     SubjectKind
	ID       string
	Name     string // alert title, host name, file name, incident title
	Link     string
	Severity string
	Detail   string // e.g. "score 87", "host WS-17"
}

// Scope says whose cases a caller may see: one org, or all of them.
type Scope struct {
	Org string
	All bool
}

// OpenCase is a request to open a case.
type OpenCase struct {
	Key       string // idempotency key: a retried command opens one case
	Org       string
	Subject   Subject
	Question  string
	Requester User
	// Origin is where the requester asked; casework stores it in the
	// transaction that opens the case, and the receipt is posted there.
	Origin Dest
	// Priority is the priority chosen in the ask form (high, medium,
	// low); empty: derived from the subject. PriorityBy is who chose it.
	Priority   string
	PriorityBy *User
	// ApprovedBy is a manager who approved this case beyond the org's
	// credits: with none left it opens without one.
	ApprovedBy *User
}

// SLAView is a case's SLA state, derived by casework.
type SLAView struct {
	Paused   bool
	Due      time.Time // the next due time of a running clock; zero when none
	AtRisk   bool
	Breached bool
}

// CaseView is what the bot shows of a case.
type CaseView struct {
	Ref      string
	Org      string
	Subject  Subject
	Category string
	Question string
	Priority string
	// PriorityBy is who chose the priority when asking; nil when it was
	// derived from the subject.
	PriorityBy *User
	Status     Status
	Requester  User
	Assignee   *User
	Summary    string
	OpenedAt   time.Time
	UpdatedAt  time.Time
	// StatusAt is when the case entered its current status.
	StatusAt time.Time
	// Origin is the channel the case was asked in (Thread nil); zero for
	// cases opened before it was stored with the case.
	Origin Dest
	SLA    SLAView
	// LastMessageAt and LastMessageSide describe the newest relayed message
	// (filled for the status answer only).
	LastMessageAt   time.Time
	LastMessageSide Side
	// Samples are the case's file samples, for the desk card's Download
	// sample buttons (filled when rendering, if samples are on).
	Samples []SampleView
	// Insight is what the experts see of the case's subject on the desk
	// card: sightings at other orgs, what its org knows of it, campaigns
	// (filled when rendering the desk card, if insight is on; insight.go).
	Insight *DeskInsight
}

// CaseFilter selects cases for a list.
type CaseFilter struct {
	Which    string // open, mine, breaching, all
	Assignee string // user id for an expert's "mine": assigned to them
	// Requester is the user for a member's "mine": the cases they asked.
	Requester *User
	// Subject keeps the cases about this subject (kind and id).
	Subject *Subject
	Limit   int
}

// CaseList is one page of cases and how many more matched.
type CaseList struct {
	Cases []CaseView
	More  int
}

// Credits is an org's case allowance.
type Credits struct {
	Org       string
	Balance   int
	Allowance int
	ResetsAt  time.Time
}

// CaseMessage is a message to add to a case's conversation.
type CaseMessage struct {
	Ref string
	// Org is the member's org when Role is RoleMember.
	Org      string
	Role     Role
	Side     Side
	Author   User
	Text     string
	Internal bool
	Chat     Ref // the chat message it came from; redeliveries are stored once
}

// CaseEventKind is a rendered kind of case event.
type CaseEventKind string

// Case event kinds the bot renders.
const (
	CaseOpened     CaseEventKind = "opened"
	CaseAssigned   CaseEventKind = "assigned"
	CaseMessaged   CaseEventKind = "message"
	CaseStatus     CaseEventKind = "status"
	CaseSLAWarning CaseEventKind = "sla_warning"
	CaseSLABreach  CaseEventKind = "sla_breach"
	CaseCredits    CaseEventKind = "credits"
	// CaseSampleStored: a file sample arrived (Sample set).
	CaseSampleStored CaseEventKind = "sample_stored"
	// CasePaged: a high-priority case nobody took: page the next expert on
	// the rotation and the managers.
	CasePaged CaseEventKind = "paged"
	// CaseReminded: remind the requester an expert waits on them.
	CaseReminded CaseEventKind = "reminded"
)

// CaseEvent is a casework outbox event decoded for rendering.
type CaseEvent struct {
	Kind  CaseEventKind
	Ref   string
	Actor string // display name of who acted
	// ActorID is the user id of a message's author.
	ActorID  string
	Side     Side
	Text     string
	Internal bool
	From, To Status
	// Chat is the chat message a relayed message came from: never echoed
	// back into the thread it came from.
	Chat Ref
	// Detail is extra wording (which SLA clock, why).
	Detail string
	// Sample is the stored sample of CaseSampleStored.
	Sample *SampleEvent
	// OutboxID is the outbox row the event came in (set by render): what
	// keys work done once per event.
	OutboxID int64
	// Assignee, on CaseAssigned, has the case now; By names who assigned
	// it, empty when the assignee took it themselves.
	Assignee *User
	By       string
	// SLA details a CaseSLAWarning or CaseSLABreach.
	SLA *SLANotice
	// Since and Waited, on CasePaged and CaseReminded: since when the case
	// was new or waiting on its requester, and how long when the sweep acted.
	Since  time.Time
	Waited time.Duration
	// At, on CasePaged, is when the sweep decided to page.
	At time.Time
}

// SLANotice is what an SLA warning or breach is about.
type SLANotice struct {
	// Clock is "first response" or "conclusion"; Target its allowance for
	// Priority.
	Clock    string
	Target   time.Duration
	Priority string
	// Due is when the target is (or was) reached.
	Due time.Time
	// Paused: the clock is paused while the case waits on the requester;
	// Left is then what remains of the target.
	Paused bool
	Left   time.Duration
}

// Cases is what the bot needs from casework.
type Cases interface {
	Open(ctx context.Context, o OpenCase) (CaseView, error)
	// OpenedBy is the ref of org's case opened with key, if any.
	OpenedBy(ctx context.Context, org, key string) (string, bool, error)
	Get(ctx context.Context, s Scope, ref string) (CaseView, error)
	List(ctx context.Context, s Scope, f CaseFilter) (CaseList, error)
	// Take takes ref for expert; key is the inbound event's (TakenWith).
	Take(ctx context.Context, ref string, expert User, key string) (CaseView, error)
	// TakenWith is the open case expert took with key, if any: a take of
	// the most urgent new case worked again after a crash finds it.
	TakenWith(ctx context.Context, expert User, key string) (string, bool, error)
	// Assign gives ref to expert; by acts with role (expert or manager).
	Assign(ctx context.Context, ref string, expert, by User, role Role) (CaseView, error)
	// Transition moves a case; by acts with role (member, expert, manager);
	// a member acts for s.Org.
	// key is the inbound event's (inboundKey): a change made with it
	// already is not made again.
	Transition(ctx context.Context, s Scope, ref string, to Status, by User, role Role, text, key string) (CaseView, error)
	// LastMessage is when the newest non-internal message came, and from
	// which side; zero when there is none.
	LastMessage(ctx context.Context, s Scope, ref string) (time.Time, Side, error)
	AddMessage(ctx context.Context, m CaseMessage) error
	Credits(ctx context.Context, org string) (Credits, error)
	// DefaultPriority is the priority a case about s gets when nobody
	// chooses one (high, medium or low).
	DefaultPriority(s Subject) string
	// DecodeEvent turns an outbox row of casework's into a CaseEvent; ok is
	// false for kinds that are not casework's.
	DecodeEvent(kind string, payload json.RawMessage) (ev CaseEvent, ok bool, err error)
}

// IncidentView is what the bot shows of a hunting incident.
type IncidentView struct {
	ID       string
	Org      string
	Title    string
	Summary  string
	Severity Severity
	Score    int
	Reasons  []string
	// Scope lists entities by kind ("devices", "users", "files", "ips", "urls").
	Scope       []ScopeGroup
	Timeline    []string
	Tactics     []string
	Recommended []string
	Link        string
	AckedBy     string
	Test        bool
	// Status is open, closed or merged (MergedInto then names the incident
	// to follow); a card that is not open keeps no button that acts on the
	// incident. Resolution says who closed it and how, when someone did.
	Status     string
	MergedInto string
	Resolution *Resolution
	// Follows is the closed incident this one follows (new activity on its
	// entities), with its title.
	Follows      string
	FollowsTitle string
	// Campaign, when set, says the experts linked it to a campaign they
	// track (insight.go).
	Campaign *CampaignLink
}

// ScopeGroup is one kind of compromised entity.
type ScopeGroup struct {
	Kind  string
	Items []ScopeItem
	// Count is the total, when Items lists only the first few.
	Count int
}

func (g ScopeGroup) total() int { return max(g.Count, len(g.Items)) }

// ScopeItem is one entity of a scope: its name as people know it (a host
// name, a file's path, an account) and, when there is one worth showing,
// its id (a device's id, a file's hash), which Ask about buttons name.
type ScopeItem struct {
	Name string
	ID   string
}

// text is how it reads in room runes: the name first, as people know it,
// then the id whole when both fit (a name keeps at least 20 runes); else
// the two cut at room. A path keeps its end (the file's name).
func (it ScopeItem) text(room int) string {
	name := it.Name
	if it.ID == "" || it.ID == name {
		return cutName(cmp.Or(name, it.ID), room)
	}
	if name == "" {
		return cut(it.ID, room)
	}
	nameRoom := room - utf8.RuneCountInString(it.ID) - utf8.RuneCountInString(" · ")
	if nameRoom >= min(utf8.RuneCountInString(name), 20) {
		return cutName(name, nameRoom) + " · " + it.ID
	}
	return cut(cutName(name, 20)+" · "+it.ID, room)
}

// subject is what an Ask about button asks about: the id, else the name.
func (it ScopeItem) subject() string { return cmp.Or(it.ID, it.Name) }

// cutName cuts a name to n runes: a path (with a backslash or slash) from
// its start, so that the file's name stays; anything else at its end.
func cutName(s string, n int) string {
	if utf8.RuneCountInString(s) <= n || !strings.ContainsAny(s, `\/`) || n <= 1 {
		return cut(s, n)
	}
	r := []rune(s)
	return "…" + string(r[len(r)-(n-1):])
}

// IncidentEvent is a hunting outbox event decoded for rendering.
type IncidentEvent struct {
	IncidentID string
	Org        string
	// Action is post (first card), update (edit in place, with Changes as a
	// thread note) or repeat (post a reminder in the card's thread).
	Action  string
	Changes []string
	// Note, when set, is the one line for the card's thread (a resolution,
	// in hunting's words), shown instead of Changes.
	Note string
}

// Incidents is what the bot needs from hunting. It may be nil: the bot then
// opens cases on an incident without enrichment and renders no notifications.
type Incidents interface {
	Incident(ctx context.Context, org, id string) (IncidentView, error)
	// FullScope lists every entity of an incident, for "Show full scope".
	FullScope(ctx context.Context, org, id string) ([]ScopeGroup, error)
	Acknowledge(ctx context.Context, org, id string, by User) error
	// Describe enriches a case subject (alert title, host, incident score);
	// ok is false when hunting does not know it.
	Describe(ctx context.Context, org string, kind SubjectKind, id string) (s Subject, ok bool, err error)
	DecodeEvent(kind string, payload json.RawMessage) (ev IncidentEvent, ok bool, err error)
	// Resolve closes an open incident of org with a classification
	// (Classification*) and a comment; a closed or merged one is refused
	// with a Refusal saying by whom and how, or into which incident. key
	// names the request: the same key again (its work retried after a
	// crash) is answered as done.
	Resolve(ctx context.Context, org, id, classification, comment, key string, by User) error
	// NotifyNow posts a quiet incident as a notification; one already
	// posted, closed or merged is refused with a Refusal.
	NotifyNow(ctx context.Context, org, id string, by User) error
	// Repost posts an open incident whose card was lost (its post went
	// dead) as a new card, as NotifyNow does, while seq (the newest
	// notification sequence its events carried) is still the incident's;
	// otherwise, or closed or merged, it is refused with a Refusal.
	Repost(ctx context.Context, org, id string, seq int, by User) error
	// List is org's incidents (open, quiet or all), newest first from the
	// one before before (0: the newest): at most limit of them, and how
	// many more matched.
	List(ctx context.Context, org, filter string, before int64, limit int) (IncidentList, error)
}

// Refusal is an error a domain returns for a request the current state or
// the caller's role forbids; Msg is one sentence for the person who asked
// ("EOD-12 is already concluded; use Reopen").
type Refusal struct {
	Msg string
	Err error
}

func (r *Refusal) Error() string { return r.Msg }
func (r *Refusal) Unwrap() error { return r.Err }

// ErrNoCredits is wrapped by the Refusal of an open refused because the
// org has no credits left this quarter.
var ErrNoCredits = errors.New("no credits left")

// ErrNotFound is returned (wrapped) for a case or incident that does not
// exist or that the caller's scope does not show: the two are not told apart.
var ErrNotFound = errors.New("not found")
