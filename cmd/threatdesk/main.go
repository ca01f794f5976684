// Command threatdesk runs the threatdesk service: targeted attack
// notifications and experts on demand, in Slack and Discord.
//
// Usage:
//
//	threatdesk [serve]   run the service (the default)
//	threatdesk migrate   apply database migrations and exit
//	threatdesk version   print the version
//
// Configuration comes from the environment and the YAML file named by
// THREATDESK_CONFIG; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `threatdesk: chat-ops for a SOC and the threat experts who back it.

Usage:
  threatdesk [serve]     run the service (the default)
  threatdesk migrate     apply database migrations and exit
  threatdesk version     print the version and exit

Run "threatdesk <command> --help" for a command's details.
Configuration comes from environment variables and the YAML file named by
THREATDESK_CONFIG; README.md documents both.
`

func main() {
	var guard sync.Locker
	if os.Getpid() == 1 {
		// PID 1 (a container without an init) inherits every orphan, the
		// embedded PostgreSQL's postmaster among them: reap them.
		r := &reaper{}
		go r.run()
		guard = r.guard()
	}
	os.Exit(runWith(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv, guard))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	return runWith(args, stdout, stderr, lookup, nil)
}

// runWith is run with the guard of a reaping PID 1 (nil otherwise).
func runWith(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), guard sync.Locker) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(args, stdout, stderr, lookup, guard)
	case "migrate":
		err = cmdMigrate(args, stdout, stderr, lookup, guard)
	case "version":
		err = cmdVersion(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "threatdesk: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "threatdesk %s: %v\n", cmd, err)
		return 1
	}
}

var errUsage = errors.New("usage")

func newFlags(name, help string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, help)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "threatdesk %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

const envHelp = `
Environment:
  DATABASE_URL              PostgreSQL URL; unset: a local PostgreSQL is started under the data dir
  THREATDESK_DATA_DIR       local state (embedded PostgreSQL); default /var/lib/threatdesk as root,
                            else $XDG_DATA_HOME/threatdesk or ~/.local/share/threatdesk
  THREATDESK_HTTP_ADDR      HTTP listen address (default 127.0.0.1:8080)
  THREATDESK_METRICS_ADDR   optional listener of its own for /metrics (then not served on the HTTP address)
  THREATDESK_CONFIG         YAML config: orgs, channels, experts, SLAs, hunting policy
  THREATDESK_PUBLIC_URL     base URL of threatdesk's pages (sample upload links), e.g. https://threatdesk.example.com
  THREATDESK_INGEST_TOKEN   bearer token for POST /api/v1/alerts
  THREATDESK_LOG_FORMAT     json (default) or text
  THREATDESK_LOG_LEVEL      debug, info (default), warn, error
  SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL
  DISCORD_BOT_TOKEN, DISCORD_APP_ID, DISCORD_PUBLIC_KEY, DISCORD_API_URL
`

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "Usage: threatdesk version\n\nPrints the version, the commit and the Go version.\n", stdout, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v := buildVersion()
	fmt.Fprintf(stdout, "threatdesk %s (commit %s, %s)\n", v.Version, v.Revision, v.GoVersion)
	return nil
}

type versionInfo struct{ Version, Revision, GoVersion string }

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Revision: "unknown", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v.Revision = s.Value[:12]
			}
		}
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
	}
	return v
}

// prepare parses a command's flags, then loads and validates the configuration
// and builds the logger every command that touches the service needs.
func prepare(name, help string, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) (*config.Config, *slog.Logger, error) {
	fs := newFlags(name, help, stdout, stderr)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(lookup)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration is invalid:\n%w", err)
	}
	return cfg, newLogger(cfg, stderr), nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdMigrate(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool), guard sync.Locker) error {
	cfg, log, err := prepare("migrate", "Usage: threatdesk migrate\n\nApplies the database migrations that are not applied yet, then exits.\nSafe to run from several replicas at once.\n"+envHelp,
		args, stdout, stderr, lookup)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	db, err := openDatabase(ctx, cfg, log, guard)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	n, err := migrateDatabase(ctx, db, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %s; the schema is current\n", plural.S(n, "migration"))
	return nil
}
