package casework

import (
	"context"
	"fmt"
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
	// Assignee is an assignee's user id ("mine").
	Assignee string
	// Breaching keeps open cases with an SLA clock past its warning point or
	// target that is not yet met: the cases that need attention now.
	Breaching bool
	// Limit is the page size (default DefaultPageSize, at most MaxPageSize);
	// Offset skips that many cases.
	Limit  int
	Offset int
}

// ListPage is one page of cases and the total that match.
type ListPage struct {
	// Cases is the page, most urgent first.
	Cases []Case
	// Total is how many cases match in all pages.
	Total int
}

// urgencyOrder: cases at risk first, then the soonest due, then by priority,
// then the oldest. %s is the current time's parameter.
const urgencyOrder = ` ORDER BY (c.at_risk_at IS NOT NULL AND c.at_risk_at <= %s) DESC, c.due_at ASC NULLS LAST,
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
	for rows.Next() {
		x, err := s.scanRow(rows, &page.Total)
		if err != nil {
			return nil, fmt.Errorf("list cases: %w", err)
		}
		page.Cases = append(page.Cases, x.Case)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cases: %w", err)
	}
	if len(page.Cases) == 0 && f.Offset > 0 {
		// Past the last page: the total still says how many there are.
		if err := s.pool.QueryRow(ctx, q.count, q.countArgs...).Scan(&page.Total); err != nil {
			return nil, fmt.Errorf("list: count cases: %w", err)
		}
	}
	return page, nil
}

type listQuery struct {
	count, page         string
	countArgs, pageArgs []any
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
	if f.Assignee != "" {
		args = append(args, f.Assignee)
		where = append(where, fmt.Sprintf("c.assignee_user = $%d AND c.assignee_user <> ''", len(args)))
	}
	if f.Breaching {
		args = append(args, now)
		where = append(where, fmt.Sprintf(breachingCondition, len(args)))
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	q := &listQuery{count: "SELECT count(*) FROM cases c" + cond, countArgs: args}
	q.pageArgs = append(append([]any(nil), args...), now, limit, f.Offset)
	n := len(q.pageArgs)
	// One statement, one pass over the matching rows: they are read once
	// (narrow: the sort keys), counted, and the page's case numbers picked;
	// then only the page's cases are read in full.
	order := fmt.Sprintf(urgencyOrder, fmt.Sprintf("$%d", n-2))
	q.page = "WITH m AS MATERIALIZED (SELECT c.number, c.at_risk_at, c.due_at, c.priority FROM cases c" + cond + `),
 p AS (SELECT c.number FROM m c` + order + fmt.Sprintf(" LIMIT $%d OFFSET $%d)", n-1, n) + `
 SELECT ` + caseCols + `, (SELECT count(*) FROM m)` + caseFrom + ` WHERE c.number IN (SELECT number FROM p)` + order
	return q, nil
}

// breachingCondition is the SQL condition of ListFilter.Breaching, with
// parameter %d the current time; at_risk_at is set only on open cases with an unmet clock,
// and served by the partial index cases_at_risk_idx.
const breachingCondition = "c.at_risk_at <= $%d"
