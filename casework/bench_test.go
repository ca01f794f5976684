package casework_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// seedCases inserts n cases in one INSERT ... SELECT generate_series, as of
// now: 2% open and past their warning point (breaching), 8% open and on
// time, the rest closed a month ago. Orgs: 47; assignees: 200.
func seedCases(tb testing.TB, f *fixture, n int) {
	tb.Helper()
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `
INSERT INTO cases (org, open_key, subject_kind, subject_id, category, question, priority,
  requester_platform, requester_workspace, requester_user,
  assignee_platform, assignee_workspace, assignee_user, status, credit_used,
  created_at, updated_at, status_at, taken_at, first_response_at, concluded_at, closed_at,
  response_target_us, conclusion_target_us, sla_elapsed_us, sla_running_since,
  response_warned_at, conclusion_warned_at, due_at, at_risk_at, next_sla_at)
SELECT 'org-' || (i % 47), 'seed-' || i, 'alert', 'alert-' || i, 'alert_inquiry', 'seeded question',
  (ARRAY['high', 'medium', 'low'])[1 + i % 3],
  'slack', 'T1', 'U-req-' || (i % 500),
  'slack', 'TDESK', 'U-exp-' || (i % 200), s.status, true,
  s.created, s.created, s.created, s.created, s.created + interval '10 minutes', s.concluded, s.concluded,
  3600000000, 86400000000, 0, s.running,
  s.warned, s.warned, s.due, s.risk, s.next
FROM generate_series(1, $2::int) AS i
CROSS JOIN LATERAL (
  SELECT
    CASE WHEN i % 50 = 0 THEN 'in_progress' WHEN i % 10 = 1 THEN 'in_progress' ELSE 'closed' END AS status,
    CASE WHEN i % 50 = 0 THEN $1::timestamptz - interval '20 hours' - (i % 997) * interval '1 second'
         WHEN i % 10 = 1 THEN $1::timestamptz - interval '1 hour' - (i % 997) * interval '1 second'
         ELSE $1::timestamptz - interval '30 days' END AS created
) AS b
CROSS JOIN LATERAL (
  SELECT b.status, b.created,
    CASE WHEN b.status = 'closed' THEN b.created + interval '2 days' END AS concluded,
    CASE WHEN b.status <> 'closed' THEN b.created END AS running,
    CASE WHEN i % 50 = 0 THEN b.created + interval '18 hours' END AS warned,
    CASE WHEN b.status <> 'closed' THEN b.created + interval '24 hours' END AS due,
    CASE WHEN b.status <> 'closed' THEN b.created + interval '18 hours' END AS risk,
    CASE WHEN i % 50 = 0 THEN b.created + interval '24 hours'
         WHEN b.status <> 'closed' THEN b.created + interval '18 hours' END AS next
) AS s`, f.clock.Now(), n)
	require.NoError(tb, err)
	_, err = f.pool.Exec(ctx, `ANALYZE cases`)
	require.NoError(tb, err)
}

// TestBreachingQueryUsesIndex shows the plan of the breaching list over
// 100,000 cases: an index scan of cases_at_risk_idx, not a table scan.
func TestBreachingQueryUsesIndex(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("seeds 100,000 cases")
	}
	f := setup(t)
	seedCases(t, f, 100_000)
	ctx := context.Background()
	for _, v := range []casework.Viewer{casework.AllOrgs(), casework.OrgViewer("org-0")} {
		sql, args, err := f.svc.ListSQL(v, casework.ListFilter{Breaching: true, Limit: 50}, f.clock.Now())
		require.NoError(t, err)
		rows, err := f.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, args...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		t.Logf("EXPLAIN breaching list (viewer all=%v):\n%s", v.All(), plan)
		require.Contains(t, plan, "cases_at_risk_idx")
		require.NotContains(t, plan, "Seq Scan on cases")
	}
	page, err := f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{Breaching: true, Limit: 50})
	require.NoError(t, err)
	require.Equal(t, 2000, page.Total)
	require.Len(t, page.Cases, 50)
	for i := 1; i < len(page.Cases); i++ {
		require.False(t, page.Cases[i].DueAt.Before(*page.Cases[i-1].DueAt), "most urgent first")
	}
}

