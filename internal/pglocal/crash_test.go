package pglocal_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pglocal"
)

// helperEnv makes the test binary act as a parent process that never reaps
// its children: see TestMain.
const helperEnv = "PGLOCAL_TEST_NONREAPING_PARENT"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(nonReapingParent(dir))
	}
	os.Exit(m.Run())
}

// nonReapingParent is what a container's PID 1 without an init is to the
// server: it becomes the parent of the postmaster (a child subreaper gets
// the orphans that PID 1 would) and never reaps it. It starts the server in
// dir, prints the postmaster's pid and waits for its stdin to close.
func nonReapingParent(dir string) int {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "prctl:", errno)
		return 1
	}
	s, err := pglocal.Start(context.Background(), pglocal.Options{Dir: dir}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(postmasterPID(s))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

func postmasterPID(s *pglocal.Server) int {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

// TestZombiePostmasterIsNotAdopted is the crash of a container whose PID 1
// does not reap: the killed postmaster stays a zombie, so kill(pid, 0) and
// `pg_ctl status` still find it and its socket file is still there. The next
// start must see it as dead, clear its files and start a new server, not
// "reuse" it and fail with connection refused.
func TestZombiePostmasterIsNotAdopted(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIPPED: zombies are recognised through /proc, which this system lacks")
	}
	ctx := context.Background()
	dir := shortDir(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	parent := exec.Command(exe)
	parent.Env = append(os.Environ(), helperEnv+"="+dir)
	stdin, err := parent.StdinPipe()
	require.NoError(t, err)
	stdout, err := parent.StdoutPipe()
	require.NoError(t, err)
	parent.Stderr = os.Stderr
	require.NoError(t, parent.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = parent.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)

	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return procState(pid) == "Z" }, 10*time.Second, 10*time.Millisecond,
		"the killed postmaster is a zombie of the parent that does not reap it")
	require.NoError(t, syscall.Kill(pid, 0), "kill(pid, 0) still finds a zombie")
	_, err = os.Stat(filepath.Join(dir, ".s.PGSQL.5432"))
	require.NoError(t, err, "the dead server's socket file is still there")

	s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "app"}, nil)
	require.NoError(t, err)
	require.False(t, s.Adopted(), "a zombie is not a running server")
	require.Equal(t, "1", query(t, s.URL("app"), "SELECT '1'"))
	require.NotEqual(t, pid, postmasterPID(s))
	require.NoError(t, s.Stop(ctx))
}

func TestSuperviseRestartsAKilledServer(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: shortDir(t), Database: "app"}, nil)
	require.NoError(t, err)
	_ = query(t, s.URL("app"), "CREATE TABLE kept AS SELECT 'still here'::text AS v")

	reg := prometheus.NewRegistry()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Supervise(sctx, pglocal.SuperviseOptions{Interval: 20 * time.Millisecond, Registerer: reg})
	}()
	for round := 1; round <= 2; round++ {
		old := postmasterPID(s)
		require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			pid := postmasterPID(s)
			return pid != 0 && pid != old && s.Ping(ctx) == nil
		}, 60*time.Second, 20*time.Millisecond, "round %d: the server is back", round)
		require.Equal(t, "still here", query(t, s.URL("app"), "SELECT v FROM kept"))
		require.Eventually(t, func() bool {
			return restarts(t, reg, "ok") == float64(round)
		}, 10*time.Second, 10*time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, s.Stop(ctx))
}

// TestSuperviseGivesUp: a server that cannot be started again makes
// Supervise return an error (the process then exits for its own supervisor
// to act) after the configured number of attempts.
func TestSuperviseGivesUp(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := context.Background()
	s, err := pglocal.Start(ctx, pglocal.Options{Dir: shortDir(t)}, nil)
	require.NoError(t, err)
	pid := postmasterPID(s)
	// The cluster now claims a version no server binary can run.
	require.NoError(t, os.WriteFile(filepath.Join(s.DataDir(), "PG_VERSION"), []byte("7\n"), 0o600))
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	reg := prometheus.NewRegistry()
	err = s.Supervise(ctx, pglocal.SuperviseOptions{Interval: 10 * time.Millisecond, MaxFailures: 3,
		BackoffBase: 10 * time.Millisecond, Registerer: reg})
	require.ErrorContains(t, err, "3 restarts in a row failed")
	require.Equal(t, 3.0, restarts(t, reg, "failed"))
}

// restarts reads threatdesk_embedded_postgres_restarts_total{result} from reg.
func restarts(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_embedded_postgres_restarts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestInterruptedInitdbIsMadeAgain: initdb killed during the first start
// (the OOM killer, a container stopped) left a data directory with
// PG_VERSION, taken for a made cluster: every later start failed ("could
// not open file global/pg_control") until someone removed it by hand.
func TestInterruptedInitdbIsMadeAgain(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	dir := shortDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started := make(chan error, 1)
	go func() {
		s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir}, nil)
		if err == nil {
			_ = s.Stop(ctx)
		}
		started <- err
	}()
	killed := false
	for !killed {
		select {
		case err := <-started:
			t.Fatalf("the first start ended before initdb could be killed: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		made := false
		for _, d := range []string{"data", "data.initdb"} {
			if _, err := os.Stat(filepath.Join(dir, d, "PG_VERSION")); err == nil {
				made = true
			}
		}
		if !made {
			continue
		}
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil {
				continue
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if args := strings.Split(string(cmd), "\x00"); strings.HasSuffix(args[0], "initdb") && strings.Contains(string(cmd), dir) {
				killed = syscall.Kill(pid, syscall.SIGKILL) == nil || killed
			}
		}
	}
	require.Error(t, <-started, "initdb was killed")

	s, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Database: "app"}, nil)
	require.NoError(t, err, "the next start makes the cluster again")
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	require.Equal(t, "1", query(t, s.URL("app"), "SELECT 1::text"))
}
