package cronlock_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/cronlock"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

func TestOneHolderAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	a := cronlock.New(pool, "test")
	b := cronlock.New(pool, "test")

	la, err := a.Lock(ctx, "sla-sweep")
	require.NoError(t, err)
	_, err = b.Lock(ctx, "sla-sweep")
	require.ErrorIs(t, err, cronlock.ErrHeld)

	other, err := b.Lock(ctx, "hunting-sweep")
	require.NoError(t, err, "a different job's lock is independent")
	require.NoError(t, other.Unlock(ctx))

	require.NoError(t, la.Unlock(ctx))
	lb, err := b.Lock(ctx, "sla-sweep")
	require.NoError(t, err, "free again after unlock")
	require.NoError(t, lb.Unlock(ctx))
}
