package casework

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Expert insight (issue 19): the cases behind a sighting across customers.
// The insight package asks which cases of other orgs are about the same file
// hash, address, URL, actor or incident as a case in front of an expert;
// only experts see the answer, so the viewer is AllOrgs there, and a member's
// viewer sees only its own org's cases here as everywhere.

// CaseRef is a short reference to a case: enough to name it in a sighting
// or a campaign's list.
type CaseRef struct {
	Ref     string
	Org     string
	Subject Subject
	Status  Status
	// CreatedAt is when it was opened, UpdatedAt when it last changed.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// maxAboutSubjects bounds the subjects of one CasesAbout call.
const maxAboutSubjects = 500

// CasesAbout returns the cases v sees whose subject is one of subjects
// (same kind, ids compared without regard to case), changed since since,
// most recently changed first, at most limit. It reads the index on the
// subject id (cases_subject_id_idx), never the whole table.
func (s *Service) CasesAbout(ctx context.Context, v Viewer, subjects []Subject, since time.Time, limit int) ([]CaseRef, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if len(subjects) == 0 || limit <= 0 {
		return nil, nil
	}
	if len(subjects) > maxAboutSubjects {
		subjects = subjects[:maxAboutSubjects]
	}
	ids, pairs := make([]string, 0, len(subjects)), make([]string, 0, len(subjects))
	for _, sub := range subjects {
		if sub.Kind == SubjectNone || sub.ID == "" {
			continue
		}
		id := strings.ToLower(sub.ID)
		ids = append(ids, id)
		pairs = append(pairs, string(sub.Kind)+":"+id)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	args := []any{ids, pairs, since, limit}
	rows, err := s.pool.Query(ctx, `
SELECT c.number, c.org, c.subject_kind, c.subject_id, c.subject_name, c.status, c.created_at, c.updated_at
FROM cases c
WHERE lower(c.subject_id) = ANY($1) AND c.subject_id <> ''
  AND c.subject_kind || ':' || lower(c.subject_id) = ANY($2)
  AND c.updated_at >= $3 AND `+viewerClause(v, &args)+`
ORDER BY c.updated_at DESC, c.number DESC
LIMIT $4`, args...)
	if err != nil {
		return nil, fmt.Errorf("cases about %d subjects: %w", len(ids), err)
	}
	return collectCaseRefs(rows, "cases about")
}

// CaseRefs returns the cases v sees among refs ("EOD-12"), in no
// particular order; references that are not cases, or not v's, are left
// out (the caller cannot tell which).
func (s *Service) CaseRefs(ctx context.Context, v Viewer, refs []string) ([]CaseRef, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	nums := make([]int64, 0, len(refs))
	for _, r := range refs {
		if n, err := ParseRef(r); err == nil {
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 {
		return nil, nil
	}
	args := []any{nums}
	rows, err := s.pool.Query(ctx, `
SELECT c.number, c.org, c.subject_kind, c.subject_id, c.subject_name, c.status, c.created_at, c.updated_at
FROM cases c WHERE c.number = ANY($1) AND `+viewerClause(v, &args), args...)
	if err != nil {
		return nil, fmt.Errorf("read %d cases: %w", len(nums), err)
	}
	return collectCaseRefs(rows, "read cases")
}

// collectCaseRefs reads rows of number, org, subject kind, id and name,
// status, created_at and updated_at into CaseRefs; what names the read in
// errors.
func collectCaseRefs(rows pgx.Rows, what string) ([]CaseRef, error) {
	defer rows.Close()
	var out []CaseRef
	for rows.Next() {
		var r CaseRef
		var n int64
		if err := rows.Scan(&n, &r.Org, &r.Subject.Kind, &r.Subject.ID, &r.Subject.Name, &r.Status, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		r.Ref = FormatRef(n)
		r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
