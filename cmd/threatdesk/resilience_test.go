package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pglocal"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Child-process modes of the test binary (see TestMain).
const (
	childMainEnv = "THREATDESK_TEST_RUN_MAIN" // run main() with the test binary's arguments
	childPID1Env = "THREATDESK_TEST_PID1"     // first mount a /proc of the new PID namespace
)

func TestMain(m *testing.M) {
	if os.Getenv(childMainEnv) == "1" {
		if os.Getenv(childPID1Env) == "1" {
			// The child is PID 1 of a new PID and mount namespace, as in a
			// container: give it a /proc that shows that namespace.
			if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
				fmt.Fprintln(os.Stderr, "make mounts private:", err)
				os.Exit(3)
			}
			if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NOEXEC|syscall.MS_NODEV, ""); err != nil {
				fmt.Fprintln(os.Stderr, "mount /proc:", err)
				os.Exit(3)
			}
		}
		os.Args = append([]string{"threatdesk"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

// requirePostgres fails in CI and skips loudly elsewhere without the server binaries.
func requirePostgres(t *testing.T) {
	t.Helper()
	if _, err := pglocal.FindBinDir(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL server binaries are required in CI: %v", err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
}

// dataDir is a short, world-searchable directory (socket paths are capped
// at 107 bytes, and the server may run as the postgres user).
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tdr")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

// slackSetup is the fake Slack, the config file and the environment that
// points a service at both.
type slackSetup struct {
	fake  *slackfake.Server
	env   map[string]string
	base  string
	token string
}

func newSlackSetup(t *testing.T) slackSetup {
	t.Helper()
	fake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{
			{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"},
		},
		Users: []slackfake.User{
			{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"},
			{ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"},
		},
	})
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(e2eConfig), 0o600))
	const token = "resilience-ingest-token-0123456789"
	opts := fake.Options()
	addr := freeAddr(t)
	return slackSetup{
		fake: fake,
		env: map[string]string{
			"THREATDESK_HTTP_ADDR":    addr,
			"THREATDESK_CONFIG":       cfgPath,
			"THREATDESK_INGEST_TOKEN": token,
			"THREATDESK_LOG_FORMAT":   "text",
			"SLACK_BOT_TOKEN":         opts.BotToken,
			"SLACK_APP_TOKEN":         opts.AppToken,
			"SLACK_API_URL":           fake.APIURL(),
		},
		base:  "http://" + addr,
		token: token,
	}
}

// postExpertAlert pushes an alert from the expert hunting service, which is
// notified at once: one outbox event, one card in the org's channel.
func (s slackSetup) postExpertAlert(t *testing.T, id string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/mde-alert-sample.json")
	require.NoError(t, err)
	var alert map[string]any
	require.NoError(t, json.Unmarshal(raw, &alert))
	alert["id"] = id
	alert["detectionSource"] = "ThreatExperts"
	alert["severity"] = "High"
	body, err := json.Marshal(alert)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/alerts", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

func countWith(ms []slackfake.Message, substr string) int {
	n := 0
	for _, m := range ms {
		if strings.Contains(m.Text, substr) || strings.Contains(string(m.Blocks), substr) {
			n++
		}
	}
	return n
}

func (s slackSetup) cards() int {
	n := 0
	for _, m := range s.fake.Messages("C0CONTOSOSOC") {
		if strings.Contains(string(m.Blocks), "Consult a threat expert") {
			n++
		}
	}
	return n
}

// outboxState counts the outbox rows not yet delivered, those of them
// claimed by a worker right now, and those already tried.
type outboxState struct{ pending, leased, tried int }

func readOutbox(ctx context.Context, url string) (outboxState, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return outboxState{}, err
	}
	defer conn.Close(ctx)
	var s outboxState
	err = conn.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL),
		count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL AND locked_until > now()),
		count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL AND attempts > 0)
		FROM outbox`).Scan(&s.pending, &s.leased, &s.tried)
	return s, err
}

// makePending makes the next notification fail once with a 429 (Retry-After
// 3s), posts an alert and waits until its outbox row is pending: tried, due
// again later, and claimed by no worker (so that no lease, which outlives a
// crash, delays it afterwards).
func (s slackSetup) makePending(t *testing.T, dbURL, alertID string) {
	t.Helper()
	s.fake.FailNext("chat.postMessage", 1, slackfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	s.postExpertAlert(t, alertID)
	ctx := context.Background()
	require.Eventually(t, func() bool {
		st, err := readOutbox(ctx, dbURL)
		return err == nil && st.pending == 1 && st.tried == 1 && st.leased == 0
	}, 20*time.Second, 10*time.Millisecond, "the notification is pending after a 429")
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "data", "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	require.NoError(t, err)
	return pid
}

func exec1(ctx context.Context, url, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var out string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&out))
	return out
}

// child is threatdesk running as a process of its own (the test binary in
// main mode).
type child struct {
	cmd    *exec.Cmd
	logs   *syncWriter
	exited chan struct{} // closed once the process has exited; then err is set
	err    error
}

// wait waits for the process to exit and returns how it ended.
func (c *child) wait() error {
	<-c.exited
	return c.err
}

func startChild(t *testing.T, env map[string]string, attr *syscall.SysProcAttr) *child {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), childMainEnv + "=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	c := &child{cmd: cmd, logs: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	cmd.SysProcAttr = attr
	require.NoError(t, cmd.Start())
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("threatdesk (pid %d) logged:\n%s", cmd.Process.Pid, c.logs.String())
		}
	})
	return c
}

// waitReady waits for /readyz 200 while the child lives.
func (c *child) waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for get(base+"/readyz") != http.StatusOK {
		select {
		case <-c.exited:
			t.Fatalf("threatdesk exited before it was ready: %v", c.err)
		case <-time.After(50 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "threatdesk not ready in time")
	}
}

// TestServeStartsAfterACrashOfServiceAndDatabase is a machine or container
// crash: threatdesk and its embedded PostgreSQL are killed together (SIGKILL)
// with a notification pending in the outbox, and threatdesk is started again
// at once. It must start (not "reuse" the dead server and fail with
// connection refused), keep the data, and deliver the pending notification.
func TestServeStartsAfterACrashOfServiceAndDatabase(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	sl := newSlackSetup(t)
	dir := dataDir(t)
	env := map[string]string{"THREATDESK_DATA_DIR": dir}
	for k, v := range sl.env {
		env[k] = v
	}
	appURL := pglocal.URL(filepath.Join(dir, "postgres"), appRole, "threatdesk")
	ctx := context.Background()

	first := startChild(t, env, nil)
	first.waitReady(t, sl.base)
	require.NoError(t, exec1(ctx, appURL, "CREATE TABLE crash_marker AS SELECT 'committed before the crash'::text AS v"))
	sl.makePending(t, appURL, "da-crash-1")
	cardsBefore := sl.cards()

	pm := postmasterPID(t, dir)
	require.NoError(t, syscall.Kill(first.cmd.Process.Pid, syscall.SIGKILL))
	require.NoError(t, syscall.Kill(pm, syscall.SIGKILL))
	_ = first.wait()

	second := startChild(t, env, nil)
	second.waitReady(t, sl.base)
	require.NotContains(t, second.logs.String(), "reusing it", "the dead server is not adopted")
	require.Equal(t, "committed before the crash", queryString(t, appURL, "SELECT v FROM crash_marker"))
	require.Eventually(t, func() bool {
		st, err := readOutbox(ctx, appURL)
		return err == nil && st.pending == 0
	}, 30*time.Second, 50*time.Millisecond, "every pending outbox message is delivered")
	require.Equal(t, cardsBefore+1, sl.cards(), "the pending notification was posted, once")

	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(), "a clean stop after the recovery")
	_, err := os.Stat(filepath.Join(dir, "postgres", "data", "postmaster.pid"))
	require.True(t, os.IsNotExist(err), "the embedded PostgreSQL stopped with the service")
}

// TestServeRecoversFromAKilledEmbeddedPostgres: an operator kills only the
// embedded PostgreSQL while threatdesk runs. The supervisor restarts it;
// /readyz comes back to 200 and new work succeeds.
func TestServeRecoversFromAKilledEmbeddedPostgres(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	sl := newSlackSetup(t)
	dir := dataDir(t)
	sl.env["THREATDESK_DATA_DIR"] = dir
	cfg, err := config.Load(envOf(sl.env))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("threatdesk logged:\n%s", logs.String())
		}
	})
	require.Eventually(t, func() bool { return get(sl.base+"/readyz") == http.StatusOK }, 60*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, sl.fake.WaitConnected(wctx))

	for round := 1; round <= 2; round++ {
		old := postmasterPID(t, dir)
		require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			b, err := os.ReadFile(filepath.Join(dir, "postgres", "data", "postmaster.pid"))
			return err == nil && !strings.HasPrefix(string(b), strconv.Itoa(old)+"\n") && get(sl.base+"/readyz") == http.StatusOK
		}, 60*time.Second, 50*time.Millisecond, "round %d: a new server, and ready again", round)
		// The supervisor counts a restart once it has seen the new server
		// answer, a moment after it does: the next kill waits for that (a
		// kill before it was counted a failed restart).
		require.Eventually(t, func() bool {
			return strings.Contains(metricsOf(sl.base), fmt.Sprintf(`threatdesk_embedded_postgres_restarts_total{result="ok"} %d`, round))
		}, 30*time.Second, 50*time.Millisecond, "round %d: the restart counted", round)
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		// New work succeeds: an analyst opens a case; the receipt and the
		// desk card are posted. (Case numbers come from a sequence, which
		// skips values after a crash of the server: count, do not name.)
		desk, soc := countWith(sl.fake.Messages("C0EXPERTDESK"), "EOD-"), countWith(sl.fake.Messages("C0CONTOSOSOC"), "EOD-")
		_, err := sl.fake.Command(ctx, slackfake.SlashCommand{
			Text: fmt.Sprintf("ask is this lateral movement? (after kill %d)", round), UserID: "U0ANALYST1",
			UserName: "alice", ChannelID: "C0CONTOSOSOC",
		})
		require.NoError(t, err)
		testwait.For(t, 30*time.Second, fmt.Sprintf("round %d: a case opened, receipt and desk card posted", round), func() bool {
			return countWith(sl.fake.Messages("C0EXPERTDESK"), "EOD-") > desk && countWith(sl.fake.Messages("C0CONTOSOSOC"), "EOD-") > soc
		}, sl.fake)
	}
	body := metricsOf(sl.base)
	require.Contains(t, body, `threatdesk_embedded_postgres_restarts_total{result="ok"} 2`)
	require.Contains(t, body, "threatdesk_embedded_postgres_up 1")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Contains(t, logs.String(), "restarting it")
}

// TestServeExitsWhenTheEmbeddedPostgresCannotRestart: when restarting keeps
// failing, serve returns an error (the process exits non-zero), so that
// systemd, Kubernetes or Docker restart the service.
func TestServeExitsWhenTheEmbeddedPostgresCannotRestart(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	dir := dataDir(t)
	env := map[string]string{"THREATDESK_DATA_DIR": dir, "THREATDESK_HTTP_ADDR": freeAddr(t)}
	c := startChild(t, env, nil)
	c.waitReady(t, "http://"+env["THREATDESK_HTTP_ADDR"])
	// The cluster now claims a version no server binary can run.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "postgres", "data", "PG_VERSION"), []byte("7\n"), 0o600))
	require.NoError(t, syscall.Kill(postmasterPID(t, dir), syscall.SIGKILL))
	select {
	case <-c.exited:
		var exit *exec.ExitError
		require.ErrorAs(t, c.err, &exit)
		require.Equal(t, 1, exit.ExitCode())
		require.Contains(t, c.logs.String(), "the embedded PostgreSQL cannot be restarted")
	case <-time.After(90 * time.Second):
		t.Fatal("threatdesk kept running without a database")
	}
}

// TestServeRidesOutADatabaseURLOutage: with DATABASE_URL, the database is
// stopped for a few seconds under a running service and started again. The
// process never exits, /readyz returns to 200, and a notification left
// pending before the outage is then delivered.
func TestServeRidesOutADatabaseURLOutage(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	ctx := context.Background()
	pgDir := filepath.Join(dataDir(t), "pg")
	require.NoError(t, os.MkdirAll(filepath.Dir(pgDir), 0o755))
	opts := pglocal.Options{Dir: pgDir, Database: "outage", AppRole: "outage"}
	db, err := pglocal.Start(ctx, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })

	sl := newSlackSetup(t)
	sl.env["DATABASE_URL"] = db.AppURL()
	sl.env["THREATDESK_SECRET_KEY"] = "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
	cfg, err := config.Load(envOf(sl.env))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(sctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("threatdesk logged:\n%s", logs.String())
		}
	})
	require.Eventually(t, func() bool { return get(sl.base+"/readyz") == http.StatusOK }, 60*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, sl.fake.WaitConnected(wctx))
	cardsBefore := sl.cards()
	sl.makePending(t, db.AppURL(), "da-outage-1")

	require.NoError(t, db.Stop(ctx))
	require.Eventually(t, func() bool { return get(sl.base+"/readyz") == http.StatusServiceUnavailable }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(3 * time.Second) // the outage itself: nothing to wait for but time
	db, err = pglocal.Start(ctx, opts, nil)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return get(sl.base+"/readyz") == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"/readyz returns to 200")
	require.Eventually(t, func() bool {
		st, err := readOutbox(ctx, db.AppURL())
		return err == nil && st.pending == 0
	}, 60*time.Second, 50*time.Millisecond, "the pending notification is delivered after the outage")
	require.Equal(t, cardsBefore+1, sl.cards())
	select {
	case err := <-done:
		t.Fatalf("serve exited during the outage: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeAsPID1ReapsAndRestarts runs threatdesk as PID 1 of a new PID
// namespace, as in a container without an init. The orphaned postmaster is
// its child there; killed, it must be reaped (not left a zombie, which would
// pass for alive) and restarted.
func TestServeAsPID1ReapsAndRestarts(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: this test needs root to create a PID namespace")
		}
		t.Skip("SKIPPED: creating a PID namespace needs root")
	}
	dir := dataDir(t)
	env := map[string]string{"THREATDESK_DATA_DIR": dir, "THREATDESK_HTTP_ADDR": freeAddr(t), childPID1Env: "1",
		"THREATDESK_LOG_FORMAT": "text"}
	base := "http://" + env["THREATDESK_HTTP_ADDR"]
	c := startChild(t, env, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS})
	c.waitReady(t, base)
	require.Contains(t, c.logs.String(), "local PostgreSQL started")

	realData, err := filepath.EvalSymlinks(filepath.Join(dir, "postgres", "data"))
	require.NoError(t, err)
	// The postmaster as this (outer) namespace sees it: working in the data
	// directory, a child of threatdesk (its parent, pg_ctl, has exited).
	postmaster := func() int {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != realData {
				continue
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil && strings.Contains(string(status), fmt.Sprintf("\nPPid:\t%d\n", c.cmd.Process.Pid)) {
				return pid
			}
		}
		return 0
	}
	var old int
	require.Eventually(t, func() bool { old = postmaster(); return old != 0 }, 30*time.Second, 20*time.Millisecond,
		"the postmaster is threatdesk's child")
	require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", old))
		return os.IsNotExist(err)
	}, 30*time.Second, 20*time.Millisecond, "the killed postmaster is reaped, not left a zombie")
	require.Eventually(t, func() bool {
		pid := postmaster()
		return pid != 0 && pid != old && get(base+"/readyz") == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "a new postmaster, and ready again")

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.wait(), "PID 1 stops cleanly on SIGTERM")
}

// TestSIGHUPWithoutChatReloads: with no chat platform enabled (an
// intake-only deployment) nothing listened for SIGHUP, Go's default ended
// the process, and its embedded PostgreSQL ran on, orphaned; the same
// while starting or stopping. A SIGHUP sent while it starts is ignored,
// and one sent while it runs reloads the orgs, audited.
func TestSIGHUPWithoutChatReloads(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("timezone: UTC\n"), 0o600))
	addr := freeAddr(t)
	c := startChild(t, map[string]string{"DATABASE_URL": dbURL, "THREATDESK_HTTP_ADDR": addr, "THREATDESK_CONFIG": cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"}, nil)
	// serve takes SIGHUP before it logs anything; before that the Go
	// runtime is still starting, and a SIGHUP ends any Go process (a
	// fixed 100 ms was not enough on a loaded machine under -race).
	require.Eventually(t, func() bool { return c.logs.String() != "" }, 20*time.Second, 5*time.Millisecond, "serve begins")
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGHUP), "while it starts")
	c.waitReady(t, "http://"+addr)

	require.NoError(t, os.WriteFile(cfgPath, []byte("timezone: UTC\ncases:\n  remind_after: 12h\n"), 0o600))
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return queryString(t, dbURL, `SELECT coalesce(string_agg(by_user || ':' || applied::text || ':' || cardinality(restart), ','), '') FROM config_reloads`) ==
			"SIGHUP:true:1" // cases.remind_after, read at start
	}, 20*time.Second, 50*time.Millisecond, "the reload is audited")
	select {
	case <-c.exited:
		t.Fatalf("threatdesk exited on SIGHUP: %v", c.err)
	default:
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.wait(), "a clean stop")
}
