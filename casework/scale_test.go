package casework_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// The queries here run often (every sweep, every keystroke of
// autocomplete, every report): each test stores tens of thousands of rows
// the query is not asked about, with autovacuum off so that the statistics
// are the ones the test takes, and checks from EXPLAIN ANALYZE that the
// query reads about as many pages as the rows it is asked for, not the
// table.

// bulkCases is the start of an INSERT of synthetic cases; the SELECT that
// follows gives, in order: org, open_key, status, created_at, status_at,
// reminded_at. $1 is t0 in every one.
const bulkCases = `INSERT INTO cases (org, open_key, status, created_at, status_at, reminded_at,
  updated_at, subject_kind, subject_id, category, question, priority, requester_platform, requester_workspace,
  requester_user, credit_used, response_target_us, conclusion_target_us)
SELECT c.org, c.open_key, c.status, c.created_at, c.status_at, c.reminded_at,
  c.status_at, 'alert', 'alert-' || c.open_key, 'alert_inquiry',
  'Is this lateral movement from ws-017 to the file server? ' || c.open_key, 'medium', 'slack', 'T1',
  'U-req', true, 3600000000, 86400000000
FROM (`

// TestRemindSweepReadsOnlyDueCases: the reminder sweep, once a minute,
// reads the cases it may still remind, not every case that was reminded
// and never answered. Before, cases_remind_due held every waiting case:
// each sweep read all 20,000 of them here, from the table, to find that
// each had had its reminder.
func TestRemindSweepReadsOnlyDueCases(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.RemindAfter = 24 * time.Hour })
	ctx := context.Background()
	pgtest.NoAutovacuum(t, f.pool, "cases")
	// 20,000 waits abandoned over the past months, each reminded a day in;
	// then six due now (one reminded in an earlier wait, before its
	// status_at) and three not yet.
	_, err := f.pool.Exec(ctx, bulkCases+`
  SELECT 'org-' || (g % 47) AS org, 'stale-' || g AS open_key,
    CASE WHEN g % 2 = 0 THEN 'more_info_needed' ELSE 'file_sample_needed' END AS status,
    s.at - interval '1 hour' AS created_at, s.at AS status_at, s.at + interval '1 day' AS reminded_at
  FROM generate_series(1, 20000) g
  CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '200 days' + g * interval '12 minutes' AS at) s
  UNION ALL
  SELECT 'org-1', 'due-' || g, 'more_info_needed', s.at - interval '1 hour', s.at,
    CASE WHEN g = 6 THEN s.at - interval '2 days' END
  FROM generate_series(1, 6) g
  CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '25 hours' + g * interval '1 minute' AS at) s
  UNION ALL
  SELECT 'org-2', 'later-' || g, 'file_sample_needed', $1::timestamptz - interval '2 hours', $1::timestamptz - interval '1 hour', NULL
  FROM generate_series(1, 3) g
) c`, t0)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, "ANALYZE cases")
	require.NoError(t, err)

	cutoff := t0.Add(-24 * time.Hour)
	rows, err := f.pool.Query(ctx, "SELECT open_key FROM cases WHERE number IN ("+casework.RemindDueSQL+")", cutoff, casework.SweepBatch)
	require.NoError(t, err)
	due, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"due-1", "due-2", "due-3", "due-4", "due-5", "due-6"}, due)
	res, err := f.svc.SweepSLA(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, res.Reminded)

	// The next sweep: nothing is due.
	pages, plan := pgtest.PlanPages(t, f.pool, casework.RemindDueSQL, cutoff, casework.SweepBatch)
	// 2 pages read. Before, 1,062: the index entries and rows of the 20,006
	// cases reminded in their wait, and that grows with every wait nobody
	// answers.
	require.Less(t, pages, 50, "pages read by a sweep with no reminder due: %s", plan)
}

