package casework_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// TestAutoCloseAfterIsASetting: a concluded case closes by itself after
// the configured cases.auto_close_after, not a hard-coded week.
func TestAutoCloseAfterIsASetting(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.AutoCloseAfter = 2 * 24 * time.Hour })
	c := f.into(t, "contoso", casework.StatusConcluded)
	f.clock.Advance(24 * time.Hour)
	sweep(t, f.svc)
	require.Equal(t, casework.StatusConcluded, f.get(t, c.Ref).Status, "one day is not yet two")
	f.clock.Advance(24*time.Hour + time.Minute)
	require.Equal(t, 1, sweep(t, f.svc).Closed)
	require.Equal(t, casework.StatusClosed, f.get(t, c.Ref).Status)
	require.ErrorContains(t, casework.Config{AutoCloseAfter: time.Minute}.WithDefaults().Validate(), "cases.auto_close_after 1m0s is too short")
}
