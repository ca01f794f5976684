package casework_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// TestQueueDigestOnce: replicas whose schedules fire together (and again
// later the same week) queue one digest per week, whose event renders as
// last week's report.
func TestQueueDigestOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ctx := context.Background()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	replicas := []*casework.Service{f.svc, f.another(t), f.another(t)}

	queue := func() int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		queued := 0
		for _, svc := range replicas {
			for range 3 {
				wg.Go(func() {
					ok, err := svc.QueueDigest(ctx, london, nil)
					require.NoError(t, err)
					if ok {
						mu.Lock()
						queued++
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		return queued
	}
	events := func() []casework.DigestEvent {
		rows, err := f.pool.Query(ctx, `SELECT payload FROM outbox WHERE kind = $1 AND stream = $2 ORDER BY id`, casework.EventDigest, casework.DigestStream)
		require.NoError(t, err)
		defer rows.Close()
		var out []casework.DigestEvent
		for rows.Next() {
			var b []byte
			require.NoError(t, rows.Scan(&b))
			var ev casework.DigestEvent
			require.NoError(t, json.Unmarshal(b, &ev))
			out = append(out, ev)
		}
		require.NoError(t, rows.Err())
		return out
	}

	f.clock.Set(time.Date(2026, 2, 9, 8, 0, 0, 0, time.UTC)) // Monday 08:00 in London (GMT)
	f.open(t, "contoso")                                     // this week's case: not in last week's digest
	require.Equal(t, 1, queue(), "nine calls on three replicas, one digest")
	f.clock.Advance(26 * time.Hour) // a late or repeated run the same week
	require.Equal(t, 0, queue())
	evs := events()
	require.Len(t, evs, 1)
	require.True(t, evs[0].From.Equal(time.Date(2026, 2, 2, 0, 0, 0, 0, london)))
	require.True(t, evs[0].End.Equal(time.Date(2026, 2, 9, 0, 0, 0, 0, london)))
	require.Equal(t, "Europe/London", evs[0].TimeZone)

	req, err := evs[0].Request()
	require.NoError(t, err)
	rep, err := f.svc.Report(ctx, casework.AllOrgs(), req)
	require.NoError(t, err)
	require.True(t, rep.Complete)
	require.True(t, rep.From.Equal(evs[0].From))
	require.Zero(t, rep.Total.Opened.Total)

	// The next week: the next digest. In summer London is an hour ahead:
	// the week starts at 23:00 UTC on Sunday.
	f.clock.Set(time.Date(2026, 2, 16, 8, 0, 0, 0, time.UTC))
	require.Equal(t, 1, queue())
	f.clock.Set(time.Date(2026, 7, 6, 7, 0, 0, 0, time.UTC))
	require.Equal(t, 1, queue())
	evs = events()
	require.Len(t, evs, 3)
	require.True(t, evs[1].From.Equal(time.Date(2026, 2, 9, 0, 0, 0, 0, time.UTC)))
	require.True(t, evs[2].From.Equal(time.Date(2026, 6, 28, 23, 0, 0, 0, time.UTC)))

	_, err = f.svc.QueueDigest(ctx, time.Local, nil)
	require.ErrorIs(t, err, casework.ErrInvalid, "the worker must be able to load the zone again")
	_, err = casework.DigestEvent{TimeZone: "Mars/Olympus"}.Request()
	require.Error(t, err)
}

// TestDigestOnceAcrossATimeZoneChange: last week's digest went out in UTC;
// the operator then moves to Europe/Berlin and restarts, and the catch-up
// at start queues last week again, now Berlin's. It is the same week (its
// Monday's date): nothing is queued. The week after goes out in Berlin's
// time. It used to send a second, slightly different digest.
func TestDigestOnceAcrossATimeZoneChange(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ctx := context.Background()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	f.clock.Set(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)) // Monday
	ok, err := f.svc.QueueDigest(ctx, time.UTC, nil)
	require.NoError(t, err)
	require.True(t, ok)

	f.clock.Set(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)) // Tuesday, after the restart
	ok, err = f.svc.QueueDigest(ctx, berlin, nil)
	require.NoError(t, err)
	require.False(t, ok, "the week of 23 November went out already, in UTC")

	f.clock.Set(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	ok, err = f.svc.QueueDigest(ctx, berlin, nil)
	require.NoError(t, err)
	require.True(t, ok, "the week of 30 November, in Berlin's time")
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE kind = $1`, casework.EventDigest).Scan(&n))
	require.Equal(t, 2, n)
}

// TestDigestAfterTheClocksGoForward: the digest run early on the Monday the
// clocks went forward (00:30 BST, still Sunday in UTC) sends the week that
// just ended. A week was taken as 168 hours back from UTC, which landed in
// the week before, already sent: the week of 23 March was never sent.
func TestDigestAfterTheClocksGoForward(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.Orgs = orgsOf("contoso") })
	ctx := context.Background()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	week := func(monday time.Time) time.Time {
		f.clock.Set(monday)
		ok, err := f.svc.QueueDigest(ctx, london, nil)
		require.NoError(t, err)
		require.True(t, ok, "queued at %s", monday.In(london))
		var from time.Time
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT period_start FROM casework_digests ORDER BY queued_at DESC LIMIT 1`).Scan(&from))
		return from
	}
	require.True(t, week(time.Date(2026, 3, 23, 0, 30, 0, 0, london)).Equal(time.Date(2026, 3, 16, 0, 0, 0, 0, london)))
	require.True(t, week(time.Date(2026, 3, 30, 0, 30, 0, 0, london)).Equal(time.Date(2026, 3, 23, 0, 0, 0, 0, london)),
		"the week of 23 March, which the clocks' change ended")
}
