package hunting

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Classification is how a resolved incident was judged, in Microsoft
// Defender's vocabulary.
type Classification string

// Classifications.
const (
	ClassTruePositive      Classification = "true_positive"
	ClassInformational     Classification = "informational_expected_activity"
	ClassFalsePositive     Classification = "false_positive"
	classNone              Classification = ""
	resolvedByUpstream                    = "upstream"
	maxResolveCommentRunes                = 1000
)

// ParseClassification accepts a classification as Defender (TruePositive,
// InformationalExpectedActivity, FalsePositive), Graph (truePositive, ...)
// or this package (true_positive, ...) writes it, and the short forms tp,
// fp and benign.
func ParseClassification(s string) (Classification, error) {
	switch normKey(s) {
	case "truepositive", "tp":
		return ClassTruePositive, nil
	case "informationalexpectedactivity", "informational", "expectedactivity", "benign", "benignpositive":
		return ClassInformational, nil
	case "falsepositive", "fp":
		return ClassFalsePositive, nil
	}
	return classNone, fmt.Errorf("hunting: classification %q: use true_positive, informational_expected_activity or false_positive", s)
}

// Label is the classification in words, for a card: "true positive".
func (c Classification) Label() string {
	switch c {
	case ClassTruePositive:
		return "true positive"
	case ClassInformational:
		return "informational, expected activity"
	case ClassFalsePositive:
		return "false positive"
	}
	return "unclassified"
}

// ErrNotOpen is returned when an incident that is closed or merged is
// resolved, notified or closed again; the error says which and by whom.
var ErrNotOpen = errors.New("hunting: incident is not open")

// ErrAlreadyPosted is returned by NotifyNow for an incident already posted.
var ErrAlreadyPosted = errors.New("hunting: incident already posted")

// ErrAlreadyAcknowledged is returned by Acknowledge for an incident someone
// else acknowledged first; the error says who.
var ErrAlreadyAcknowledged = errors.New("hunting: incident already acknowledged")

// notOpen describes why an incident takes no action.
func notOpen(id int64, status string, mergedInto *int64, by *string, class string) error {
	switch {
	case status == "merged" && mergedInto != nil:
		return fmt.Errorf("incident %d was merged into incident %d: %w", id, *mergedInto, ErrNotOpen)
	case by != nil && *by == resolvedByUpstream:
		how := ""
		if class != "" {
			how = " as " + Classification(class).Label()
		}
		return fmt.Errorf("incident %d was resolved in the source (Defender or Graph)%s: %w", id, how, ErrNotOpen)
	case by != nil && class != "":
		return fmt.Errorf("incident %d was already resolved by %s as %s: %w", id, *by, Classification(class).Label(), ErrNotOpen)
	}
	return fmt.Errorf("incident %d is %s: %w", id, status, ErrNotOpen)
}

// Resolve closes an open incident of org with a classification, recording
// who resolved it, how and why (comment). When the incident was posted it
// records incident.resolved (see EventResolved), which edits the card to
// say "resolved by <by> as <classification>" and drops its buttons. A
// closed incident is never reopened: new activity on its entities starts
// a new incident that follows it. Resolving an incident that is not open
// returns ErrNotOpen, saying by whom and how it was resolved or into which
// incident it was merged.
func (s *Service) Resolve(ctx context.Context, org string, incidentID int64, class Classification, comment, by string) error {
	return s.ResolveOnce(ctx, org, incidentID, class, comment, by, "")
}

