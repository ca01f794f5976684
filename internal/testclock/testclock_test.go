package testclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/testclock"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)
	c := testclock.New(t0)
	require.Equal(t, t0, c.Now())
	require.Equal(t, t0, c.Now(), "time stands still")
	c.Advance(90 * time.Minute)
	require.Equal(t, t0.Add(90*time.Minute), c.Now())
	c.Set(t0)
	require.Equal(t, t0, c.Now())

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c.Advance(time.Second)
			_ = c.Now()
		})
	}
	wg.Wait()
	require.Equal(t, t0.Add(8*time.Second), c.Now(), "safe for concurrent use")
}
