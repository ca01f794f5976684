package hunting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestShortRequestDoesNotFailItsGroup: a group ran to its earliest
// request's deadline; a request with a second and a half left (one that
// waited long in a backed-up intake) failed, with it, a request with a
// minute left (from a review). The group cut short is tried again for the
// requests with time left.
func TestShortRequestDoesNotFailItsGroup(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := t0.Add(-time.Hour)
	req := func(id string, left time.Duration) *groupReq {
		return &groupReq{alerts: []*Alert{{Source: SourceDefender, ID: id, Org: "contoso", Severity: SeverityLow, Created: at}},
			idx: []int{0}, out: make([]ItemResult, 1), done: make(chan error, 1), lead: make(chan struct{}, 1), deadline: time.Now().Add(left)}
	}
	// Another replica's group holds the org's lock for 2 s.
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, lockOrgSQL, "contoso")
	require.NoError(t, err)
	released := make(chan struct{})
	go func() { time.Sleep(2 * time.Second); _ = tx.Rollback(f.ctx); close(released) }()
	defer func() { <-released }() // before the connection goes back (deferred first)

	long, short := req("long", time.Minute), req("short", 1500*time.Millisecond)
	q := &orgQueue{pending: []*groupReq{long, short}, busy: true}
	f.svc.leadGroup(f.ctx, "contoso", q)
	require.NoError(t, <-long.done, "a minute left: stored once the lock is free")
	require.Error(t, <-short.done, "its time ran out")
	require.Equal(t, StatusAccepted, long.out[0].Status)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}