// ResolveOnce is Resolve for a request with an idempotency key: the same
// key again (the request worked again after a crash) is answered as done,
// not refused to its own author; "" is a request with no key.
func (s *Service) ResolveOnce(ctx context.Context, org string, incidentID int64, class Classification, comment, by, key string) error {
	if _, err := ParseClassification(string(class)); err != nil || class == classNone {
		return fmt.Errorf("resolve incident %d: %w", incidentID, errors.Join(err, errors.New("hunting: a classification is required")))
	}
	by = clip(strings.TrimSpace(by), maxShortLen)
	if by == "" {
		return fmt.Errorf("resolve incident %d: who resolves it is required", incidentID)
	}
	if strings.EqualFold(by, resolvedByUpstream) {
		// A person's chat name must not pass for the source's resolution.
		by += " (a person)"
	}
	comment = clipRunes(strings.TrimSpace(comment), maxResolveCommentRunes)
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Ingest must not attach alerts to it half-way: take the org's lock.
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		var st incState
		var posted bool
		var merged *int64
		var resolvedBy *string
		var prevClass, prevKey string
		err := tx.QueryRow(ctx, `SELECT id, status, title, severity, score, expert, notify_seq, posted_at IS NOT NULL, merged_into,
    resolved_by, classification, resolve_key
FROM hunting_incidents WHERE org = $1 AND id = $2 FOR UPDATE`, org, incidentID).Scan(&st.ID, &st.Status, &st.Title, &st.Severity,
			&st.Score, &st.Expert, &st.Seq, &posted, &merged, &resolvedBy, &prevClass, &prevKey)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("resolve incident %d of org %s: %w", incidentID, org, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("resolve incident %d: %w", incidentID, err)
		}
		if st.Status == "closed" && key != "" && prevKey == key {
			// The same request again, worked again after a crash: done.
			return nil
		}
		if st.Status != "open" {
			return notOpen(incidentID, st.Status, merged, resolvedBy, prevClass)
		}
		if _, err := tx.Exec(ctx, `
UPDATE hunting_incidents SET status = 'closed', closed_at = $2, next_due_at = NULL, updated_at = $2,
    classification = $3, resolved_by = $4, resolved_at = $2, resolve_comment = $5, resolve_key = $6
WHERE id = $1`, incidentID, now, string(class), by, comment, key); err != nil {
			return fmt.Errorf("resolve incident %d: %w", incidentID, err)
		}
		if !posted {
			return nil
		}
		st.Org, st.Status, st.Classification, st.ResolvedBy = org, "closed", class, by
		p := s.payload(&st, now)
		p.By, p.Comment = by, comment
		p.Note = clipRunes(fmt.Sprintf("Resolved by %s as %s", by, class.Label())+commentSuffix(comment), maxResolveCommentRunes+200)
		return s.appendEvent(ctx, tx, EventResolved, p)
	})
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// upstreamClassification names how alerts resolved upstream were
// classified, from the count of each: all false positives, any true
// positive, else expected activity when some say so.
func upstreamClassification(counts map[string]int) Classification {
	total := 0
	for _, n := range counts {
		total += n
	}
	switch {
	case total == 0:
		return classNone
	case counts[alertTruePositive] > 0:
		return ClassTruePositive
	case counts[alertFalsePositive] == total:
		return ClassFalsePositive
	case counts[alertInformationalExpected] > 0 && counts[alertInformationalExpected]+counts[alertFalsePositive] == total:
		return ClassInformational
	}
	return classNone
}

// autoResolve closes the incidents every alert of which is resolved
// upstream, classified from their alerts, and records incident.resolved
// (a note in the card's thread; By is "upstream") for those that were
// posted. It queues its writes on pt.
func (s *Service) autoResolve(ctx context.Context, tx pgx.Tx, pt *pipeTx, sts []*incState, now time.Time) (int, error) {
	var done []*incState
	for _, st := range sts {
		if st.Status == "open" && st.AlertCount > 0 && st.ResolvedAlerts >= st.AlertCount {
			done = append(done, st)
		}
	}
	if len(done) == 0 {
		return 0, nil
	}
	for _, st := range done {
		st.rescore(now, s.liveConfig().notifyScore(st.Org)) // the event names its title and score
	}
	ids := make([]int64, len(done))
	byID := map[int64]*incState{}
	for i, st := range done {
		ids[i], byID[st.ID] = st.ID, st
	}
	counts := map[int64]map[string]int{}
	rows, err := tx.Query(ctx, `SELECT incident_id, classification, count(*) FROM hunting_alerts WHERE incident_id = ANY($1) GROUP BY 1, 2`, ids)
	if err != nil {
		return 0, fmt.Errorf("classify incidents resolved upstream: %w", err)
	}
	for rows.Next() {
		var id int64
		var c string
		var n int
		if err := rows.Scan(&id, &c, &n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("classify incidents resolved upstream: %w", err)
		}
		if counts[id] == nil {
			counts[id] = map[string]int{}
		}
		counts[id][c] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("classify incidents resolved upstream: %w", err)
	}
	classes := make([]string, len(done))
	events := 0
	for i, st := range done {
		st.Status, st.ResolvedBy = "closed", resolvedByUpstream
		st.Classification = upstreamClassification(counts[st.ID])
		classes[i] = string(st.Classification)
		if st.PostedAt == nil && st.forced {
			// A merged card points here (its incident went into this one
			// in this batch): there must be a card to follow, posted as it
			// now stands, closed, before its resolution note.
			st.PostedAt, st.NotifiedAt = &now, &now
			st.Seq++
			st.Notified = st.snap(now)
			if err := s.appendEvent(ctx, pt, EventNotify, s.payload(st, now)); err != nil {
				return 0, err
			}
			events++
		}
		if st.PostedAt == nil {
			continue
		}
		p := s.payload(st, now)
		p.By = resolvedByUpstream
		p.Note = "All " + plural.S(st.AlertCount, "alert") + " were resolved in the source (Defender or Graph)"
		if st.Classification != classNone {
			p.Note += " as " + st.Classification.Label()
		}
		p.Note += ": the incident is closed"
		if err := s.appendEvent(ctx, pt, EventResolved, p); err != nil {
			return 0, err
		}
		events++
	}
	pt.b.Queue(`
UPDATE hunting_incidents i SET status = 'closed', closed_at = $1, resolved_at = $1, resolved_by = $2, classification = x.c
FROM unnest($3::bigint[], $4::text[]) AS x(id, c) WHERE i.id = x.id`, now, resolvedByUpstream, ids, classes)
	return events, nil
}