// BenchmarkCaseLifecycle: open + take + 10 messages + conclude, as one
// analyst and one expert would, each step its own transaction.
func BenchmarkCaseLifecycle(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		org := fmt.Sprintf("org-%d", i/10) // 10 credits per org
		req := f.openReq(org)
		req.Requester = requester(org, "U-analyst").Person
		c, _, err := f.svc.Open(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.svc.Take(ctx, c.Ref, expert("U-expert")); err != nil {
			b.Fatal(err)
		}
		for m := range 10 {
			a, side := expert("U-expert"), casework.SideExpert
			if m%2 == 1 {
				a, side = requester(org, "U-analyst"), casework.SideRequester
			}
			if _, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: a, Side: side, Text: "message text",
				Chat: casework.ChatRef{Platform: "slack", Channel: "C1", Message: fmt.Sprintf("%d.%d", i, m)}}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded,
			Actor: expert("U-expert"), Summary: "benign"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
}

// BenchmarkListBreaching lists the first page of breaching cases among
// 100,000 (2,000 breaching), for all orgs and for one org.
func BenchmarkListBreaching(b *testing.B) {
	f := setup(b)
	seedCases(b, f, 100_000)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		v    casework.Viewer
	}{{"all-orgs", casework.AllOrgs()}, {"one-org", casework.OrgViewer("org-0")}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				page, err := f.svc.List(ctx, bc.v, casework.ListFilter{Breaching: true, Limit: 50})
				if err != nil || len(page.Cases) == 0 {
					b.Fatal(err, page)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/list")
		})
	}
}

// BenchmarkVerifyAll verifies every timeline of 300 cases of 7 entries each
// (open, credit, five messages), as the scheduled check does.
func BenchmarkVerifyAll(b *testing.B) {
	f := setup(b, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 1000, 1000 })
	ctx := context.Background()
	const cases, messages = 300, 5
	for range cases {
		c := f.open(b, "contoso")
		for m := range messages {
			if _, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: requester("contoso", "U-analyst"),
				Text: fmt.Sprintf("message %d", m)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		res, err := f.svc.VerifyAll(ctx)
		if err != nil || res.Checked != cases || len(res.Broken) != 0 {
			b.Fatalf("verify: %v, %+v", err, res)
		}
	}
	b.ReportMetric(float64(b.N*cases)/b.Elapsed().Seconds(), "cases/s")
	b.ReportMetric(float64(b.N*cases*(2+messages))/b.Elapsed().Seconds(), "entries/s")
}

