package casework

import (
	"context"
	"time"
)

// ListSQL exposes List's page query and arguments, for EXPLAIN in tests.
func (s *Service) ListSQL(v Viewer, f ListFilter, now time.Time) (string, []any, error) {
	q, err := s.listQuery(v, f, now)
	if err != nil {
		return "", nil, err
	}
	return q.page, q.pageArgs, nil
}

// LegacyHash is the unkeyed SHA-256 of an entry, as written before the
// chain was keyed (and as an attacker without the key would rehash).
func LegacyHash(ref string, e Entry) ([]byte, error) { return legacyHash(ref, e) }

// SealLegacy keys the legacy timelines as Start does.
func (s *Service) SealLegacy(ctx context.Context) (int, error) { return s.sealLegacy(ctx) }

// Report's queries, for EXPLAIN in benchmarks: cases opened, clocks and SLA
// (the heaviest), and notifications.
const (
	ReportOpenedSQL        = openedSQL
	ReportClocksSQL        = clocksSQL
	ReportNotificationsSQL = notificationSQL
	ReportWorkMem          = reportWorkMem
)

// RemindDueSQL is the reminder sweep's query of the cases due a reminder
// ($1 the cutoff, $2 at most SweepBatch), for EXPLAIN in tests.
var RemindDueSQL = remindEscalation.find

// SweepBatch is how many due cases a sweep asks for at a time.
const SweepBatch = sweepBatch
