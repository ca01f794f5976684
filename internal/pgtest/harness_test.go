package pgtest

import (
	"context"
	"errors"
	"fmt"
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

// TestBrokenMigrationsFailEverywhere: no server on a developer's machine
// skips the database tests (and fails them in CI), but migrations that
// cannot be applied fail them wherever they run. Before, they were
// skipped outside CI, so a gap in the migrations' numbering passed for a
// missing PostgreSQL.
func TestBrokenMigrationsFailEverywhere(t *testing.T) {
	t.Parallel()
	noServer := harness{err: errors.New("connect: connection refused")}
	fail, msg := noServer.unavailable(false)
	require.False(t, fail)
	require.Contains(t, msg, "SKIPPED")
	fail, _ = noServer.unavailable(true)
	require.True(t, fail)

	// Only the migrations' own failures count as broken: a server that
	// refuses CREATE DATABASE is the machine's.
	require.False(t, failed(errors.New("create template: permission denied")).broken)
	broken := failed(fmt.Errorf("build: %w", &migrationError{errors.New("0029 follows 0027")}))
	require.True(t, broken.broken)
	for _, ci := range []bool{false, true} {
		fail, msg := broken.unavailable(ci)
		require.True(t, fail, "CI=%v", ci)
		require.Contains(t, msg, "cannot be built")
	}
	fail, msg = harness{}.unavailable(true)
	require.False(t, fail)
	require.Empty(t, msg)
}
