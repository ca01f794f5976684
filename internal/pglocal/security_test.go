package pglocal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
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

// serverUser is the uid and gid the server runs as: the postgres user when
// the tests run as root, else the test's own user.
func serverUser(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid()
	}
	u, err := user.Lookup("postgres")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	require.NoError(t, err)
	return st.Mode()
}

func owner(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Lstat(path)
	require.NoError(t, err)
	return int(st.Sys().(*syscall.Stat_t).Uid)
}

// connectErr tries a connection without the password file.
func connectErr(dir, role, db string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres:///%s?host=%s&user=%s&sslmode=disable", db, dir, role))
	if err == nil {
		conn.Close(ctx)
	}
	return err
}

// TestEveryConnectionNeedsThePassword: the cluster is private to the server's
// user, its passwords are in a 0600 file, and a connection without the
// password is refused (before, initdb --auth=trust made any local user who
// reached the socket a superuser).
func TestEveryConnectionNeedsThePassword(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	dir := shortDir(t)
	var logs bytes.Buffer
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "app", AppRole: "app_user"},
		slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	uid, _ := serverUser(t)

	require.Equal(t, os.ModeDir|0o700, mode(t, dir))
	require.Equal(t, uid, owner(t, dir))
	require.Equal(t, os.FileMode(0o600), mode(t, s.PassFile()))
	require.Equal(t, uid, owner(t, s.PassFile()))
	hba, err := os.ReadFile(filepath.Join(s.DataDir(), "pg_hba.conf"))
	require.NoError(t, err)
	require.NotContains(t, string(hba), "trust")

	require.ErrorContains(t, connectErr(dir, "postgres", "postgres"), "password")
	require.ErrorContains(t, connectErr(dir, "app_user", "app"), "password")
	require.Equal(t, "", query(t, s.URL("app"), "SHOW listen_addresses"), "no TCP listener")
	require.Equal(t, "0700", query(t, s.URL("app"), "SHOW unix_socket_permissions"))

	// The application's role is no superuser, and owns its database.
	require.Equal(t, "app_user off", query(t, s.AppURL(), "SELECT current_user || ' ' || current_setting('is_superuser')"))
	_ = query(t, s.AppURL(), "CREATE TABLE mine AS SELECT 1 AS v")
	_, err = pgxExec(s.AppURL(), "COPY (SELECT 1) TO PROGRAM 'true'")
	require.ErrorContains(t, err, "must be superuser", "the app role cannot run programs as the server")

	pw, err := os.ReadFile(s.PassFile())
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(pw)), "\n")[1:] {
		secret := line[strings.LastIndexByte(line, ':')+1:]
		require.Len(t, secret, 48)
		require.NotContains(t, logs.String(), secret, "no password is logged")
		require.NotContains(t, s.URL("app")+s.AppURL(), secret, "URLs name the password file, not the password")
	}
}

// TestDirectoryChecks: the server's directory is made or verified on an open
// descriptor: a planted symbolic link or another user's directory is
// refused, a directory of the right owner that others could enter is made
// private.
func TestDirectoryChecks(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()

	t.Run("symbolic link", func(t *testing.T) {
		t.Parallel()
		dir := shortDir(t)
		target := filepath.Join(filepath.Dir(dir), "elsewhere")
		require.NoError(t, os.Mkdir(target, 0o755))
		require.NoError(t, os.Symlink(target, dir))
		_, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
		require.ErrorContains(t, err, "symbolic link")
		require.Equal(t, os.ModeDir|0o755, mode(t, target), "the link's target is untouched")
		require.Equal(t, os.Geteuid(), owner(t, target), "the link's target is not given away")
	})
	t.Run("another user's directory", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			t.Skip("SKIPPED: needs root to make a directory that belongs to another user")
		}
		nobody, err := user.Lookup("nobody")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(nobody.Uid)
		dir := shortDir(t)
		require.NoError(t, os.Mkdir(dir, 0o755))
		require.NoError(t, os.Chown(dir, uid, -1))
		_, err = pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
		require.ErrorContains(t, err, "belongs to nobody")
		require.Equal(t, uid, owner(t, dir))
		require.Equal(t, os.ModeDir|0o755, mode(t, dir))
	})
	t.Run("own directory open to others", func(t *testing.T) {
		t.Parallel()
		dir := shortDir(t)
		require.NoError(t, os.Mkdir(dir, 0o755))
		var logs bytes.Buffer
		s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, slog.New(slog.NewTextHandler(&logs, nil)))
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Stop(ctx)) }()
		require.Equal(t, os.ModeDir|0o700, mode(t, dir))
		require.Contains(t, logs.String(), "now private")
	})
	t.Run("parent anyone can write to", func(t *testing.T) {
		t.Parallel()
		dir := shortDir(t)
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o777))
		_, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
		require.ErrorContains(t, err, "every user may write to")
		_, err = os.Lstat(dir)
		require.True(t, os.IsNotExist(err), "nothing is created there")
	})
}

