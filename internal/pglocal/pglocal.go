// Package pglocal runs a private PostgreSQL server from the server binaries
// installed on the machine: the embedded default used when DATABASE_URL is
// not set, and the server behind the test database harness.
//
// The cluster lives in one directory (Options.Dir) that belongs to the
// server's user alone (mode 0700, never a symbolic link), and listens only on
// a unix socket inside it, so it never competes for a TCP port and no other
// local user can reach it. Every connection authenticates with a password
// (scram-sha-256); the generated passwords are kept in Dir/pgpass (mode
// 0600, libpq's .pgpass format). A cluster made by an older version that
// trusted local connections is converted in place. When the process runs as
// root the server runs as the "postgres" OS user, which PostgreSQL requires.
// Child processes get a minimal environment, so the server never holds the
// service's tokens.
//
// Whether a server is running is decided by its process (a zombie is dead)
// and by connecting to it, never by the files a crash leaves: a server left
// running by a crashed owner is adopted; a dead one's postmaster.pid, socket
// lock and lingering backends are cleared before a new start. Supervise
// restarts a server that dies.
package pglocal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoServerBinaries is returned when no PostgreSQL server binaries are found.
var ErrNoServerBinaries = errors.New("no PostgreSQL server binaries found (initdb, pg_ctl): " +
	"install the PostgreSQL server package (for example `apt-get install postgresql`), " +
	"or set DATABASE_URL to use an existing PostgreSQL server")

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path, minus the NUL).
const maxSocketPath = 107

// readyTimeout bounds how long a started or adopted server may take to accept connections.
const readyTimeout = 2 * time.Minute

// Options configure a local server.
type Options struct {
	// Dir holds the cluster (Dir/data), its socket, its log and the password
	// file. Required. It is created, or must already belong to the server's
	// user (or to root, when running as root); a symbolic link is refused.
	Dir string
	// BinDir overrides where initdb, pg_ctl and postgres are looked up.
	BinDir string
	// Settings are extra server settings (name -> value), passed on the
	// command line at every start.
	Settings map[string]string
	// Database is created on first start when set.
	Database string
	// AppRole, with Database, is a role that can log in but is not a
	// superuser; it owns Database, and AppURL connects as it.
	AppRole string
	// OSUser is the user the server runs as when the process is root.
	// Default "postgres".
	OSUser string
	// Guard, when set, is held from the start of every child process pglocal
	// runs until it has been waited for. A process that reaps orphans (PID 1
	// in a container) holds it exclusively while reaping, so that it never
	// reaps a child os/exec is about to wait for.
	Guard sync.Locker
}

// Server is a running (or adopted) local PostgreSQL server.
type Server struct {
	opts     Options
	bin      string
	cred     *syscall.Credential // set when the server runs as another user
	uid, gid int                 // the server's user
	pw       map[string]string   // role -> password
	log      *slog.Logger
	adopted  bool
}