// seedReport inserts n cases spread over the current quarter so far (1
// January to t0), in orgs org-0 .. org-9, with their status history, in
// one set-based statement (with the clock columns as casework keeps them);
// and n/5 incident notifications. A tenth are
// withdrawn at once; a quarter wait on the requester for up to a day after
// the first response; every case is taken and answered 5 min to 3 h after
// opening and concluded after 1 h to 2 days of clock; cases whose
// conclusion would be after t0 are still open (or new); half the concluded
// cases are closed a day later.
func seedReport(tb testing.TB, f *fixture, n int) {
	tb.Helper()
	ctx := context.Background()
	now := f.clock.Now()
	from := time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := f.pool.Exec(ctx, `
WITH src AS (
  SELECT i, b0, b1, b2, b3, b4, b5, status, withdrawn, (ARRAY['high', 'medium', 'low'])[1 + i % 3] AS prio,
    -- The clock columns, as casework keeps them: running time so far, and
    -- since when it runs.
    CASE status WHEN 'withdrawn' THEN interval '3 minutes'
                WHEN 'new' THEN interval '0'
                WHEN 'more_info_needed' THEN b2 - b0
                WHEN 'in_progress' THEN CASE WHEN b3 <= $2 THEN b2 - b0 ELSE interval '0' END
                ELSE b4 - b0 - pause END AS elapsed,
    CASE status WHEN 'new' THEN b0
                WHEN 'in_progress' THEN CASE WHEN b3 <= $2 THEN b3 ELSE b0 END END AS running
  FROM (
  SELECT *,
    CASE WHEN withdrawn THEN 'withdrawn'
         WHEN b5 IS NOT NULL AND b5 <= $2 THEN 'closed'
         WHEN b4 <= $2 THEN 'concluded'
         WHEN b1 > $2 THEN 'new'
         WHEN b2 <= $2 AND $2 < b3 THEN 'more_info_needed'
         ELSE 'in_progress' END AS status
  FROM (
    SELECT i, w.withdrawn, t.b0, t.pause,
      t.b0 + t.take AS b1,
      CASE WHEN t.pause > interval '0' THEN t.b0 + t.take + interval '10 minutes' END AS b2,
      CASE WHEN t.pause > interval '0' THEN t.b0 + t.take + interval '10 minutes' + t.pause END AS b3,
      t.b0 + t.take + t.pause + t.work AS b4,
      CASE WHEN i % 2 = 0 THEN t.b0 + t.take + t.pause + t.work + interval '1 day' END AS b5
    FROM generate_series(0, $3::int - 1) AS i
    CROSS JOIN LATERAL (SELECT i % 10 = 9 AS withdrawn) w
    CROSS JOIN LATERAL (SELECT
      $1::timestamptz + ($2::timestamptz - $1::timestamptz) * (i::float8 / $3) AS b0,
      interval '5 minutes' + (i * 7 % 180) * interval '1 minute' AS take,
      CASE WHEN i % 4 = 0 THEN (30 + i * 13 % 1440) * interval '1 minute' ELSE interval '0' END AS pause,
      interval '1 hour' + (i * 11 % 2880) * interval '1 minute' AS work) t
  ) x
  ) y
),
ins AS (
  INSERT INTO cases (org, open_key, subject_kind, subject_id, subject_name, category, question, priority,
    requester_platform, requester_workspace, requester_user, assignee_platform, assignee_workspace, assignee_user,
    status, credit_used, created_at, updated_at, status_at, taken_at, first_response_at, concluded_at, closed_at,
    response_target_us, conclusion_target_us, sla_elapsed_us, sla_running_since)
  SELECT 'org-' || (i % 10), 'bench-' || i, (ARRAY['none', 'alert', 'device', 'file', 'incident'])[1 + i % 5], 'subject-' || i,
    'host-' || (i % 5000), 'alert_inquiry', 'seeded question ' || i || ' about lateral movement', prio,
    'slack', 'T1', 'U-req-' || (i % 500),
    CASE WHEN status NOT IN ('new', 'withdrawn') THEN 'slack' ELSE '' END,
    CASE WHEN status NOT IN ('new', 'withdrawn') THEN 'TDESK' ELSE '' END,
    CASE WHEN status NOT IN ('new', 'withdrawn') THEN 'U-exp-' || (i % 20) ELSE '' END,
    status, NOT withdrawn, b0, b0, b0,
    CASE WHEN status NOT IN ('new', 'withdrawn') THEN b1 END,
    CASE WHEN status NOT IN ('new', 'withdrawn') THEN b1 END,
    CASE WHEN status IN ('concluded', 'closed') THEN b4 END,
    CASE WHEN status = 'closed' THEN b5 WHEN withdrawn THEN b0 + interval '3 minutes' END,
    CASE prio WHEN 'high' THEN 3600000000 WHEN 'medium' THEN 14400000000 ELSE 86400000000 END,
    CASE prio WHEN 'high' THEN 86400000000 WHEN 'medium' THEN 172800000000 ELSE 432000000000 END,
    (extract(epoch FROM elapsed) * 1000000)::bigint, running
  FROM src
  RETURNING number, open_key
)
INSERT INTO case_status_periods (case_number, seq, status, started_at, ended_at)
SELECT ins.number, row_number() OVER (PARTITION BY ins.number ORDER BY p.started_at, p.ord), p.status, p.started_at,
  CASE WHEN p.ended_at > $2 THEN NULL ELSE p.ended_at END
FROM ins JOIN src ON ins.open_key = 'bench-' || src.i
CROSS JOIN LATERAL (VALUES
  (1, 'new', src.b0, CASE WHEN src.withdrawn THEN src.b0 + interval '3 minutes' ELSE src.b1 END),
  (2, CASE WHEN src.withdrawn THEN 'withdrawn' ELSE 'in_progress' END,
      CASE WHEN src.withdrawn THEN src.b0 + interval '3 minutes' ELSE src.b1 END,
      CASE WHEN src.withdrawn THEN NULL ELSE coalesce(src.b2, src.b4) END),
  (3, CASE WHEN src.b2 IS NOT NULL AND NOT src.withdrawn THEN 'more_info_needed' END, src.b2, src.b3),
  (4, CASE WHEN src.b2 IS NOT NULL AND NOT src.withdrawn THEN 'in_progress' END, src.b3, src.b4),
  (5, CASE WHEN NOT src.withdrawn THEN 'concluded' END, src.b4, src.b5),
  (6, CASE WHEN NOT src.withdrawn AND src.b5 IS NOT NULL THEN 'closed' END, src.b5, NULL)
) AS p (ord, status, started_at, ended_at)
WHERE p.status IS NOT NULL AND p.started_at <= $2`, from, now, n)
	require.NoError(tb, err)
	_, err = f.pool.Exec(ctx, `
INSERT INTO hunting_incidents (org, created_at, updated_at, posted_at, acked_at, acked_by)
SELECT 'org-' || (i % 10), t.posted, t.posted, t.posted,
  CASE WHEN i % 10 < 7 THEN t.posted + (1 + i % 240) * interval '1 minute' END,
  CASE WHEN i % 10 < 7 THEN 'U-ack' END
FROM generate_series(1, $3::int) AS i
CROSS JOIN LATERAL (SELECT $1::timestamptz + ($2::timestamptz - $1::timestamptz) * (i::float8 / $3) - interval '5 hours' AS posted) t`,
		from, now, n/5)
	require.NoError(tb, err)
	_, err = f.pool.Exec(ctx, `ANALYZE cases; ANALYZE case_status_periods; ANALYZE hunting_incidents`)
	require.NoError(tb, err)
}

