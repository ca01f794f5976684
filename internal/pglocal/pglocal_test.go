package pglocal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pglocal"
)

// requireBinaries fails in CI and skips loudly elsewhere when PostgreSQL is absent.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := pglocal.FindBinDir(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL server binaries are required in CI: %v", err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
}

// shortDir is a short, world-searchable directory (socket paths are capped
// at 107 bytes, and the server may run as another user).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgl")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "pg")
}

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	require.NoError(t, err)
	return s
}

func TestFirstStartThenReuse(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	dir := shortDir(t)

	s1, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "app"}, nil)
	require.NoError(t, err)
	require.False(t, s1.Adopted())
	_ = query(t, s1.URL("app"), "CREATE TABLE kept AS SELECT 'still here'::text AS v")
	require.NoError(t, s1.Stop(ctx))

	start := time.Now()
	s2, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "app"}, nil)
	require.NoError(t, err)
	t.Logf("warm start took %s", time.Since(start))
	defer func() { require.NoError(t, s2.Stop(ctx)) }()
	require.Equal(t, "still here", query(t, s2.URL("app"), "SELECT v FROM kept"))
	require.Equal(t, "", query(t, s2.URL("app"), "SHOW listen_addresses"), "no TCP listener")
}

func TestRunningServerIsAdopted(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	dir := shortDir(t)
	s1, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
	require.NoError(t, err)
	// A crashed owner leaves the server running; the next start reuses it.
	s2, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
	require.NoError(t, err)
	require.True(t, s2.Adopted())
	require.Equal(t, "1", query(t, s2.URL("postgres"), "SELECT '1'"))
	require.NoError(t, s2.Stop(ctx))
	require.NoError(t, s1.Stop(ctx), "stopping an already stopped server is fine")
}

func TestStalePidFile(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	dir := shortDir(t)
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Stop(ctx))

	tests := []struct {
		name string
		pid  int
	}{
		{"dead process", deadPid(t)},
		{"pid reused by another program", os.Getpid()},
	}
	for _, tc := range tests {
		// A crash leaves postmaster.pid naming a process that is not our server.
		pidFile := filepath.Join(s.DataDir(), "postmaster.pid")
		stale := fmt.Sprintf("%d\n%s\n1700000000\n5432\n%s\n\n  5432001  0\nready\n", tc.pid, s.DataDir(), s.SocketDir())
		require.NoError(t, os.WriteFile(pidFile, []byte(stale), 0o600), tc.name)
		s2, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
		require.NoError(t, err, tc.name)
		require.False(t, s2.Adopted(), tc.name)
		require.Equal(t, "1", query(t, s2.URL("postgres"), "SELECT '1'"), tc.name)
		b, err := os.ReadFile(pidFile)
		require.NoError(t, err)
		require.NotEqual(t, strconv.Itoa(tc.pid), strings.SplitN(string(b), "\n", 2)[0], tc.name)
		require.NoError(t, s2.Stop(ctx), tc.name)
	}
}

func TestKilledServerRestarts(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	dir := shortDir(t)
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	// The next start follows at once: the dead server's pid file, socket lock
	// and lingering backends are cleared, not waited out.
	s2, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
	require.NoError(t, err)
	require.False(t, s2.Adopted())
	require.Equal(t, "1", query(t, s2.URL("postgres"), "SELECT '1'"))
	require.NoError(t, s2.Stop(ctx))
}

func TestNoBinaries(t *testing.T) {
	t.Parallel()
	_, err := pglocal.Start(context.Background(), pglocal.Options{Dir: shortDir(t), BinDir: t.TempDir()}, nil)
	require.True(t, errors.Is(err, pglocal.ErrNoServerBinaries))
	require.ErrorContains(t, err, "install the PostgreSQL server package")
	require.ErrorContains(t, err, "set DATABASE_URL")
}

func TestSocketPathTooLong(t *testing.T) {
	t.Parallel()
	_, err := pglocal.Start(context.Background(), pglocal.Options{Dir: "/tmp/" + strings.Repeat("x", 120)}, nil)
	require.ErrorContains(t, err, "too long for a unix socket path")
}

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return p.Pid
}