// NotifyNow posts a quiet incident (open, under the bar, not posted) at
// once through the normal outbox path (incident.notify, with By), as a
// person who judged it worth the SOC's attention asked. From then on it is
// updated and repeated like any posted incident. It returns
// ErrAlreadyPosted when it was posted already, ErrNotOpen when it is
// closed or merged.
func (s *Service) NotifyNow(ctx context.Context, org string, incidentID int64, by string) error {
	return s.notifyNow(ctx, org, incidentID, by, nil)
}

// Repost posts an open incident whose card was lost (its post went dead:
// the channel was gone, or the platform refused for hours) as a new card,
// through the same path as NotifyNow: the incident is taken as never posted.
// Only the caller knows the card is lost (the bot's delivery records): seq is
// the newest notification sequence it saw go out for the incident, and the
// card is posted again only while that is still the incident's (a second
// press, or another replica's, finds the new card's and gets
// ErrAlreadyPosted).
func (s *Service) Repost(ctx context.Context, org string, incidentID int64, by string, seq int) error {
	return s.notifyNow(ctx, org, incidentID, by, &seq)
}

func (s *Service) notifyNow(ctx context.Context, org string, incidentID int64, by string, lostSeq *int) error {
	by = clip(strings.TrimSpace(by), maxShortLen)
	if by == "" {
		return fmt.Errorf("notify incident %d: who asks is required", incidentID)
	}
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		sts, err := loadStates(ctx, tx, org, []int64{incidentID}, nil, true)
		if err != nil {
			return err
		}
		if len(sts) == 0 {
			return fmt.Errorf("notify incident %d of org %s: %w", incidentID, org, ErrNotFound)
		}
		st := sts[0]
		if st.Status != "open" {
			var merged *int64
			var resolvedBy *string
			var class string
			if err := tx.QueryRow(ctx, `SELECT merged_into, resolved_by, classification FROM hunting_incidents WHERE id = $1`, incidentID).
				Scan(&merged, &resolvedBy, &class); err != nil {
				return fmt.Errorf("notify incident %d: %w", incidentID, err)
			}
			return notOpen(incidentID, st.Status, merged, resolvedBy, class)
		}
		switch {
		case st.PostedAt != nil && lostSeq != nil && *lostSeq == st.Seq:
			st.PostedAt, st.EligibleAt, st.NotifiedAt, st.Notified = nil, nil, nil, nil
		case st.PostedAt != nil:
			return fmt.Errorf("notify incident %d: %w", incidentID, ErrAlreadyPosted)
		}
		if _, err := tx.Exec(ctx, `UPDATE hunting_incidents SET notify_by = $2 WHERE id = $1`, incidentID, by); err != nil {
			return fmt.Errorf("notify incident %d: %w", incidentID, err)
		}
		st.forced, st.notifyBy = true, by
		_, err = s.refresh(ctx, tx, sts, nil, now)
		return err
	})
}

// IncidentFilter selects incidents for Incidents.
type IncidentFilter string

