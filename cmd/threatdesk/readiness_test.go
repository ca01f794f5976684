package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// TestNotReadyUntilEveryServiceStarted: /readyz said "ready" as soon as the
// database was migrated, while the services were still starting; a caller
// (a load balancer, or the crash test that then killed PostgreSQL) took a
// replica that then failed to start for a ready one.
func TestNotReadyUntilEveryServiceStarted(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	var running atomic.Bool
	check := readiness(pool, &running)
	err := check(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "starting")
	running.Store(true)
	require.NoError(t, check(context.Background()))
}
