// Package pglocal runs a private PostgreSQL server from the server binaries
// installed on the machine: the embedded default used when DATABASE_URL is
// not set, and the server behind the test database harness.
//
// The cluster lives in one directory and listens only on a unix socket inside
// it, so it never competes for a TCP port. When the process runs as root the
// server runs as the "postgres" OS user, which PostgreSQL requires. A server
// left running by a crashed process is adopted; a stale postmaster.pid is
// removed. A second start reuses the data.
package pglocal

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoServerBinaries is returned when no PostgreSQL server binaries are found.
var ErrNoServerBinaries = errors.New("no PostgreSQL server binaries found (initdb, pg_ctl): " +
	"install the PostgreSQL server package (for example `apt-get install postgresql`), " +
	"or set DATABASE_URL to use an existing PostgreSQL server")

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path, minus the NUL).
const maxSocketPath = 107

// Options configure a local server.
type Options struct {
	// Dir holds the cluster (Dir/data), its socket and its log. Required.
	Dir string
	// BinDir overrides where initdb, pg_ctl and postgres are looked up.
	BinDir string
	// Settings are extra server settings (name -> value), passed on the
	// command line at every start.
	Settings map[string]string
	// Database is created on first start when set.
	Database string
	// OSUser is the user the server runs as when the process is root.
	// Default "postgres".
	OSUser string
}

// Server is a running (or adopted) local PostgreSQL server.
type Server struct {
	opts    Options
	bin     string
	cred    *syscall.Credential
	log     *slog.Logger
	adopted bool
}

// Start starts the server in opts.Dir, initialising the cluster on first use.
func Start(ctx context.Context, opts Options, log *slog.Logger) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pglocal: a directory is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.OSUser = cmp.Or(opts.OSUser, "postgres")
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir %q: %w", opts.Dir, err)
	}
	opts.Dir = dir
	if n := len(filepath.Join(dir, ".s.PGSQL.5432")); n > maxSocketPath {
		return nil, fmt.Errorf("data dir %q is too long for a unix socket path (%d > %d bytes): choose a shorter THREATDESK_DATA_DIR", dir, n, maxSocketPath)
	}
	bin, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, bin: bin, log: log.With("component", "pglocal")}
	if os.Geteuid() == 0 {
		cred, err := lookupCredential(opts.OSUser)
		if err != nil {
			return nil, err
		}
		s.cred = cred
	}
	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if opts.Database != "" {
		if err := s.ensureDatabase(ctx, opts.Database); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.opts.Dir, "data") }

// SocketDir is the directory holding the server's unix socket.
func (s *Server) SocketDir() string { return s.opts.Dir }

// Adopted reports whether Start found the server already running and reused it.
func (s *Server) Adopted() bool { return s.adopted }

// URL is a connection URL for database db over the unix socket.
func (s *Server) URL(db string) string {
	q := url.Values{}
	q.Set("host", s.SocketDir())
	q.Set("user", "postgres")
	q.Set("sslmode", "disable")
	return (&url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: q.Encode()}).String()
}

// Stop shuts the server down with the "fast" mode: sessions are ended,
// transactions rolled back, and the cluster is checkpointed cleanly.
func (s *Server) Stop(ctx context.Context) error {
	out, err := s.run(ctx, "pg_ctl", "stop", "-D", s.DataDir(), "-m", "fast", "-w", "-t", "60")
	if err != nil && !strings.Contains(string(out), "Is server running?") {
		return fmt.Errorf("stop local PostgreSQL: %w: %s", err, lastLines(out, 5))
	}
	s.log.Info("local PostgreSQL stopped", "dir", s.opts.Dir)
	return nil
}

// FindBinDir finds the directory holding initdb and pg_ctl: the override,
// `pg_config --bindir`, the usual install folders (newest version first),
// then PATH.
func FindBinDir(override string) (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if override != "" {
		if has(override) {
			return override, nil
		}
		return "", fmt.Errorf("PostgreSQL bin dir %q has no initdb, pg_ctl and postgres: %w", override, ErrNoServerBinaries)
	}
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
		"/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"} {
		matches, _ := filepath.Glob(pattern)
		sort.Sort(sort.Reverse(byVersion(matches)))
		candidates = append(candidates, matches...)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, c := range candidates {
		if has(c) {
			return c, nil
		}
	}
	return "", ErrNoServerBinaries
}

