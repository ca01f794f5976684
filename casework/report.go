package casework

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threatdesk/threatdesk/internal/walflush"
)

// The service report: how experts on demand performed for an org (or every
// org) over a calendar period. The bot renders it for "/experts report" and
// the weekly digest; its JSON shape (the json tags below) also feeds the web
// report's charts.
//
// What the figures mean:
//
//   - The cohort is the cases opened in the period ([From, To)). Every case
//     figure is about the cohort, as it stands when the report is made: a case
//     opened last week and concluded today counts its conclusion.
//   - Time to first response and time to conclusion are SLA clock time, as
//     SLA computes it: time in new, in_progress and needs_more_time, pauses
//     (waiting on the requester) excluded (see clocksSQL for how it is read).
//     The first response is the first expert-side answer (a relayed message,
//     or asking for information, a sample or time, or concluding); taking a
//     case is not. A target counts as missed when the sweep recorded the
//     breach or the clock time reached it, as in SLA.
//   - Within SLA: a concluded (or closed) case that missed neither target.
//     Decided cases are those concluded or with a missed target; the share
//     is Within / Decided. Open cases on time are Pending; withdrawn cases
//     that missed nothing are left out (Excluded).
//   - Credits used: cohort cases still holding a credit (a case withdrawn
//     before an expert took it gave its credit back). Credits left: the
//     balance now.
//   - Notifications: incident cards first posted in the period, how many of
//     those were acknowledged, and the median time from post to acknowledgement.
//
// Each figure family is one SQL query over every org in scope at once:
// medians and 90th percentiles are percentile_cont in SQL, per org and, for
// Report.Total, over all of them through GROUPING SETS; counts are summed.

// Period is the length of a report's calendar period.
type Period string

// Report periods: the calendar week (Monday to Sunday), month or quarter
// containing the report's moment, in the report's time zone.
const (
	PeriodWeek    Period = "week"
	PeriodMonth   Period = "month"
	PeriodQuarter Period = "quarter"
)

// ParsePeriod reads a period as typed: "week", "month", "quarter" (any
// case), or "" for the default, the quarter.
func ParsePeriod(s string) (Period, error) {
	switch p := Period(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return PeriodQuarter, nil
	case PeriodWeek, PeriodMonth, PeriodQuarter:
		return p, nil
	}
	return "", fmt.Errorf("%q is not a report period: use week, month or quarter: %w", s, ErrInvalid)
}

// MaxReportBreaches bounds the breaches listed per org (and in the total);
// OrgReport.SLA.BreachCount has them all.
const MaxReportBreaches = 100

// ReportRequest asks for a report.
type ReportRequest struct {
	// Org is the org to report on. Empty: every org the viewer sees (an org
	// member: their own; experts and managers: every configured org, each
	// in Report.Orgs, summed in Report.Total).
	Org string
	// Period is week, month or quarter (empty: quarter).
	Period Period
	// Location is the time zone of the calendar (the config's timezone);
	// nil is UTC.
	Location *time.Location
	// At picks the period: the one containing At (zero: now). A period that
	// has ended is reported whole; the current one up to now. The weekly
	// digest asks for last week with At = now minus 7 days.
	At time.Time
}

