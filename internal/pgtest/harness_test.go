package pgtest

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHarnessDirectoryIsChecked: the harness's directory has a predictable
// name under the shared temp dir, so one planted there by someone else (a
// symbolic link, another user's directory) is refused, never used.
func TestHarnessDirectoryIsChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()

	link := filepath.Join(root, "planted-link")
	target := filepath.Join(root, "attacker")
	require.NoError(t, os.Mkdir(target, 0o777))
	require.NoError(t, os.Symlink(target, link))
	_, err := startLocalIn(ctx, link)
	require.ErrorContains(t, err, "symbolic link")
	entries, err := os.ReadDir(target)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing was written through the link")

	if os.Geteuid() != 0 {
		t.Log("another user's directory: only checked as root (it needs chown)")
		return
	}
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(nobody.Uid)
	planted := filepath.Join(root, "planted-dir")
	require.NoError(t, os.Mkdir(planted, 0o777))
	require.NoError(t, os.Chown(planted, uid, -1))
	_, err = startLocalIn(ctx, planted)
	require.ErrorContains(t, err, "belongs to nobody")
	entries, err = os.ReadDir(planted)
	require.NoError(t, err)
	require.Empty(t, entries)
}