// TestOpenCaseListReadsOnlyOpenCases: an expert's list of open cases (all
// orgs: autocomplete on every keystroke, /take, the web tracker) reads the
// open cases, not every case ever closed. Before, no index led to a status
// without an org: each list read the whole of cases_org_status_idx, once
// per status asked.
func TestOpenCaseListReadsOnlyOpenCases(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	pgtest.NoAutovacuum(t, f.pool, "cases")
	// A year of 60,000 closed cases, then 30 open ones from the last days,
	// 6 in each open status.
	_, err := f.pool.Exec(ctx, bulkCases+`
  SELECT 'org-' || (g % 47) AS org, 'closed-' || g AS open_key, 'closed' AS status,
    s.at AS created_at, s.at + interval '2 days' AS status_at, NULL::timestamptz AS reminded_at
  FROM generate_series(1, 60000) g
  CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '365 days' + g * interval '8 minutes' AS at) s
  UNION ALL
  SELECT 'org-' || (g % 47), 'open-' || g,
    (ARRAY['new', 'in_progress', 'more_info_needed', 'file_sample_needed', 'needs_more_time'])[1 + g % 5],
    s.at, s.at, NULL
  FROM generate_series(1, 30) g
  CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '3 days' + g * interval '2 hours' AS at) s
) c`, t0)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, "ANALYZE cases")
	require.NoError(t, err)

	for _, tc := range []struct {
		name     string
		statuses []casework.Status
		want     int
	}{
		{"open", casework.OpenStatuses(), 30},
		{"new", []casework.Status{casework.StatusNew}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lf := casework.ListFilter{Statuses: tc.statuses, Limit: 200}
			page, err := f.svc.List(ctx, casework.AllOrgs(), lf)
			require.NoError(t, err)
			require.Equal(t, tc.want, page.Total)
			require.Len(t, page.Cases, tc.want)
			sql, args, err := f.svc.ListSQL(casework.AllOrgs(), lf, f.clock.Now())
			require.NoError(t, err)
			pages, plan := pgtest.PlanPages(t, f.pool, sql, args...)
			// About 4 pages per case listed: the status index, the case, and
			// the case again by number for the page (open: 110 pages, new:
			// 22). Before, the whole of cases_org_status_idx was read for
			// each status asked (open: 341 pages, new: 69), and that grows
			// with every case ever closed.
			require.Less(t, pages, 5*tc.want+25, "pages read to list the %s cases of all orgs: %s", tc.name, plan)
		})
	}
}

// TestNotificationFiguresReadOnlyThePeriod: the report's and the weekly
// digest's notification figures read the incidents posted in the period,
// not every incident the orgs ever had. Before, they read all of the
// orgs' incidents and dropped those posted at other times.
func TestNotificationFiguresReadOnlyThePeriod(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	pgtest.NoAutovacuum(t, f.pool, "hunting_incidents")
	// Two years of two orgs' incidents before the week, oldest first as
	// intake stores them, one in ten never posted; then the week's four
	// cards: org-0 three (acknowledged after 10 and 30 minutes, one not),
	// org-1 one, not acknowledged.
	_, err := f.pool.Exec(ctx, `
INSERT INTO hunting_incidents (org, created_at, updated_at, posted_at, acked_at, acked_by)
SELECT 'org-' || (g % 2), s.at, s.at, CASE WHEN g % 10 <> 0 THEN s.at END,
  CASE WHEN g % 10 <> 0 AND g % 3 = 0 THEN s.at + interval '20 minutes' END,
  CASE WHEN g % 10 <> 0 AND g % 3 = 0 THEN 'U-ack' END
FROM generate_series(1, 30000) g
CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '731 days' + g * interval '35 minutes' AS at) s
UNION ALL
SELECT org, at, at, at, at + ack, CASE WHEN ack IS NOT NULL THEN 'U-ack' END
FROM (VALUES ('org-0', $2::timestamptz + interval '1 hour', interval '10 minutes'),
             ('org-0', $2::timestamptz + interval '2 hours', interval '30 minutes'),
             ('org-0', $2::timestamptz + interval '3 hours', NULL),
             ('org-1', $2::timestamptz + interval '4 hours', NULL)) AS w (org, at, ack)`,
		t0, time.Date(2026, 2, 9, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, "ANALYZE hunting_incidents")
	require.NoError(t, err)

	orgs := []string{"org-0", "org-1"}
	from, to := time.Date(2026, 2, 9, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 16, 0, 0, 0, 0, time.UTC)
	lsn := pgtest.AsyncCommit(t, f.pool)
	per, total, err := casework.HuntingNotifications{Pool: f.pool}.NotificationFigures(ctx, orgs, from, to)
	require.NoError(t, err)
	// Hunting commits without waiting for the disk: the figures wait.
	require.True(t, pgtest.Flushed(t, f.pool, lsn), "the WAL is flushed before the figures are shown")
	require.Equal(t, casework.NotificationFigures{Posted: 3, Acknowledged: 2, MedianToAck: 20 * time.Minute}, per["org-0"])
	require.Equal(t, casework.NotificationFigures{Posted: 1}, per["org-1"])
	require.Equal(t, casework.NotificationFigures{Posted: 4, Acknowledged: 2, MedianToAck: 20 * time.Minute}, total)

	pages, plan := pgtest.PlanPages(t, f.pool, casework.ReportNotificationsSQL, orgs, from, to)
	// 5 pages read for the week's 4 cards. Before, 1,765: the whole table
	// (30,000 rows read and dropped), and that grows with every incident
	// stored.
	require.Less(t, pages, 100, "pages read for a week's notification figures: %s", plan)
}