// Incident filters.
const (
	// FilterOpen: open incidents, posted or not (Posted says which).
	FilterOpen IncidentFilter = "open"
	// FilterQuiet: open incidents that were not posted: under the bar.
	FilterQuiet IncidentFilter = "quiet"
	// FilterAll: every incident, closed and merged ones too.
	FilterAll IncidentFilter = "all"
)

// IncidentSummary is one line of an incident list.
type IncidentSummary struct {
	ID       int64    `json:"id"`
	Status   string   `json:"status"` // open, closed, merged
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Score    int      `json:"score"`
	// Reasons is the score's breakdown ("why").
	Reasons []Reason `json:"reasons"`
	// Posted: a card was posted (the score crossed the bar, or someone
	// asked with NotifyNow); PostedAt when.
	Posted      bool       `json:"posted"`
	PostedAt    *time.Time `json:"posted_at,omitempty"`
	FromExperts bool       `json:"from_experts"`
	AlertCount  int        `json:"alert_count"`
	DeviceCount int        `json:"device_count"`
	UserCount   int        `json:"user_count"`
	// LastActivity is the latest alert activity; CreatedAt when the
	// incident was opened.
	LastActivity time.Time `json:"last_activity"`
	CreatedAt    time.Time `json:"created_at"`
	// Classification, ResolvedBy and ResolvedAt for resolved incidents.
	Classification Classification `json:"classification,omitempty"`
	ResolvedBy     string         `json:"resolved_by,omitempty"`
	ResolvedAt     *time.Time     `json:"resolved_at,omitempty"`
	// MergedInto for merged incidents; Follows: the closed incident this
	// one follows.
	MergedInto int64 `json:"merged_into,omitempty"`
	Follows    int64 `json:"follows,omitempty"`
}

// MaxIncidentList caps Incidents.
const MaxIncidentList = 500

// Incidents lists org's incidents, newest first, at most limit (1 to
// MaxIncidentList; 0 means 50), with their score and why, and whether
// they were posted.
func (s *Service) Incidents(ctx context.Context, org string, filter IncidentFilter, limit int) ([]IncidentSummary, error) {
	return s.IncidentsBefore(ctx, org, filter, 0, limit)
}

// IncidentsBefore is Incidents from the incident before id on (ids grow
// with time: the next page of a list); before 0 is the newest.
func (s *Service) IncidentsBefore(ctx context.Context, org string, filter IncidentFilter, before int64, limit int) ([]IncidentSummary, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxIncidentList)
	cond := ""
	switch filter {
	case FilterOpen, "":
		cond = `AND status = 'open'`
	case FilterQuiet:
		cond = `AND status = 'open' AND posted_at IS NULL`
	case FilterAll:
	default:
		return nil, fmt.Errorf("hunting: incident filter %q: use open, quiet or all", filter)
	}
	rows, err := s.pool.Query(ctx, `
SELECT id, status, title, severity, score, breakdown, posted_at, expert, alert_count, device_count, user_count,
    last_activity, created_at, classification, resolved_by, resolved_at, merged_into, follows
FROM hunting_incidents WHERE org = $1 AND id < $3 `+cond+` ORDER BY id DESC LIMIT $2`, org, limit, before)
	if err != nil {
		return nil, fmt.Errorf("hunting: list incidents of org %s: %w", org, err)
	}
	defer rows.Close()
	out := []IncidentSummary{}
	for rows.Next() {
		var v IncidentSummary
		var la *time.Time
		var by *string
		var merged, follows *int64
		var class string
		if err := rows.Scan(&v.ID, &v.Status, &v.Title, &v.Severity, &v.Score, &v.Reasons, &v.PostedAt, &v.FromExperts, &v.AlertCount,
			&v.DeviceCount, &v.UserCount, &la, &v.CreatedAt, &class, &by, &v.ResolvedAt, &merged, &follows); err != nil {
			return nil, fmt.Errorf("hunting: list incidents of org %s: %w", org, err)
		}
		v.Posted = v.PostedAt != nil
		v.Classification = Classification(class)
		if la != nil {
			v.LastActivity = *la
		}
		if by != nil {
			v.ResolvedBy = *by
		}
		if merged != nil {
			v.MergedInto = *merged
		}
		if follows != nil {
			v.Follows = *follows
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hunting: list incidents of org %s: %w", org, err)
	}
	if err := s.Shown(ctx); err != nil {
		return nil, err
	}
	return out, nil
}