// Start starts the server in opts.Dir, initialising the cluster on first use,
// or adopts a server already running there.
func Start(ctx context.Context, opts Options, log *slog.Logger) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pglocal: a directory is required")
	}
	if opts.AppRole != "" && (opts.Database == "" || !roleName.MatchString(opts.AppRole) || opts.AppRole == superuser) {
		return nil, fmt.Errorf("pglocal: app role %q needs a database and a lower-case name other than %q", opts.AppRole, superuser)
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
	if n := len(filepath.Join(dir, socketName)); n > maxSocketPath {
		return nil, fmt.Errorf("data dir %q is too long for a unix socket path (%d > %d bytes): choose a shorter THREATDESK_DATA_DIR", dir, n, maxSocketPath)
	}
	bin, err := findBinDir(opts.BinDir, opts.Guard)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, bin: bin, log: log.With("component", "pglocal"), uid: os.Geteuid(), gid: os.Getegid()}
	if os.Geteuid() == 0 {
		cred, err := lookupCredential(opts.OSUser)
		if err != nil {
			return nil, err
		}
		s.cred, s.uid, s.gid = cred, int(cred.Uid), int(cred.Gid)
	}
	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	roles := []string{superuser}
	if opts.AppRole != "" {
		roles = append(roles, opts.AppRole)
	}
	if s.pw, err = s.passwords(roles...); err != nil {
		return nil, err
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if err := s.startOrAdopt(ctx); err != nil {
		return nil, err
	}
	if err := s.secureAuth(ctx); err != nil {
		return nil, err
	}
	if opts.Database != "" {
		if err := s.ensureDatabase(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.opts.Dir, "data") }

// SocketDir is the directory holding the server's unix socket.
func (s *Server) SocketDir() string { return s.opts.Dir }

// PassFile is the file holding the roles' passwords (libpq .pgpass format):
// `PGPASSFILE=<it> psql -h <SocketDir> -U postgres` connects by hand.
func (s *Server) PassFile() string { return filepath.Join(s.opts.Dir, passFile) }

// Adopted reports whether Start found the server already running and reused it.
func (s *Server) Adopted() bool { return s.adopted }

// URL is a connection URL for database db over the unix socket, as the
// superuser. The password is not in it: the URL names the password file.
func (s *Server) URL(db string) string { return URL(s.opts.Dir, superuser, db) }

// AppURL is the connection URL of Options.Database as Options.AppRole (the
// superuser when no app role is set).
func (s *Server) AppURL() string {
	return URL(s.opts.Dir, cmp.Or(s.opts.AppRole, superuser), s.opts.Database)
}

// URL is the connection URL of a server whose Options.Dir is dir, for role
// and database db. The password comes from the password file it names.
func URL(dir, role, db string) string {
	q := url.Values{}
	q.Set("host", dir)
	q.Set("user", role)
	q.Set("passfile", filepath.Join(dir, passFile))
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
func FindBinDir(override string) (string, error) { return findBinDir(override, nil) }

func findBinDir(override string, guard sync.Locker) (string, error) {
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
	if p, err := exec.LookPath("pg_config"); err == nil {
		cmd := exec.Command(p, "--bindir")
		cmd.Env = childEnv()
		if out, err := guarded(guard, cmd.Output); err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
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

// prepareDir makes Dir the server user's private directory and checks what
// is already in it. Its parents are created searchable (the server user must
// reach its directory) and must not be replaceable by other users.
func (s *Server) prepareDir() error {
	if err := os.MkdirAll(filepath.Dir(s.opts.Dir), 0o755); err != nil {
		return fmt.Errorf("create data dir parent %q: %w", filepath.Dir(s.opts.Dir), err)
	}
	other := ""
	if s.cred != nil {
		other = s.opts.OSUser
	}
	if err := checkAncestors(s.opts.Dir, other); err != nil {
		return err
	}
	tightened, err := SecureDir(s.opts.Dir, s.uid, s.gid, 0o700)
	if err != nil {
		return fmt.Errorf("the local PostgreSQL directory: %w", err)
	}
	if tightened {
		s.log.Warn("the local PostgreSQL directory was open to other users; it is now private (mode 0700)", "dir", s.opts.Dir)
	}
	for _, p := range []string{s.DataDir(), filepath.Join(s.opts.Dir, passFile), filepath.Join(s.opts.Dir, "postgres.log")} {
		if err := checkOwned(p, s.uid); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.DataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	// initdb makes the cluster beside the data directory and it is renamed
	// into place once whole: initdb writes PG_VERSION first, so one killed
	// midway (the OOM killer, a container stopped during the first start)
	// left a data directory that looked made and never started. A
	// half-made cluster is removed and made again.
	tmp := s.DataDir() + ".initdb"
	for _, dir := range []string{s.DataDir(), tmp} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove incomplete cluster %q: %w", dir, err)
		}
	}
	// initdb reads the superuser's password from a file of its own, readable
	// only by the server's user, removed once the cluster exists.
	pwFile := filepath.Join(s.opts.Dir, "initdb.pw")
	if err := writePrivateFile(pwFile, []byte(s.pw[superuser]+"\n"), s.uid, s.gid); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	start := time.Now()
	out, err := s.run(ctx, "initdb", "-D", tmp, "-U", superuser, "--auth=scram-sha-256", "--pwfile="+pwFile,
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return fmt.Errorf("initdb in %q: %w: %s", tmp, err, lastLines(out, 5))
	}
	if err := os.Rename(tmp, s.DataDir()); err != nil {
		return fmt.Errorf("move the new cluster into place: %w", err)
	}
	if _, err := s.writeHBA(); err != nil {
		return err
	}
	s.log.Info("created local PostgreSQL cluster", "dir", s.DataDir(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startOrAdopt adopts a live server on the data directory, or clears what a
// dead one left and starts a new one.
func (s *Server) startOrAdopt(ctx context.Context) error {
	if pid := s.postmasterPID(); s.isOurServer(pid) {
		err := s.waitReady(ctx)
		if err == nil {
			s.adopted = true
			s.log.Info("local PostgreSQL already running; reusing it", "dir", s.opts.Dir, "pid", pid)
			return nil
		}
		// A postmaster killed a moment ago still looks alive in /proc until
		// the kernel has finished it: if it died while we asked, start anew.
		if s.isOurServer(pid) {
			return fmt.Errorf("a PostgreSQL server (pid %d) is running on %q but does not answer: %w", pid, s.DataDir(), err)
		}
		s.log.Warn("the local PostgreSQL that looked alive exited; starting a new one", "pid", pid)
	}
	return s.launch(ctx)
}

// launch clears what a dead server left and starts the server.
func (s *Server) launch(ctx context.Context) error {
	if err := s.clearStale(ctx); err != nil {
		return err
	}
	o := []string{"-c", "listen_addresses=", "-k", s.SocketDir(), "-c", "unix_socket_permissions=0700",
		"-c", "password_encryption=scram-sha-256"}
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
		if s.Running() && s.waitReady(ctx) == nil { // another process started it at the same moment
			s.adopted = true
			return nil
		}
		tail, _ := os.ReadFile(logFile)
		return fmt.Errorf("start local PostgreSQL in %q: %w: %s %s", s.DataDir(), err, lastLines(out, 3), lastLines(tail, 5))
	}
	if err := s.waitReady(ctx); err != nil {
		return fmt.Errorf("local PostgreSQL in %q started but does not answer: %w", s.DataDir(), err)
	}
	s.log.Info("local PostgreSQL started", "dir", s.opts.Dir, "pid", s.postmasterPID())
	return nil
}

// Ping connects to the server and runs a query.
func (s *Server) Ping(ctx context.Context) error {
	conn, err := s.connect(ctx, superuser, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// waitReady waits until the server accepts a connection: running is decided
// by connecting. A refused password is final; a server still starting up or
// recovering is waited for while its process lives.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		err := s.Ping(ctx)
		if err == nil {
			return nil
		}
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
			return fmt.Errorf("the server refused the password in %s: %w", s.PassFile(), err)
		}
		if !s.Running() {
			return fmt.Errorf("the server exited: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer in %s: %w", readyTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) connect(ctx context.Context, role, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(URL(s.opts.Dir, role, db))
	if err != nil {
		return nil, fmt.Errorf("parse the local connection URL: %w", err)
	}
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.opts.Dir
	cmd.Env = childEnv()
	// Keep the server out of our process group so a Ctrl-C in a terminal
	// reaches us first and we stop it cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	return guarded(s.opts.Guard, cmd.CombinedOutput)
}

// childEnv is the whole environment of every child process, and so of the
// server: never the service's own, which holds its tokens.
func childEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz) // initdb takes the cluster's time zone from it
	}
	return env
}

func guarded(guard sync.Locker, f func() ([]byte, error)) ([]byte, error) {
	if guard != nil {
		guard.Lock()
		defer guard.Unlock()
	}
	return f()
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
