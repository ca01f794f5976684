package casework

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPageSize and MaxPageSize bound List.
const (
	DefaultPageSize = 20
	MaxPageSize     = 200
)

// ListFilter selects cases. Zero fields do not filter.
type ListFilter struct {
	// Org narrows an all-orgs viewer to one org (an org viewer is always
	// narrowed to its own).
	Org string
	// Statuses keeps cases in any of these statuses.
	Statuses []Status
	// Assignee is an assignee's user id ("mine" for an expert).
	Assignee string
	// Requester is a requester's user id ("mine" for a member: the cases
	// they asked); RequesterPlatform, when set, narrows it to one platform.
	Requester         string
	RequesterPlatform string
	// SubjectKind and SubjectID keep the cases about one subject (the id
	// compared without regard to case).
	SubjectKind SubjectKind
	SubjectID   string
	// Breaching keeps open cases with an SLA clock past its warning point or
	// target that is not yet met: the cases that need attention now.
	Breaching bool
	// Limit is the page size (default DefaultPageSize, at most MaxPageSize).
	Limit int
	// PageToken continues a list: ListPage.Next of the previous page, with
	// the same filter (another filter's token is refused). Use it for a
	// More button: the pages continue the order of the first page, at the
	// moment the first page was read, so no case repeats or is skipped
	// because time passed or another case changed in between.
	PageToken string
	// Offset skips that many cases instead (not with PageToken).
	Offset int
	// Priorities keeps cases of any of these priorities.
	Priorities []Priority
}

// ListPage is one page of cases and the total that match.
type ListPage struct {
	// Cases is the page, most urgent first.
	Cases []Case
	// Total is how many cases match in all pages.
	Total int
	// Remaining is how many match after this page ("and N more"); Next is
	// the PageToken of the next page, empty when Remaining is 0.
	Remaining int
	Next      string
}

// listKeys is the urgency order of a case as one comparable tuple: at risk
// first, then the soonest due (none last), then by priority, then the
// oldest. $1 of the format is the current time's parameter.
const listKeys = `NOT (c.at_risk_at IS NOT NULL AND c.at_risk_at <= %[1]s), coalesce(c.due_at, 'infinity'::timestamptz),
 CASE c.priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, c.number`

// List returns the cases v may see that match f, most urgent first, with
// the total number that match.
func (s *Service) List(ctx context.Context, v Viewer, f ListFilter) (*ListPage, error) {
	q, err := s.listQuery(v, f, s.cfg.now())
	if err != nil {
		return nil, err
	}
	page := &ListPage{Cases: []Case{}}
	rows, err := s.pool.Query(ctx, q.page, q.pageArgs...)
	if err != nil {
		return nil, fmt.Errorf("list cases: %w", err)
	}
	defer rows.Close()
	var last *row
	for rows.Next() {
		x, err := s.scanRow(rows, &page.Total, &page.Remaining)
		if err != nil {
			return nil, fmt.Errorf("list cases: %w", err)
		}
		page.Cases = append(page.Cases, x.Case)
		last = x
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cases: %w", err)
	}
	if len(page.Cases) == 0 && (f.Offset > 0 || f.PageToken != "") {
		// Past the last page: the total still says how many there are.
		if err := s.pool.QueryRow(ctx, q.count, q.countArgs...).Scan(&page.Total); err != nil {
			return nil, fmt.Errorf("list: count cases: %w", err)
		}
	}
	if last != nil && page.Remaining > 0 {
		page.Next = q.token.after(last).String()
	}
	return page, nil
}

type listQuery struct {
	count, page         string
	countArgs, pageArgs []any
	token               pageToken
}

// pageToken is the position after a page in the urgency order, with the
// moment the order was read at and the filter it belongs to.
type pageToken struct {
	now    time.Time
	filter uint32
	// The listKeys of the last case of the page.
	notRisk bool
	due     *time.Time
	prio    int
	number  int64
}

func prioRank(p Priority) int {
	switch p {
	case PriorityHigh:
		return 0
	case PriorityMedium:
		return 1
	}
	return 2
}

