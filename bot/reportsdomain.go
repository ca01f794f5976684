package bot

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// What the bot needs from casework for managers and auditors (issue 16):
// the service report and its weekly digest, case search, the pages behind a
// list's More button, a case's full record and the check of its timeline.
// Like Cases, it is owned here; CaseworkCases implements it (reports.go's
// commands find it on the Cases they were given).

// CaseReports is the reads behind "/experts report", the weekly digest, "cases
// search", More, "export" and "verify". Every read is scoped by s as Get
// is: a case or an org s does not see is reported exactly as a missing one
// (ErrNotFound).
type CaseReports interface {
	// Report is the service report of q's period for the orgs s sees (q.Org
	// narrows it to one).
	Report(ctx context.Context, s Scope, q ReportQuery) (ReportView, error)
	// ListPage is one page of a case list; token continues an earlier page
	// (CasePage.Next), "" starts one.
	ListPage(ctx context.Context, s Scope, f CaseFilter, token string) (CasePage, error)
	// Search finds cases, newest first.
	Search(ctx context.Context, s Scope, q SearchQuery) (SearchPage, error)
	// Export is a case's full record as files; internal notes only with
	// internal (experts). loc is the zone the Markdown shows times in.
	Export(ctx context.Context, s Scope, ref string, internal bool, loc *time.Location) (CaseRecord, error)
	// Verify checks a case's hash chain.
	Verify(ctx context.Context, s Scope, ref string) (Verification, error)
	// QueueDigest queues the digest of the week before the one of the
	// scheduled time due gives for now, once, whichever replica asks
	// first: true when this call queued it.
	QueueDigest(ctx context.Context, loc *time.Location, due func(now time.Time) time.Time) (bool, error)
	// DecodeDigest reads a digest outbox event into the report to render;
	// ok is false for any other kind.
	DecodeDigest(kind string, payload json.RawMessage) (q ReportQuery, ok bool, err error)
}

// errNoReports answers when the Cases the bot was given cannot report.
var errNoReports = errors.New("reports are not available: the case store does not implement bot.CaseReports")

// reports returns the bot's CaseReports.
func (b *Bot) reports() (CaseReports, error) {
	r, ok := b.cases.(CaseReports)
	if !ok {
		return nil, errNoReports
	}
	return r, nil
}

// Report periods.
const (
	PeriodWeek    = "week"
	PeriodMonth   = "month"
	PeriodQuarter = "quarter"
)

// ReportQuery asks for a report.
type ReportQuery struct {
	// Org narrows the report to one org ("": every org in scope).
	Org string
	// Period is week, month or quarter ("": quarter).
	Period string
	// Location is the calendar's time zone (nil: UTC).
	Location *time.Location
	// At picks the period containing it (zero: now).
	At time.Time
}

// ReportView is a service report as the bot shows it.
type ReportView struct {
	Period string
	// From is the period's first instant, End the first after it, To where
	// the figures stop (End, or now while the period runs: Complete false).
	From, To, End time.Time
	Complete      bool
	TimeZone      string
	// Orgs has one entry per org in scope, by id; Total sums them.
	Orgs  []OrgFigures
	Total OrgFigures
}

// OrgFigures are one org's figures (Org "" in a total).
type OrgFigures struct {
	Org string
	// Opened counts the cases opened in the period, by subject kind and
	// priority ("high", "medium", "low").
	Opened     int
	ByKind     map[SubjectKind]int
	ByPriority map[string]int
	// FirstResponse and Conclusion are SLA clock times (pauses excluded).
	FirstResponse, Conclusion DurationFigures
	SLA                       SLAFigures
	CreditsUsed, CreditsLeft  int
	// Posted and Acknowledged count notification cards first posted in the
	// period; MedianToAck is the median time to acknowledge (Acknowledged > 0).
	Posted, Acknowledged int
	MedianToAck          time.Duration
}

// DurationFigures are the median and 90th percentile of Count durations.
type DurationFigures struct {
	Count       int
	Median, P90 time.Duration
}

// SLAFigures say how the period's cases fared against their targets.
type SLAFigures struct {
	// Decided cases are concluded or missed a target; Within of them were
	// concluded missing none (Share = Within / Decided when HasShare).
	Decided, Within, Breached, Pending, Excluded int
	Share                                        float64
	HasShare                                     bool
	// BreachCount counts missed targets; Breaches lists them, newest first
	// (perhaps fewer).
	BreachCount int
	Breaches    []BreachView
}

// BreachView is one missed target.
type BreachView struct {
	Ref      string
	Org      string
	Priority string
	// FirstResponse is true for the first-response target, false for the
	// conclusion target.
	FirstResponse   bool
	Target, Elapsed time.Duration
	Status          Status
}

// CasePage is one page of a case list.
type CasePage struct {
	Cases []CaseView
	// Total matched in all pages; Remaining after this one; Next continues
	// (empty on the last page).
	Total, Remaining int
	Next             string
}

// SearchQuery is a case search.
type SearchQuery struct {
	// Text is what was typed after "search".
	Text string
	// Org narrows an all-orgs viewer to one org.
	Org string
	// Internal also searches internal expert notes (experts only).
	Internal bool
	Limit    int
	// Cursor continues a search (SearchPage.Next).
	Cursor string
}

// SearchPage is one page of a search, newest case first.
type SearchPage struct {
	Cases []CaseView
	More  bool
	Next  string
}

// Document is a file handed to a person (an export).
type Document struct {
	Name        string
	Title       string
	ContentType string
	Data        []byte
}

// CaseRecord is a case's full record, as the files to hand over.
type CaseRecord struct {
	Ref   string
	Files []Document
	// Verification is the chain check in one sentence; Intact its outcome.
	Verification string
	Intact       bool
	// Internal says whether internal expert notes are in the files.
	Internal bool
}

// Verification is the check of a case's hash chain.
type Verification struct {
	Ref     string
	Intact  bool
	Entries int
	// Sentence is the result in words: "EOD-12: intact, 7 entries, head …",
	// or the first entry that does not match.
	Sentence string
}

// FileResponder is a Responder that can also hand files to the person who
// acted, privately (Slack: a direct message from the app, since Slack has
// no ephemeral files; Discord: an ephemeral follow-up with attachments).
type FileResponder interface {
	Responder
	// RespondFiles sends m with files to the person who acted, where only
	// they see it. where says where they went when that is not where the
	// person's answer goes ("in a direct message from threatdesk"); it is
	// empty when m with its files is the answer itself.
	RespondFiles(ctx context.Context, m Message, files []Document) (where string, err error)
}

// errAnswered is returned by a command's work that answered the person
// itself (RespondFiles): there is nothing more to say.
var errAnswered = errors.New("answered")