// BenchmarkReport makes the service report over 100,000 cases (400,000
// status periods) in 10 orgs, all opened this quarter, and 20,000
// notifications: the quarter for every org (the worst case: every case is
// in it), the quarter for one org, and this week for every org. It logs
// the plan of the heaviest query (clocks and SLA) once.
func BenchmarkReport(b *testing.B) {
	orgs := make([]string, 10)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%d", i)
	}
	f := setup(b, func(c *casework.Config) { c.Orgs = orgsOf(orgs...) })
	seedReport(b, f, 100_000)
	ctx := context.Background()

	now := f.clock.Now()
	from := time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	tx, err := f.pool.Begin(ctx)
	require.NoError(b, err)
	_, err = tx.Exec(ctx, "SET LOCAL work_mem = '"+casework.ReportWorkMem+"'") // as Report does
	require.NoError(b, err)
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+casework.ReportClocksSQL, orgs, from, now, now, casework.MaxReportBreaches)
	require.NoError(b, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(b, err)
	require.NoError(b, tx.Rollback(ctx))
	b.Logf("EXPLAIN ANALYZE of the clocks and SLA query, every org, the quarter:\n%s", strings.Join(lines, "\n"))

	for _, bc := range []struct {
		name string
		v    casework.Viewer
		req  casework.ReportRequest
		min  int
	}{
		{"all-orgs-quarter", casework.AllOrgs(), casework.ReportRequest{}, 100_000},
		{"one-org-quarter", casework.OrgViewer("org-3"), casework.ReportRequest{}, 10_000},
		{"all-orgs-week", casework.AllOrgs(), casework.ReportRequest{Period: casework.PeriodWeek}, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rep, err := f.svc.Report(ctx, bc.v, bc.req)
				if err != nil || rep.Total.Opened.Total < bc.min {
					b.Fatal(err, rep.Total.Opened.Total)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/report")
		})
	}
}
