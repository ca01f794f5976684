package casework_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