// TestChildrenGetAMinimalEnvironment: the server's environment holds none of
// the service's (tokens were readable in /proc/PID/environ). Not parallel:
// it sets an environment variable.
func TestChildrenGetAMinimalEnvironment(t *testing.T) {
	requireBinaries(t)
	const marker = "xoxb-must-not-reach-postgres"
	t.Setenv("SLACK_BOT_TOKEN", marker)
	ctx := context.Background()
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: shortDir(t)}, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", postmasterPID(s)))
	if os.IsNotExist(err) {
		t.Skip("SKIPPED: no /proc to read the server's environment from")
	}
	require.NoError(t, err)
	require.NotContains(t, string(environ), marker)
	allowed := map[string]bool{"PATH": true, "LC_ALL": true, "LANG": true, "TZ": true, "PGDATA": true,
		"PG_GRANDPARENT_PID": true, "PGSYSCONFDIR": true, "PGLOCALEDIR": true, "PWD": true, "SHLVL": true, "_": true}
	for _, kv := range strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00") {
		name, _, _ := strings.Cut(kv, "=")
		require.True(t, allowed[name], "unexpected variable %q in the server's environment", name)
	}
}

// TestTrustClusterIsConverted: a cluster made by the previous version
// (initdb --auth=trust, no password file), stopped or still running, keeps
// its data and is converted in place: passwords set, pg_hba.conf rewritten,
// the database handed to the application's role.
func TestTrustClusterIsConverted(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	for _, running := range []bool{false, true} {
		t.Run(fmt.Sprintf("running=%v", running), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := shortDir(t)
			oldCluster(t, dir, running)

			var logs bytes.Buffer
			s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "threatdesk", AppRole: "threatdesk"},
				slog.New(slog.NewTextHandler(&logs, nil)))
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Stop(ctx)) }()
			require.Equal(t, running, s.Adopted())
			require.Contains(t, logs.String(), "now requires a password")

			require.Eventually(t, func() bool {
				return connectErr(dir, "postgres", "threatdesk") != nil
			}, 10*time.Second, 20*time.Millisecond, "trust is gone once the server reloaded pg_hba.conf")
			require.Equal(t, "kept", query(t, s.AppURL(), "SELECT v FROM old_table"))
			_ = query(t, s.AppURL(), "INSERT INTO old_table (v) VALUES ('new') RETURNING v")
			_ = query(t, s.AppURL(), "ALTER TABLE old_table ADD COLUMN n int")
			require.Equal(t, "7", query(t, s.AppURL(), "SELECT old_fn()::text"))
			require.Equal(t, "threatdesk", query(t, s.URL("threatdesk"),
				"SELECT string_agg(DISTINCT pg_get_userbyid(relowner)::text, ',') FROM pg_class WHERE relnamespace = 'public'::regnamespace"))

			pw, err := os.ReadFile(s.PassFile())
			require.NoError(t, err)
			for _, line := range strings.Split(strings.TrimSpace(string(pw)), "\n")[1:] {
				require.NotContains(t, logs.String(), line[strings.LastIndexByte(line, ':')+1:])
			}
		})
	}
}

// oldCluster makes what the previous version made in dir: initdb with trust,
// a database with a table, a sequence and a function, left running or not.
func oldCluster(t *testing.T, dir string, running bool) {
	t.Helper()
	bin, err := pglocal.FindBinDir("")
	require.NoError(t, err)
	uid, gid := serverUser(t)
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, uid, gid))
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
	run("pg_ctl", "start", "-D", data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-o", "-c listen_addresses= -k "+dir)
	trustURL := func(db string) string {
		return fmt.Sprintf("postgres:///%s?host=%s&user=postgres&sslmode=disable", db, dir)
	}
	_, err = pgxExec(trustURL("postgres"), "CREATE DATABASE threatdesk")
	require.NoError(t, err)
	_, err = pgxExec(trustURL("threatdesk"), `CREATE TABLE old_table (id bigserial PRIMARY KEY, v text);
		INSERT INTO old_table (v) VALUES ('kept');
		CREATE FUNCTION old_fn() RETURNS int LANGUAGE sql AS 'SELECT 7'`)
	require.NoError(t, err)
	if !running {
		run("pg_ctl", "stop", "-D", data, "-m", "fast", "-w")
	}
}

func pgxExec(url, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql)
	return tag.String(), err
}
