package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

func appendEvents(t *testing.T, pool *pgxpool.Pool, events ...outbox.Event) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, e := range events {
			id, err := outbox.Append(ctx, tx, e)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	require.NoError(t, err)
	return ids
}

func TestAppendRequiresKindAndStream(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = outbox.Append(ctx, tx, outbox.Event{Kind: "case.opened"})
	require.ErrorContains(t, err, "needs a kind and a stream")
	_, err = outbox.Append(ctx, tx, outbox.Event{Kind: "x", Stream: "s", Payload: func() {}})
	require.ErrorContains(t, err, "marshal x payload")
}

func TestRolledBackEventsDoNotExist(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = outbox.Append(ctx, tx, outbox.Event{Kind: "case.opened", Stream: "case:EOD-1", Payload: map[string]string{"ref": "EOD-1"}})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	rows, err := outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, rows)
}

func TestStreamOrderAndParallelStreams(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	ids := appendEvents(t, pool,
		outbox.Event{Kind: "a1", Stream: "case:A", Payload: 1},
		outbox.Event{Kind: "b1", Stream: "case:B", Payload: 1},
		outbox.Event{Kind: "a2", Stream: "case:A", Payload: 2},
	)
	rows, err := outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, rows, 2, "one row per stream: a2 waits for a1")
	require.Equal(t, []string{"a1", "b1"}, []string{rows[0].Kind, rows[1].Kind})
	require.Equal(t, 1, rows[0].Attempts)
	require.Equal(t, ids[0], rows[0].ID)
	a1 := rows[0]

	rows, err = outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, rows, "a2 is still behind a1, which is leased")

	require.NoError(t, outbox.Delivered(ctx, pool, a1))
	rows, err = outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, "a2", rows[0].Kind)
	require.JSONEq(t, "2", string(rows[0].Payload))
}

func TestLeaseExpiryRedeliversAfterACrash(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	appendEvents(t, pool, outbox.Event{Kind: "k", Stream: "s", Payload: nil})
	rows, err := outbox.Claim(ctx, pool, 1, 200*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	// The worker dies here without settling the row.
	require.Eventually(t, func() bool {
		again, err := outbox.Claim(ctx, pool, 1, time.Minute)
		require.NoError(t, err)
		return len(again) == 1 && again[0].ID == rows[0].ID && again[0].Attempts == 2
	}, 5*time.Second, 50*time.Millisecond)
}

func TestRetryAndDead(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	ids := appendEvents(t, pool,
		outbox.Event{Kind: "k1", Stream: "s1", Payload: nil},
		outbox.Event{Kind: "k2", Stream: "s2", Payload: nil},
		outbox.Event{Kind: "k3", Stream: "s2", Payload: nil},
	)
	claimed, err := outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	require.Equal(t, []int64{ids[0], ids[1]}, []int64{claimed[0].ID, claimed[1].ID})
	require.NoError(t, outbox.Retry(ctx, pool, claimed[0], time.Hour, "503 from the platform"))
	require.NoError(t, outbox.Dead(ctx, pool, claimed[1], "channel_not_found: invite the app"))

	rows, err := outbox.Claim(ctx, pool, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, rows, 1, "k1 waits an hour; k2 is dead and no longer holds up its stream")
	require.Equal(t, "k3", rows[0].Kind)

	st, err := outbox.ReadStats(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, 2, st.Pending)
	require.Equal(t, 1, st.Dead)
	require.Greater(t, st.OldestAge, time.Duration(0))
}

func TestConcurrentClaimersNeverShareARow(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	const n = 300
	events := make([]outbox.Event, n)
	for i := range events {
		events[i] = outbox.Event{Kind: "k", Stream: fmt.Sprintf("case:EOD-%d", i), Payload: i}
	}
	appendEvents(t, pool, events...)

	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				rows, err := outbox.Claim(ctx, pool, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(rows) == 0 {
					return
				}
				for _, r := range rows {
					mu.Lock()
					seen[r.ID]++
					mu.Unlock()
					if err := outbox.Delivered(ctx, pool, r); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "row %d claimed %d times", id, c)
	}
}

// TestReleaseGivesRowsBack: rows a stopping worker has not begun are
// claimable at once, not after their lease.
func TestReleaseGivesRowsBack(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	appendEvents(t, pool, outbox.Event{Kind: "k", Stream: "a"}, outbox.Event{Kind: "k", Stream: "b"})
	rows, err := outbox.Claim(ctx, pool, 2, time.Hour)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.NoError(t, outbox.Release(ctx, pool, rows[1:]))
	again, err := outbox.Claim(ctx, pool, 2, time.Hour)
	require.NoError(t, err)
	require.Len(t, again, 1, "the row in flight keeps its lease")
	require.Equal(t, rows[1].ID, again[0].ID)
	require.NoError(t, outbox.Release(ctx, pool, nil))
}

// TestSettleAfterTheLeaseRanOutLeavesTheNewClaim: a worker that settles a
// row after its lease ran out and another worker claimed it neither frees
// nor ends the new claim (freed, a third worker sent the row while the
// second still was: two posts).
func TestSettleAfterTheLeaseRanOutLeavesTheNewClaim(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	appendEvents(t, pool, outbox.Event{Kind: "k", Stream: "s"})
	first, err := outbox.Claim(ctx, pool, 1, 100*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, first, 1)
	var second []outbox.Row
	require.Eventually(t, func() bool {
		second, err = outbox.Claim(ctx, pool, 1, time.Hour)
		require.NoError(t, err)
		return len(second) == 1
	}, 5*time.Second, 20*time.Millisecond, "claimed again once the lease ran out")

	// The stalled first worker wakes up and settles its claim.
	for name, settle := range map[string]func() error{
		"retry":     func() error { return outbox.Retry(ctx, pool, first[0], 0, "slow") },
		"delivered": func() error { return outbox.Delivered(ctx, pool, first[0]) },
		"dead":      func() error { return outbox.Dead(ctx, pool, first[0], "gave up") },
		"release":   func() error { return outbox.Release(ctx, pool, first) },
	} {
		err := settle()
		if name != "release" {
			require.ErrorIs(t, err, outbox.ErrClaimLost, name)
		} else {
			require.NoError(t, err)
		}
		third, err := outbox.Claim(ctx, pool, 1, time.Hour)
		require.NoError(t, err)
		require.Empty(t, third, "%s freed the second worker's claim", name)
	}
	st, err := outbox.ReadStats(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, st.Dead)
	require.NoError(t, outbox.Delivered(ctx, pool, second[0]), "the second worker settles it")
}