// Report is the service report of one period.
type Report struct {
	// Period is its length; From its first instant; End the first instant
	// after it; To is where the figures stop: End, or now for the current
	// period (Complete false). All in TimeZone.
	Period   Period    `json:"period"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	End      time.Time `json:"end"`
	Complete bool      `json:"complete"`
	TimeZone string    `json:"time_zone"`
	// GeneratedAt is when the figures were read (UTC).
	GeneratedAt time.Time `json:"generated_at"`
	// Orgs has one entry per org in scope, by org id, zeros included.
	Orgs []OrgReport `json:"orgs"`
	// Total sums the orgs (its Org is empty); with one org in scope it
	// equals that org's figures.
	Total OrgReport `json:"total"`
}

// OrgReport is the figures of one org (or, in Report.Total, of all in scope).
type OrgReport struct {
	Org string `json:"org"`
	// Opened counts the cohort.
	Opened OpenedFigures `json:"opened"`
	// FirstResponse and Conclusion are the SLA clock times to the first
	// response and to conclusion of the cohort cases that have one.
	FirstResponse DurationStats `json:"first_response"`
	Conclusion    DurationStats `json:"conclusion"`
	// SLA is how the cohort fared against its targets.
	SLA SLAFigures `json:"sla"`
	// Credits are the cohort's credits used and the balance now.
	Credits CreditFigures `json:"credits"`
	// Notifications are the incident cards of the period.
	Notifications NotificationFigures `json:"notifications"`
}

// OpenedFigures counts the cases opened in the period.
type OpenedFigures struct {
	Total int `json:"total"`
	// ByKind and ByPriority hold every subject kind and priority, zeros included.
	ByKind     map[SubjectKind]int `json:"by_kind"`
	ByPriority map[Priority]int    `json:"by_priority"`
	// ByWeek counts per calendar week (Monday 00:00) of the period, in
	// order, clipped to [From, To): the first and last weeks may be short.
	ByWeek []WeekCount `json:"by_week"`
}

// WeekCount is the cases opened in [Start, End).
type WeekCount struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Count int       `json:"count"`
}

// DurationStats are the median and 90th percentile (linear interpolation,
// as percentile_cont) of Count durations; both zero when Count is 0. In
// JSON they are seconds: {"count", "median_seconds", "p90_seconds"}, the
// latter two null when Count is 0.
type DurationStats struct {
	Count  int           `json:"count"`
	Median time.Duration `json:"-"`
	P90    time.Duration `json:"-"`
}

// MarshalJSON writes the durations in seconds.
func (d DurationStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count  int      `json:"count"`
		Median *float64 `json:"median_seconds"`
		P90    *float64 `json:"p90_seconds"`
	}{d.Count, seconds(d.Count > 0, d.Median), seconds(d.Count > 0, d.P90)})
}

func seconds(ok bool, d time.Duration) *float64 {
	if !ok {
		return nil
	}
	s := d.Seconds()
	return &s
}

// SLAFigures is how the cohort fared against its SLA targets (see Report).
type SLAFigures struct {
	// Cases is the cohort.
	Cases int `json:"cases"`
	// Decided: concluded, or a target missed. Within: concluded with no
	// target missed. Breached: cases that missed a target (either clock).
	// Pending: open cases that have missed nothing yet. Excluded: withdrawn
	// cases that missed nothing.
	Decided  int `json:"decided"`
	Within   int `json:"within"`
	Breached int `json:"breached"`
	Pending  int `json:"pending"`
	Excluded int `json:"excluded"`
	// Share is Within / Decided (0 when nothing is decided; see HasShare).
	Share    float64 `json:"share"`
	HasShare bool    `json:"has_share"`
	// BreachCount counts missed targets (a case that missed both counts
	// twice); Breaches lists them, newest case first, at most
	// MaxReportBreaches.
	BreachCount int      `json:"breach_count"`
	Breaches    []Breach `json:"breaches"`
}

// Breach is one missed SLA target.
type Breach struct {
	Ref      string   `json:"ref"`
	Org      string   `json:"org"`
	Priority Priority `json:"priority"`
	// Clock is the target missed; Target its allowance; Elapsed the clock
	// time counted (until it was met, or until now).
	Clock   Clock         `json:"clock"`
	Target  time.Duration `json:"-"`
	Elapsed time.Duration `json:"-"`
	// Status is the case's status now; Assignee the name of who holds it
	// (empty: nobody).
	Status   Status    `json:"status"`
	Assignee string    `json:"assignee,omitempty"`
	OpenedAt time.Time `json:"opened_at"`
}

// MarshalJSON writes Target and Elapsed in seconds.
func (b Breach) MarshalJSON() ([]byte, error) {
	type plain Breach
	return json.Marshal(struct {
		plain
		Target  float64 `json:"target_seconds"`
		Elapsed float64 `json:"elapsed_seconds"`
	}{plain(b), b.Target.Seconds(), b.Elapsed.Seconds()})
}

// CreditFigures are an org's credits: used by the cohort, left now.
type CreditFigures struct {
	Used int `json:"used"`
	Left int `json:"left"`
}

// NotificationFigures are the incident cards first posted in the period.
type NotificationFigures struct {
	Posted       int `json:"posted"`
	Acknowledged int `json:"acknowledged"`
	// MedianToAck is the median time from post to acknowledgement of the
	// acknowledged ones (zero when none); JSON: median_to_ack_seconds, null
	// when none.
	MedianToAck time.Duration `json:"-"`
}

// MarshalJSON writes MedianToAck in seconds.
func (n NotificationFigures) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Posted       int      `json:"posted"`
		Acknowledged int      `json:"acknowledged"`
		MedianToAck  *float64 `json:"median_to_ack_seconds"`
	}{n.Posted, n.Acknowledged, seconds(n.Acknowledged > 0, n.MedianToAck)})
}

// NotificationSource supplies the notification figures of a report: for
// each of orgs, the figures of the cards first posted in [from, to), and
// their sum over orgs as total. Orgs with nothing may be left out of byOrg.
// Owned by casework (the consumer); HuntingNotifications implements it.
type NotificationSource interface {
	NotificationFigures(ctx context.Context, orgs []string, from, to time.Time) (byOrg map[string]NotificationFigures, total NotificationFigures, err error)
}

// HuntingNotifications reads notification figures from hunting's incident
// table (hunting_incidents: posted_at, acked_at), read-only, in one query.
// A card counts as posted when hunting decided to post it (posted_at).
// What it counts is on disk before it returns (walflush).
type HuntingNotifications struct {
	Pool *pgxpool.Pool
}

// NotificationFigures implements NotificationSource.
func (h HuntingNotifications) NotificationFigures(ctx context.Context, orgs []string, from, to time.Time) (map[string]NotificationFigures, NotificationFigures, error) {
	rows, err := h.Pool.Query(ctx, notificationSQL, orgs, from, to)
	if err != nil {
		return nil, NotificationFigures{}, fmt.Errorf("report: notification figures: %w", err)
	}
	defer rows.Close()
	out := map[string]NotificationFigures{}
	var total NotificationFigures
	for rows.Next() {
		var org *string
		var n NotificationFigures
		var med *float64
		if err := rows.Scan(&org, &n.Posted, &n.Acknowledged, &med); err != nil {
			return nil, NotificationFigures{}, fmt.Errorf("report: notification figures: %w", err)
		}
		n.MedianToAck = micros(med)
		if org == nil {
			total = n
		} else {
			out[*org] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, NotificationFigures{}, fmt.Errorf("report: notification figures: %w", err)
	}
	// Hunting commits incidents without waiting for the disk: what a
	// report counts is on disk before it is shown.
	if err := walflush.Flush(ctx, h.Pool); err != nil {
		return nil, NotificationFigures{}, fmt.Errorf("report: notification figures: wait for the disk: %w", err)
	}
	return out, total, nil
}

// notificationSQL: $1 orgs, $2 from, $3 to. The total row has a NULL org.
// An acknowledgement from before the incident's own posting was handed on
// by a merge with the card it was made on: the card is acknowledged, but
// its time to acknowledge is the other card's (counted there), not a
// negative one.
const notificationSQL = `SELECT CASE WHEN grouping(i.org) = 0 THEN i.org END,
  count(*), count(*) FILTER (WHERE i.acked_at IS NOT NULL),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY date_part('epoch', i.acked_at - i.posted_at) * 1000000)
    FILTER (WHERE i.acked_at >= i.posted_at)
 FROM hunting_incidents i
 WHERE i.org = ANY($1) AND i.posted_at >= $2 AND i.posted_at < $3
 GROUP BY GROUPING SETS ((i.org), ())`

// micros turns a percentile in microseconds into a Duration (0 for NULL).
func micros(us *float64) time.Duration {
	if us == nil {
		return 0
	}
	return time.Duration(math.Round(*us)) * time.Microsecond
}

// periodBounds returns the calendar period of length p containing at, in loc.
func periodBounds(p Period, at time.Time, loc *time.Location) (from, end time.Time) {
	t := at.In(loc)
	y, m, d := t.Date()
	switch p {
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		from = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		return from, time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case PeriodMonth:
		from = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		return from, time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	q := time.Month((int(m)-1)/3*3 + 1)
	from = time.Date(y, q, 1, 0, 0, 0, 0, loc)
	return from, time.Date(y, q+3, 1, 0, 0, 0, 0, loc)
}

// weekStarts are the starts of the week buckets of [from, to): from, then
// every Monday 00:00 after it, in loc.
func weekStarts(from, to time.Time, loc *time.Location) []time.Time {
	out := []time.Time{from}
	_, next := periodBounds(PeriodWeek, from, loc)
	for ; next.Before(to); next = next.AddDate(0, 0, 7) {
		out = append(out, next)
	}
	return out
}

// reportScope resolves the orgs a request covers for v; an org v may not
// see is refused exactly as an unknown org.
func (s *Service) reportScope(v Viewer, org string) ([]string, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if org == "" && !v.all {
		org = v.org
	}
	if org == "" {
		return s.liveConfig().orgIDs(), nil // the orgs as reloaded, as for one org below
	}
	if !v.sees(org) || !s.liveConfig().knows(org) {
		return nil, fmt.Errorf("report: no org %q: %w", org, ErrNotFound)
	}
	return []string{org}, nil
}

// reportWindow is the resolved period of a request.
type reportWindow struct {
	period        Period
	loc           *time.Location
	from, to, end time.Time
	now           time.Time
	weeks         []time.Time
}

func (s *Service) reportWindow(req ReportRequest) (*reportWindow, error) {
	p := req.Period
	if p == "" {
		p = PeriodQuarter
	}
	if _, err := ParsePeriod(string(p)); err != nil {
		return nil, err
	}
	loc := req.Location
	if loc == nil {
		loc = time.UTC
	}
	now := s.cfg.now()
	at := req.At
	if at.IsZero() {
		at = now
	}
	if at.After(now) {
		return nil, fmt.Errorf("report: %s is in the future; a report covers a period up to now: %w", at.Format(time.RFC3339), ErrInvalid)
	}
	w := &reportWindow{period: p, loc: loc, now: now}
	w.from, w.end = periodBounds(p, at, loc)
	w.to = w.end
	if now.Before(w.end) {
		w.to = now.In(loc)
	}
	w.weeks = weekStarts(w.from, w.to, loc)
	return w, nil
}

// Report returns the service report of req's period for the orgs v may
// see (see the comment at the top of report.go for what each figure means).
// An org v may not see is ErrNotFound, worded exactly as an unknown org.
func (s *Service) Report(ctx context.Context, v Viewer, req ReportRequest) (*Report, error) {
	orgs, err := s.reportScope(v, req.Org)
	if err != nil {
		return nil, err
	}
	w, err := s.reportWindow(req)
	if err != nil {
		return nil, err
	}
	rep := &Report{Period: w.period, From: w.from, To: w.to, End: w.end, Complete: !w.to.Before(w.end),
		TimeZone: w.loc.String(), GeneratedAt: w.now, Orgs: []OrgReport{}}
	byOrg := map[string]*OrgReport{}
	for _, o := range orgs {
		rep.Orgs = append(rep.Orgs, newOrgReport(o, w))
	}
	for i := range rep.Orgs {
		byOrg[rep.Orgs[i].Org] = &rep.Orgs[i]
	}
	rep.Total = newOrgReport("", w)
	if len(orgs) == 0 {
		return rep, nil
	}
	err = s.readOnly(ctx, "report", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+reportWorkMem+"'"); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if err := s.reportOpened(ctx, tx, orgs, w, byOrg, &rep.Total); err != nil {
			return err
		}
		if err := s.reportClocks(ctx, tx, orgs, w, byOrg, &rep.Total); err != nil {
			return err
		}
		return s.reportCredits(ctx, tx, orgs, w, byOrg, &rep.Total)
	})
	if err != nil {
		return nil, err
	}
	src := s.cfg.Notifications
	if src == nil {
		src = HuntingNotifications{Pool: s.pool}
	}
	nb, nt, err := src.NotificationFigures(ctx, orgs, w.from, w.to)
	if err != nil {
		return nil, err
	}
	for org, n := range nb {
		if r := byOrg[org]; r != nil {
			r.Notifications = n
		}
	}
	rep.Total.Notifications = nt
	return rep, nil
}

func newOrgReport(org string, w *reportWindow) OrgReport {
	r := OrgReport{Org: org, Opened: OpenedFigures{ByKind: map[SubjectKind]int{}, ByPriority: map[Priority]int{}}}
	for _, k := range SubjectKinds() {
		r.Opened.ByKind[k] = 0
	}
	for _, p := range []Priority{PriorityHigh, PriorityMedium, PriorityLow} {
		r.Opened.ByPriority[p] = 0
	}
	r.Opened.ByWeek = make([]WeekCount, len(w.weeks))
	for i, start := range w.weeks {
		end := w.to
		if i+1 < len(w.weeks) {
			end = w.weeks[i+1]
		}
		r.Opened.ByWeek[i] = WeekCount{Start: start, End: end}
	}
	r.SLA.Breaches = []Breach{}
	return r
}

// reportWorkMem is the report transaction's work_mem: the clocks query
// sorts the cohort (by org, and per percentile), which for a quarter of
// 100,000 cases takes about 16 MB; the default 4 MB would sort on disk.
const reportWorkMem = "32MB"

// readOnly runs fn in a read-only repeatable-read transaction: every query
// of fn sees one snapshot.
func (s *Service) readOnly(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return fn(tx)
}

// openedSQL counts the cohort per org, week bucket, subject kind and
// priority: $1 orgs, $2 from, $3 to, $4 the week starts (width_bucket
// numbers them from 1). Grouped by kind, not a column per kind: a kind added
// later is counted too.
const openedSQL = `SELECT c.org, width_bucket(c.created_at, $4::timestamptz[]), c.subject_kind, c.priority,
  count(*), count(*) FILTER (WHERE c.credit_used)
 FROM cases c
 WHERE c.org = ANY($1) AND c.created_at >= $2 AND c.created_at < $3
 GROUP BY 1, 2, 3, 4`

func (s *Service) reportOpened(ctx context.Context, tx pgx.Tx, orgs []string, w *reportWindow, byOrg map[string]*OrgReport, total *OrgReport) error {
	rows, err := tx.Query(ctx, openedSQL, orgs, w.from, w.to, w.weeks)
	if err != nil {
		return fmt.Errorf("report: cases opened: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var org, kind, prio string
		var bucket, n, credits int
		if err := rows.Scan(&org, &bucket, &kind, &prio, &n, &credits); err != nil {
			return fmt.Errorf("report: cases opened: %w", err)
		}
		for _, r := range []*OrgReport{byOrg[org], total} {
			if r == nil {
				continue
			}
			o := &r.Opened
			o.Total += n
			o.ByKind[SubjectKind(kind)] += n
			o.ByPriority[Priority(prio)] += n
			if bucket >= 1 && bucket <= len(o.ByWeek) {
				o.ByWeek[bucket-1].Count += n
			}
			r.Credits.Used += credits
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report: cases opened: %w", err)
	}
	return nil
}

// clocksSQL measures the cohort's SLA clocks from the clock columns every
// change keeps on the case (sla_elapsed_us, and sla_running_since while the
// clock runs: the running total of the status history SLA derives its
// figures from). The conclusion clock is that total, up to now: it stops at
// the conclusion and during pauses. The first-response clock is the time
// from opening to the first response: a case cannot pause before it, since
// only an expert's answer (the first response itself) pauses a case;
// unanswered, it is the running total. One pass over the cohort's rows,
// no status history read. $1 orgs, $2 from, $3 to, $4 now, $5 the breaches
// listed per group. The total row has a NULL org.
const clocksSQL = `WITH k AS (
 SELECT c.number, c.org, c.priority, c.status, c.created_at,
   CASE WHEN c.assignee_user = '' THEN '' ELSE coalesce(nullif(c.assignee_name, ''), c.assignee_user) END AS assignee,
   c.response_target_us AS rt, c.conclusion_target_us AS ct,
   c.first_response_at IS NOT NULL AS responded,
   c.status IN ('concluded', 'closed') AS concluded,
   CASE WHEN c.first_response_at IS NOT NULL
        THEN round(date_part('epoch', c.first_response_at - c.created_at) * 1000000)::bigint
        ELSE e.run_us END AS resp_us,
   e.run_us AS concl_us,
   c.response_breached_at IS NOT NULL AS resp_flagged,
   c.conclusion_breached_at IS NOT NULL AS concl_flagged
 FROM cases c
 CROSS JOIN LATERAL (SELECT c.sla_elapsed_us
   + coalesce(round(date_part('epoch', greatest($4 - c.sla_running_since, interval '0')) * 1000000)::bigint, 0) AS run_us) e
 WHERE c.org = ANY($1) AND c.created_at >= $2 AND c.created_at < $3
), b AS (
 SELECT k.*, (resp_flagged OR resp_us >= rt) AS rb, (concl_flagged OR concl_us >= ct) AS cb FROM k
)
SELECT CASE WHEN grouping(b.org) = 0 THEN b.org END,
  count(*) FILTER (WHERE responded),
  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY resp_us) FILTER (WHERE responded),
  count(*) FILTER (WHERE concluded),
  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY concl_us) FILTER (WHERE concluded),
  count(*),
  count(*) FILTER (WHERE concluded OR rb OR cb),
  count(*) FILTER (WHERE concluded AND NOT rb AND NOT cb),
  count(*) FILTER (WHERE rb OR cb),
  count(*) FILTER (WHERE status NOT IN ('concluded', 'closed', 'withdrawn') AND NOT rb AND NOT cb),
  count(*) FILTER (WHERE status = 'withdrawn' AND NOT rb AND NOT cb),
  count(*) FILTER (WHERE rb) + count(*) FILTER (WHERE cb),
  coalesce((array_agg(json_build_array(number, org, priority, status, assignee, created_at, rt, resp_us, ct, concl_us, rb, cb)
    ORDER BY number DESC) FILTER (WHERE rb OR cb))[1:$5], '{}')
 FROM b
 GROUP BY GROUPING SETS ((b.org), ())`

func (s *Service) reportClocks(ctx context.Context, tx pgx.Tx, orgs []string, w *reportWindow, byOrg map[string]*OrgReport, total *OrgReport) error {
	rows, err := tx.Query(ctx, clocksSQL, orgs, w.from, w.to, w.now, MaxReportBreaches)
	if err != nil {
		return fmt.Errorf("report: SLA figures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var org *string
		var resp, concl []float64 // median and 90th percentile, NULL when none
		var f OrgReport
		var breached []string
		sla := &f.SLA
		if err := rows.Scan(&org, &f.FirstResponse.Count, &resp, &f.Conclusion.Count, &concl,
			&sla.Cases, &sla.Decided, &sla.Within, &sla.Breached, &sla.Pending, &sla.Excluded, &sla.BreachCount, &breached); err != nil {
			return fmt.Errorf("report: SLA figures: %w", err)
		}
		if len(resp) == 2 {
			f.FirstResponse.Median, f.FirstResponse.P90 = micros(&resp[0]), micros(&resp[1])
		}
		if len(concl) == 2 {
			f.Conclusion.Median, f.Conclusion.P90 = micros(&concl[0]), micros(&concl[1])
		}
		if sla.Decided > 0 {
			sla.Share, sla.HasShare = float64(sla.Within)/float64(sla.Decided), true
		}
		sla.Breaches, err = decodeBreaches(breached, w.loc)
		if err != nil {
			return err
		}
		r := total
		if org != nil {
			if r = byOrg[*org]; r == nil {
				continue
			}
		}
		r.FirstResponse, r.Conclusion, r.SLA = f.FirstResponse, f.Conclusion, f.SLA
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report: SLA figures: %w", err)
	}
	return nil
}

// decodeBreaches reads the breach tuples of clocksSQL, newest case first,
// and cuts the list at MaxReportBreaches.
func decodeBreaches(tuples []string, loc *time.Location) ([]Breach, error) {
	out := []Breach{}
	for _, t := range tuples {
		var (
			number                           int64
			org, assignee                    string
			prio                             Priority
			st                               Status
			opened                           time.Time
			rt, resp, ct, concl              int64
			respBreached, conclusionBreached bool
		)
		if err := json.Unmarshal([]byte(t), &[]any{&number, &org, &prio, &st, &assignee, &opened, &rt, &resp, &ct, &concl,
			&respBreached, &conclusionBreached}); err != nil {
			return nil, fmt.Errorf("report: read breach %s: %w", t, err)
		}
		b := Breach{Ref: FormatRef(number), Org: org, Priority: prio, Status: st, Assignee: assignee, OpenedAt: opened.In(loc)}
		if respBreached {
			b.Clock, b.Target, b.Elapsed = ClockFirstResponse, time.Duration(rt)*time.Microsecond, time.Duration(resp)*time.Microsecond
			out = append(out, b)
		}
		if conclusionBreached {
			b.Clock, b.Target, b.Elapsed = ClockConclusion, time.Duration(ct)*time.Microsecond, time.Duration(concl)*time.Microsecond
			out = append(out, b)
		}
	}
	if len(out) > MaxReportBreaches {
		out = out[:MaxReportBreaches]
	}
	return out, nil
}

// reportCredits reads the orgs' balances now (brought forward as Credits
// does) in one query.
func (s *Service) reportCredits(ctx context.Context, tx pgx.Tx, orgs []string, w *reportWindow, byOrg map[string]*OrgReport, total *OrgReport) error {
	rows, err := tx.Query(ctx, `SELECT org, quarter, balance FROM case_credits WHERE org = ANY($1)`, orgs)
	if err != nil {
		return fmt.Errorf("report: credits: %w", err)
	}
	defer rows.Close()
	stored := map[string]int{}
	q := s.quarterStart(w.now)
	for rows.Next() {
		var org string
		var held time.Time
		var bal int
		if err := rows.Scan(&org, &held, &bal); err != nil {
			return fmt.Errorf("report: credits: %w", err)
		}
		stored[org] = s.rollover(org, s.storedQuarter(held), bal, q)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report: credits: %w", err)
	}
	for _, org := range orgs {
		bal, ok := stored[org]
		if !ok {
			bal = s.liveConfig().perQuarter(org)
		}
		byOrg[org].Credits.Left = bal
		total.Credits.Left += bal
	}
	return nil
}