// after is the token of the page that ends with x.
func (t pageToken) after(x *row) pageToken {
	t.notRisk = !(x.atRiskAt != nil && !x.atRiskAt.After(t.now))
	t.due, t.prio, t.number = x.DueAt, prioRank(x.Priority), x.Number
	return t
}

// String encodes the token: "1.<now>.<filter>.<risk>.<due|->.<prio>.<number>",
// times in microseconds, numbers in base 36 (about 45 characters).
func (t pageToken) String() string {
	due := "-"
	if t.due != nil {
		due = strconv.FormatInt(t.due.UnixMicro(), 36)
	}
	risk := "1"
	if t.notRisk {
		risk = "0"
	}
	return strings.Join([]string{"1", strconv.FormatInt(t.now.UnixMicro(), 36), strconv.FormatUint(uint64(t.filter), 36),
		risk, due, strconv.Itoa(t.prio), strconv.FormatInt(t.number, 36)}, ".")
}

func parsePageToken(s string) (pageToken, error) {
	bad := fmt.Errorf("list: page token %q is not one a list returned: %w", s, ErrInvalid)
	p := strings.Split(s, ".")
	if len(p) != 7 || p[0] != "1" || (p[3] != "0" && p[3] != "1") {
		return pageToken{}, bad
	}
	var t pageToken
	now, err1 := strconv.ParseInt(p[1], 36, 64)
	filter, err2 := strconv.ParseUint(p[2], 36, 32)
	prio, err3 := strconv.Atoi(p[5])
	number, err4 := strconv.ParseInt(p[6], 36, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || prio < 0 || prio > 2 || number <= 0 {
		return pageToken{}, bad
	}
	t.now, t.filter, t.notRisk, t.prio, t.number = time.UnixMicro(now).UTC(), uint32(filter), p[3] == "0", prio, number
	if p[4] != "-" {
		due, err := strconv.ParseInt(p[4], 36, 64)
		if err != nil {
			return pageToken{}, bad
		}
		d := time.UnixMicro(due).UTC()
		t.due = &d
	}
	return t, nil
}

// filterHash identifies what a filter selects (not the page size or the
// viewer: anyone who may see the list may continue it).
func filterHash(f ListFilter) uint32 {
	h := fnv.New32a()
	ss := make([]string, len(f.Statuses))
	for i, st := range f.Statuses {
		ss[i] = string(st)
	}
	slices.Sort(ss)
	fmt.Fprintf(h, "%q|%q|%q|%t", f.Org, strings.Join(ss, ","), f.Assignee, f.Breaching)
	if f.Requester != "" {
		fmt.Fprintf(h, "|r%q|%q", f.Requester, f.RequesterPlatform)
	}
	if f.SubjectKind != "" {
		fmt.Fprintf(h, "|s%q|%q", f.SubjectKind, strings.ToLower(f.SubjectID))
	}
	if len(f.Priorities) > 0 {
		ps := make([]string, len(f.Priorities))
		for i, p := range f.Priorities {
			ps[i] = string(p)
		}
		slices.Sort(ps)
		fmt.Fprintf(h, "|%q", strings.Join(ps, ","))
	}
	return h.Sum32()
}

func (s *Service) listQuery(v Viewer, f ListFilter, now time.Time) (*listQuery, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	if limit > MaxPageSize {
		return nil, fmt.Errorf("list: page size %d is above the limit %d: %w", limit, MaxPageSize, ErrInvalid)
	}
	if f.Offset < 0 {
		return nil, fmt.Errorf("list: offset %d is negative: %w", f.Offset, ErrInvalid)
	}
	tok := pageToken{now: now, filter: filterHash(f)}
	var after *pageToken
	if f.PageToken != "" {
		if f.Offset != 0 {
			return nil, fmt.Errorf("list: use either a page token or an offset, not both: %w", ErrInvalid)
		}
		t, err := parsePageToken(f.PageToken)
		if err != nil {
			return nil, err
		}
		if t.filter != tok.filter {
			return nil, fmt.Errorf("list: the page token belongs to another list (other filter): %w", ErrInvalid)
		}
		// Continue the order of the first page, read at its moment.
		tok.now, now, after = t.now, t.now, &t
	}
	var args []any
	where := []string{viewerClause(v, &args)}
	if f.Org != "" {
		args = append(args, f.Org)
		where = append(where, fmt.Sprintf("c.org = $%d", len(args)))
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			if !st.Valid() {
				return nil, fmt.Errorf("list: status %q is unknown: %w", st, ErrInvalid)
			}
			ss[i] = string(st)
		}
		args = append(args, ss)
		where = append(where, fmt.Sprintf("c.status = ANY($%d)", len(args)))
	}
	if len(f.Priorities) > 0 {
		ps := make([]string, len(f.Priorities))
		for i, p := range f.Priorities {
			if !p.Valid() {
				return nil, fmt.Errorf("list: priority %q is unknown: %w", p, ErrInvalid)
			}
			ps[i] = string(p)
		}
		args = append(args, ps)
		where = append(where, fmt.Sprintf("c.priority = ANY($%d)", len(args)))
	}
	if f.Assignee != "" {
		args = append(args, f.Assignee)
		where = append(where, fmt.Sprintf("c.assignee_user = $%d AND c.assignee_user <> ''", len(args)))
	}
	if f.Requester != "" {
		args = append(args, f.Requester)
		where = append(where, fmt.Sprintf("c.requester_user = $%d", len(args)))
		if f.RequesterPlatform != "" {
			args = append(args, f.RequesterPlatform)
			where = append(where, fmt.Sprintf("c.requester_platform = $%d", len(args)))
		}
	}
	if f.SubjectKind != "" {
		args = append(args, f.SubjectKind, f.SubjectID)
		where = append(where, fmt.Sprintf("c.subject_kind = $%d AND lower(c.subject_id) = lower($%d)", len(args)-1, len(args)))
	}
	if f.Breaching {
		args = append(args, now)
		where = append(where, fmt.Sprintf(breachingCondition, len(args)))
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	q := &listQuery{count: "SELECT count(*) FROM cases c" + cond, countArgs: args, token: tok}
	pa := append([]any(nil), args...)
	arg := func(a any) string {
		pa = append(pa, a)
		return fmt.Sprintf("$%d", len(pa))
	}
	keys := fmt.Sprintf(listKeys, arg(now))
	seek := ""
	if after != nil {
		seek = fmt.Sprintf(" WHERE (k1, k2, k3, number) > (%s::boolean, coalesce(%s::timestamptz, 'infinity'::timestamptz), %s::integer, %s::bigint)",
			arg(after.notRisk), arg(after.due), arg(after.prio), arg(after.number))
	}
	limitArg, offsetArg := arg(limit), arg(f.Offset)
	q.pageArgs = pa
	// One statement, one pass over the matching rows: they are read once
	// (narrow: the sort keys), counted, and the page's case numbers picked;
	// then only the page's cases are read in full. Remaining counts the matches after the page's last case.
	q.page = `WITH m (k1, k2, k3, number) AS MATERIALIZED (SELECT ` + keys + ` FROM cases c` + cond + `),
 p AS (SELECT k1, k2, k3, number FROM m` + seek + ` ORDER BY k1, k2, k3, number LIMIT ` + limitArg + ` OFFSET ` + offsetArg + `)
 SELECT ` + caseCols + `, (SELECT count(*) FROM m),
  (SELECT count(*) FROM m WHERE (m.k1, m.k2, m.k3, m.number) >
    (SELECT l.k1, l.k2, l.k3, l.number FROM p l ORDER BY l.k1 DESC, l.k2 DESC, l.k3 DESC, l.number DESC LIMIT 1))` +
		caseFrom + ` JOIN p ON p.number = c.number ORDER BY p.k1, p.k2, p.k3, p.number`
	return q, nil
}

// breachingCondition is the SQL condition of ListFilter.Breaching, with
// parameter %d the current time; at_risk_at is set only on open cases with an unmet clock,
// and served by the partial index cases_at_risk_idx.
const breachingCondition = "c.at_risk_at <= $%d"
