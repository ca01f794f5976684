package casework

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Search finds cases for "/experts cases search <words | hash | host |
// @user | EOD-n>". The text's form decides what is searched (ParseSearch):
//
//   - EOD-n (or #n): that case.
//   - @user (also the chat mention forms <@U123>, <@U123|name>, <@!123>):
//     cases the user asked or holds.
//   - an MD5, SHA-1 or SHA-256 hash: cases whose subject is that hash, or
//     whose question or messages mention it.
//   - one other word without spaces (a host or device name, an alert or
//     incident id): cases whose subject id or name is that word (any
//     case), or whose question or messages contain it.
//   - anything else: full-text search (PostgreSQL, 'english': stemmed, stop
//     words dropped; websearch syntax: "a phrase", -word, or) over the
//     question, the conclusion and the messages. A case matches when its
//     question and conclusion, or one of its messages, has all the words.
//
// Messages are searched as the viewer may read them: internal expert notes
// only with SearchQuery.Internal, which only an all-orgs viewer may set.

// Search limits.
const (
	// DefaultSearchPage and MaxSearchPage bound SearchQuery.Limit.
	DefaultSearchPage = 10
	MaxSearchPage     = 100
	// MaxSearchRunes bounds the search text.
	MaxSearchRunes = 200
)

// SearchKind is what a search text was read as.
type SearchKind string

// Search kinds.
const (
	SearchRef     SearchKind = "ref"
	SearchUser    SearchKind = "user"
	SearchHash    SearchKind = "hash"
	SearchSubject SearchKind = "subject"
	SearchText    SearchKind = "text"
)

