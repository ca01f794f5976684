package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/config"
)

// TestAutoCloseAfterSetting: cases.auto_close_after is a setting of the
// config file, 7 days by default (issue 14, item 9).
func TestAutoCloseAfterSetting(t *testing.T) {
	t.Parallel()
	c, err := config.Load(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, c.File.Cases.AutoCloseAfter)

	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "cases:\n  auto_close_after: 3d\n")}))
	require.NoError(t, err)
	require.Equal(t, 3*24*time.Hour, c.File.Cases.AutoCloseAfter)

	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "cases:\n  auto_close_after: 10m\n")}))
	require.ErrorContains(t, err, "cases.auto_close_after 10m0s is too short")
}
