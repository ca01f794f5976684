package slack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUninstalledWorkspaceIsReadAgain: a replica cached a workspace as
// uninstalled for 30 s; when it was installed again through another
// replica, this one marked every delivery to it dead meanwhile. Only
// active workspaces are cached now.
func TestUninstalledWorkspaceIsReadAgain(t *testing.T) {
	t.Parallel()
	var w workspaces
	w.put(&workspace{in: Installation{Team: "T0GONE", Active: false}, at: time.Now()})
	_, ok := w.get("T0GONE")
	require.False(t, ok, "an uninstalled workspace is read from the database again")
	w.put(&workspace{in: Installation{Team: "T0LIVE", Active: true}, at: time.Now()})
	_, ok = w.get("T0LIVE")
	require.True(t, ok)
	w.put(&workspace{in: Installation{Team: "T0OLD", Active: true}, at: time.Now().Add(-workspaceTTL - time.Second)})
	_, ok = w.get("T0OLD")
	require.False(t, ok, "past its TTL")
}