func (s *Server) prepareDir() error {
	// Parents are made searchable (the server user must reach its
	// directory); the directory itself is private.
	if err := os.MkdirAll(filepath.Dir(s.opts.Dir), 0o755); err != nil {
		return fmt.Errorf("create data dir parent %q: %w", filepath.Dir(s.opts.Dir), err)
	}
	if err := os.Mkdir(s.opts.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data dir %q: %w", s.opts.Dir, err)
	}
	if s.cred == nil {
		return nil
	}
	// The server runs as the postgres user: it must own its directory and be
	// able to reach it through every parent.
	if err := os.Chown(s.opts.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("give data dir %q to user %s: %w", s.opts.Dir, s.opts.OSUser, err)
	}
	for p := filepath.Dir(s.opts.Dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check data dir parent %q: %w", p, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("data dir %q is inside %q, which user %s cannot enter (mode %v): allow it (chmod o+x) or choose a THREATDESK_DATA_DIR whose parents every user can enter, for example /var/lib/threatdesk",
				s.opts.Dir, p, s.opts.OSUser, st.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.DataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	// A half-made cluster from an interrupted initdb is removed and made again.
	if err := os.RemoveAll(s.DataDir()); err != nil {
		return fmt.Errorf("remove incomplete cluster %q: %w", s.DataDir(), err)
	}
	start := time.Now()
	out, err := s.run(ctx, "initdb", "-D", s.DataDir(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return fmt.Errorf("initdb in %q: %w: %s", s.DataDir(), err, lastLines(out, 5))
	}
	s.log.Info("created local PostgreSQL cluster", "dir", s.DataDir(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *Server) start(ctx context.Context) error {
	if s.ready(ctx) {
		s.adopted = true
		s.log.Info("local PostgreSQL already running; reusing it", "dir", s.opts.Dir)
		return nil
	}
	s.removeStalePid()
	o := []string{"-c", "listen_addresses=", "-k", s.SocketDir()}
	keys := make([]string, 0, len(s.opts.Settings))
	for k := range s.opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o = append(o, "-c", k+"="+s.opts.Settings[k])
	}
	logFile := filepath.Join(s.opts.Dir, "postgres.log")
	out, err := s.run(ctx, "pg_ctl", "start", "-D", s.DataDir(), "-l", logFile, "-w", "-t", "120",
		"-o", shellJoin(o))
	if err != nil {
		if s.ready(ctx) { // another process started it at the same moment
			s.adopted = true
			return nil
		}
		tail, _ := os.ReadFile(logFile)
		return fmt.Errorf("start local PostgreSQL in %q: %w: %s %s", s.DataDir(), err, lastLines(out, 3), lastLines(tail, 5))
	}
	s.log.Info("local PostgreSQL started", "dir", s.opts.Dir)
	return nil
}

// ready reports whether a server is accepting connections on our socket.
func (s *Server) ready(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(s.DataDir(), "postmaster.pid")); err != nil {
		return false
	}
	_, err := s.run(ctx, "pg_ctl", "status", "-D", s.DataDir())
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(s.SocketDir(), ".s.PGSQL.5432"))
	return err == nil
}

// removeStalePid deletes postmaster.pid when the process it names is gone
// or is not a postgres server (the pid was reused after a crash).
func (s *Server) removeStalePid() {
	pidFile := filepath.Join(s.DataDir(), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		_ = os.Remove(pidFile)
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && bytes.Contains(cmdline, []byte("postgres")) {
		return // alive; pg_ctl will report the conflict
	}
	if err != nil && syscall.Kill(pid, 0) == nil {
		return // no /proc here, but the process exists
	}
	s.log.Warn("removing stale postmaster.pid left by a crash", "pid", pid)
	_ = os.Remove(pidFile)
}

func (s *Server) ensureDatabase(ctx context.Context, db string) error {
	sql := fmt.Sprintf("SELECT 1 FROM pg_database WHERE datname = '%s'", strings.ReplaceAll(db, "'", "''"))
	out, err := s.run(ctx, "psql", "-h", s.SocketDir(), "-U", "postgres", "-d", "postgres", "-tAc", sql)
	if err != nil {
		return fmt.Errorf("check database %q: %w: %s", db, err, lastLines(out, 3))
	}
	if strings.TrimSpace(string(out)) == "1" {
		return nil
	}
	out, err = s.run(ctx, "createdb", "-h", s.SocketDir(), "-U", "postgres", db)
	if err != nil && !strings.Contains(string(out), "already exists") {
		return fmt.Errorf("create database %q: %w: %s", db, err, lastLines(out, 3))
	}
	return nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.opts.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// Keep the server out of our process group so a Ctrl-C in a terminal
	// reaches us first and we stop it cleanly.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd.CombinedOutput()
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, the local PostgreSQL must run as OS user %q, which was not found: create it (installing the PostgreSQL server package does) or set DATABASE_URL: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %q: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// byVersion sorts paths like /usr/lib/postgresql/15/bin by their numeric version part.
type byVersion []string

func (v byVersion) Len() int      { return len(v) }
func (v byVersion) Swap(i, j int) { v[i], v[j] = v[j], v[i] }
func (v byVersion) Less(i, j int) bool {
	return versionOf(v[i]) < versionOf(v[j])
}

func versionOf(p string) int {
	for _, part := range strings.Split(p, "/") {
		part = strings.TrimPrefix(strings.TrimPrefix(part, "postgresql@"), "pgsql-")
		if n, err := strconv.Atoi(part); err == nil {
			return n
		}
	}
	return 0
}
