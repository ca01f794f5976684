package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// socketName is the server's unix socket in the socket directory (port 5432).
const socketName = ".s.PGSQL.5432"

// procState is a process's state letter from /proc/PID/stat ('R', 'S',
// 'Z' for a zombie, ...); ok is false when /proc has no such process.
func procState(pid int) (state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// haveProc reports whether /proc describes processes here (Linux).
func haveProc() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// pidFromFile reads the pid on the first line of a PostgreSQL lock file
// (postmaster.pid, .s.PGSQL.5432.lock); 0 when there is none.
func pidFromFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// isOurServer reports whether pid is a live (not zombie) PostgreSQL process
// working in this cluster's data directory. A killed postmaster that its
// parent has not reaped yet is a zombie: kill(pid, 0) and `pg_ctl status`
// still see it, but it serves nothing. A pid reused after a crash by another
// program, or by the server of another cluster, is not ours either.
func (s *Server) isOurServer(pid int) bool {
	if pid <= 0 {
		return false
	}
	if !haveProc() {
		return syscall.Kill(pid, 0) == nil // best effort where there is no /proc
	}
	state, ok := procState(pid)
	if !ok || state == 'Z' || state == 'X' || state == 'x' {
		return false
	}
	// Every PostgreSQL process runs with the data directory as its working
	// directory. Reading another user's cwd needs privilege; then fall back
	// to the command line.
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		return cwd == s.realDataDir()
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte("postgres"))
}

func (s *Server) realDataDir() string {
	if real, err := filepath.EvalSymlinks(s.DataDir()); err == nil {
		return real
	}
	return s.DataDir()
}

// postmasterPID is the pid named by postmaster.pid, 0 when there is none.
func (s *Server) postmasterPID() int {
	return pidFromFile(filepath.Join(s.DataDir(), "postmaster.pid"))
}

// Running reports whether the cluster's postmaster process is alive. A
// zombie, a pid reused by another program and a missing postmaster.pid all
// count as not running.
func (s *Server) Running() bool { return s.isOurServer(s.postmasterPID()) }

// clearStale removes what a dead server leaves behind and what would make a
// new one refuse to start: postmaster.pid, the socket and its lock file
// (each naming a pid that kill(pid, 0) may still find, as a zombie or after
// reuse), and backends of the dead postmaster that have not exited yet
// (they still hold its shared memory).
func (s *Server) clearStale(ctx context.Context) error {
	pidFile := filepath.Join(s.DataDir(), "postmaster.pid")
	if pid := pidFromFile(pidFile); pid != 0 && s.isOurServer(pid) {
		return fmt.Errorf("a PostgreSQL server (pid %d) is running on %q", pid, s.DataDir())
	}
	if _, err := os.Lstat(pidFile); err == nil {
		s.log.Warn("removing the postmaster.pid left by a server that is gone", "pid", pidFromFile(pidFile))
		if err := os.Remove(pidFile); err != nil {
			return fmt.Errorf("remove stale %q: %w", pidFile, err)
		}
	}
	lock := filepath.Join(s.SocketDir(), socketName+".lock")
	if _, err := os.Lstat(lock); err == nil && !s.isOurServer(pidFromFile(lock)) {
		for _, p := range []string{lock, filepath.Join(s.SocketDir(), socketName)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %q: %w", p, err)
			}
		}
	}
	return s.killLeftovers(ctx)
}

// killLeftovers ends PostgreSQL processes still working in the data
// directory after their postmaster died (they exit by themselves soon, but a
// new postmaster refuses to start while they hold the old shared memory).
func (s *Server) killLeftovers(ctx context.Context) error {
	if !haveProc() {
		return nil
	}
	find := func() []int {
		entries, _ := os.ReadDir("/proc")
		var pids []int
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if st, ok := procState(pid); !ok || st == 'Z' || st == 'X' {
				continue
			}
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
			if err != nil || cwd != s.realDataDir() {
				continue
			}
			// Only the server's own processes: never, say, a shell an
			// operator left in the data directory.
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if !bytes.HasPrefix(cmdline, []byte("postgres")) && !bytes.Contains(cmdline, []byte("/postgres\x00")) {
				continue
			}
			var st syscall.Stat_t
			if err := syscall.Stat(fmt.Sprintf("/proc/%d", pid), &st); err != nil || int(st.Uid) != s.uid {
				continue
			}
			pids = append(pids, pid)
		}
		return pids
	}
	left := find()
	if len(left) == 0 {
		return nil
	}
	s.log.Warn("ending processes of the dead PostgreSQL server that are still running", "pids", left)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(find()) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the dead PostgreSQL server in %q did not exit: %v", s.DataDir(), find())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
