package casework

import "time"

// ListSQL exposes List's page query and arguments, for EXPLAIN in tests.
func (s *Service) ListSQL(v Viewer, f ListFilter, now time.Time) (string, []any, error) {
	q, err := s.listQuery(v, f, now)
	if err != nil {
		return "", nil, err
	}
	return q.page, q.pageArgs, nil
}
