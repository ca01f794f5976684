package casework_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// t0 is mid-quarter (Q1 2026) so that credit tests know when quarters turn.
var t0 = time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)

type fixture struct {
	svc   *casework.Service
	pool  *pgxpool.Pool
	clock *testclock.Clock
	cfg   casework.Config
	keys  atomic.Int64
}

// setup returns a Service on a fresh database with a fake clock at t0.
func setup(t testing.TB, mods ...func(*casework.Config)) *fixture {
	t.Helper()
	pool := pgtest.New(t)
	clock := testclock.New(t0)
	cfg := casework.Config{Now: clock.Now, Key: testKey(t)}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := casework.New(pool, cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return &fixture{svc: svc, pool: pool, clock: clock, cfg: cfg}
}

// another returns a second Service (a restarted or second replica) on the
// same database and clock.
func (f *fixture) another(t testing.TB) *casework.Service {
	t.Helper()
	svc, err := casework.New(f.pool, f.cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return svc
}

func requester(org, user string) casework.Actor {
	return casework.Actor{Role: casework.RoleRequester, Org: org,
		Person: casework.Person{Platform: "slack", Workspace: "T" + org, UserID: user, DisplayName: user}}
}

func expert(user string) casework.Actor {
	return casework.Actor{Role: casework.RoleExpert,
		Person: casework.Person{Platform: "slack", Workspace: "TDESK", UserID: user, DisplayName: user}}
}

func manager(user string) casework.Actor {
	return casework.Actor{Role: casework.RoleManager,
		Person: casework.Person{Platform: "slack", Workspace: "TDESK", UserID: user, DisplayName: user}}
}

func actorFor(role casework.Role, org string) casework.Actor {
	switch role {
	case casework.RoleRequester:
		return requester(org, "U-analyst")
	case casework.RoleExpert:
		return expert("U-expert")
	case casework.RoleManager:
		return manager("U-manager")
	}
	return casework.System()
}

func (f *fixture) openReq(org string) casework.OpenRequest {
	return casework.OpenRequest{
		Key: fmt.Sprintf("key-%d", f.keys.Add(1)), Org: org,
		Subject:   casework.Subject{Kind: casework.SubjectAlert, ID: "da637", Name: "Suspicious PowerShell", Severity: "high"},
		Question:  "Is this lateral movement?",
		Requester: requester(org, "U-analyst").Person,
	}
}

func (f *fixture) open(t testing.TB, org string) *casework.Case {
	t.Helper()
	c, created, err := f.svc.Open(context.Background(), f.openReq(org))
	require.NoError(t, err)
	require.True(t, created)
	return c
}

// into drives a fresh case of org into status st through the public API.
func (f *fixture) into(t testing.TB, org string, st casework.Status) *casework.Case {
	t.Helper()
	ctx := context.Background()
	c := f.open(t, org)
	move := func(to casework.Status, a casework.Actor) {
		t.Helper()
		var err error
		c, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: to, Actor: a, Summary: "benign admin script"})
		require.NoError(t, err)
	}
	switch st {
	case casework.StatusNew:
		return c
	case casework.StatusWithdrawn:
		move(casework.StatusWithdrawn, requester(org, "U-analyst"))
		return c
	}
	c, err := f.svc.Take(ctx, c.Ref, expert("U-expert"))
	require.NoError(t, err)
	switch st {
	case casework.StatusInProgress:
	case casework.StatusClosed:
		move(casework.StatusConcluded, expert("U-expert"))
		move(casework.StatusClosed, requester(org, "U-analyst"))
	default:
		move(st, expert("U-expert"))
	}
	require.Equal(t, st, c.Status)
	return c
}

// get reads a case as experts see it.
func (f *fixture) get(t testing.TB, ref string) *casework.Case {
	t.Helper()
	c, err := f.svc.Get(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	return c
}

// events counts the outbox events of a case by kind.
func (f *fixture) events(t testing.TB, ref string) map[string]int {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT kind, count(*) FROM outbox WHERE stream = $1 GROUP BY kind`, casework.Stream(ref))
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		out[k] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// testKey is a fresh master key.
func testKey(t testing.TB) *secrets.Key {
	t.Helper()
	k, err := secrets.Generate()
	require.NoError(t, err)
	return k
}

// pgtestPoolStub is a pool that never connects, for constructor tests.
func pgtestPoolStub(t testing.TB) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func ptr[T any](v T) *T { return &v }

// orgsOf configures orgs by id, each at the default allowance.
func orgsOf(ids ...string) []casework.Org {
	out := make([]casework.Org, len(ids))
	for i, id := range ids {
		out[i] = casework.Org{ID: id}
	}
	return out
}