var (
	searchRef  = regexp.MustCompile(`^(?i:eod-|#)(\d{1,18})$`)
	searchUser = regexp.MustCompile(`^(?:<@!?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\|[^>]*)?>|@([A-Za-z0-9][A-Za-z0-9._-]*))$`)
	searchHash = regexp.MustCompile(`^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)
)

// ParseSearch reads a search text: its kind and the term to look for (the
// case number for SearchRef, the user id for SearchUser, the lower-case
// hash, the word, or the trimmed text).
func ParseSearch(text string) (SearchKind, string, error) {
	t := strings.TrimSpace(text)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		return "", "", fmt.Errorf("search: say what to look for: words, a hash, a host name, @user or a case reference: %w", ErrInvalid)
	case n > MaxSearchRunes:
		return "", "", fmt.Errorf("search: the text is %d characters long; the limit is %d: %w", n, MaxSearchRunes, ErrInvalid)
	}
	if m := searchRef.FindStringSubmatch(t); m != nil {
		return SearchRef, m[1], nil
	}
	if m := searchUser.FindStringSubmatch(t); m != nil {
		return SearchUser, m[1] + m[2], nil
	}
	if searchHash.MatchString(t) {
		return SearchHash, strings.ToLower(t), nil
	}
	if !strings.ContainsFunc(t, func(r rune) bool { return r == ' ' || r == '\t' || r == '"' || r == '\n' }) {
		return SearchSubject, t, nil
	}
	return SearchText, t, nil
}

// SearchQuery is a search request.
type SearchQuery struct {
	// Text is what the user typed after "search".
	Text string
	// Org narrows an all-orgs viewer to one org (an org viewer is always
	// narrowed to its own).
	Org string
	// Internal also searches internal expert notes: for experts only; an
	// org viewer asking for it is refused (ErrInvalid).
	Internal bool
	// Limit is the page size (default DefaultSearchPage, at most MaxSearchPage).
	Limit int
	// Cursor continues a search: SearchPage.Next of the previous page.
	Cursor string
}

// SearchPage is one page of a search, newest case first.
type SearchPage struct {
	// Kind is how the text was read; Term what was looked for.
	Kind SearchKind
	Term string
	// Cases is the page.
	Cases []Case
	// More is true when more cases match; Next is then the Cursor of the
	// next page (short and opaque: it fits in a button's value). Pages are
	// keyed on the case number, so a case opened meanwhile neither repeats
	// nor hides a case on later pages.
	More bool
	Next string
}

// Search returns the cases v may see that match q, newest first.
func (s *Service) Search(ctx context.Context, v Viewer, q SearchQuery) (*SearchPage, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if q.Internal && !v.all {
		return nil, fmt.Errorf("search: internal notes are for experts only: %w", ErrInvalid)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultSearchPage
	}
	if limit > MaxSearchPage {
		return nil, fmt.Errorf("search: page size %d is above the limit %d: %w", limit, MaxSearchPage, ErrInvalid)
	}
	var before int64
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 36, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("search: cursor %q is not one this search returned: %w", q.Cursor, ErrInvalid)
		}
		before = n
	}
	kind, term, err := ParseSearch(q.Text)
	if err != nil {
		return nil, err
	}
	page := &SearchPage{Kind: kind, Term: term, Cases: []Case{}}
	var args []any
	where := []string{viewerClause(v, &args)}
	if q.Org != "" {
		args = append(args, q.Org)
		where = append(where, fmt.Sprintf("c.org = $%d", len(args)))
	}
	if before > 0 {
		args = append(args, before)
		where = append(where, fmt.Sprintf("c.number < $%d", len(args)))
	}
	arg := func(a any) string {
		args = append(args, a)
		return fmt.Sprintf("$%d", len(args))
	}
	internal := " AND NOT m.internal"
	if q.Internal {
		internal = ""
	}
	// textHits: cases whose question or conclusion, or a message the viewer
	// may read, matches the tsquery in parameter p. Two GIN index scans.
	textHits := func(p string) string {
		return `SELECT number FROM cases WHERE search_tsv @@ ` + p + `
  UNION SELECT m.case_number FROM case_messages m WHERE m.body_tsv @@ ` + p + internal
	}
	var from string
	switch kind {
	case SearchRef:
		n, err := strconv.ParseInt(term, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("search: %q is not a case reference like EOD-12: %w", q.Text, ErrInvalid)
		}
		where = append(where, "c.number = "+arg(n))
	case SearchUser:
		p := arg(term)
		where = append(where, "(c.requester_user = "+p+" OR (c.assignee_user = "+p+" AND c.assignee_user <> ''))")
	case SearchHash, SearchSubject:
		p, tq := arg(strings.ToLower(term)), arg(term)
		from = ` JOIN (SELECT number FROM cases WHERE lower(subject_id) = ` + p + ` AND subject_id <> ''
  UNION SELECT number FROM cases WHERE lower(subject_name) = ` + p + ` AND subject_name <> ''
  UNION ` + textHits("plainto_tsquery('english', "+tq+")") + `) h ON h.number = c.number`
	case SearchText:
		from = ` JOIN (` + textHits("websearch_to_tsquery('english', "+arg(term)+")") + `) h ON h.number = c.number`
	}
	sql := "SELECT " + caseCols + caseFrom + from + " WHERE " + strings.Join(where, " AND ") +
		" ORDER BY c.number DESC LIMIT " + arg(limit+1)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search cases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		x, err := s.scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("search cases: %w", err)
		}
		page.Cases = append(page.Cases, x.Case)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search cases: %w", err)
	}
	if len(page.Cases) > limit {
		page.Cases = page.Cases[:limit]
		page.More = true
		page.Next = strconv.FormatInt(page.Cases[limit-1].Number, 36)
	}
	if len(page.Cases) == 0 && kind == SearchText {
		if err := s.checkWords(ctx, term); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// checkWords refuses a text that has nothing to search for once stop words
// are dropped ("the", "is this"), which would otherwise find nothing silently.
func (s *Service) checkWords(ctx context.Context, text string) error {
	var nodes int
	err := s.pool.QueryRow(ctx, `SELECT numnode(websearch_to_tsquery('english', $1))`, text).Scan(&nodes)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && nodes == 0) {
		return fmt.Errorf("search: %q has only common words; add a more specific one: %w", text, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("search: read the words: %w", err)
	}
	return nil
}
