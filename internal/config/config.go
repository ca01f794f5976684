// Package config loads threatdesk's settings: the environment variables and
// the YAML file named by THREATDESK_CONFIG (README.md, "Configuration").
//
// Each setting belongs to the package that uses it, which owns its type, its
// default and its check: the file decodes straight into bot.Config (desk,
// experts, managers, admins, and each org's chat), casework.Config (cases),
// hunting.Config (hunting, and each org's tenants and tokens) and
// oncall.Config (oncall); the SLACK_* and DISCORD_* variables into the
// adapters' Config types. This package only gathers them: it hands each
// package its part of an orgs[] entry, reads the secrets the file names from
// the environment, checks what spans packages (a time zone, rotation members
// who are experts), and reports every problem at once, each naming the
// setting and how to fix it. No error or log line ever contains a secret.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/caarlos0/env/v11"

	discordadapter "github.com/threatdesk/threatdesk/adapters/discord"
	slackadapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Env holds the environment variables. THREATDESK_INGEST_TOKEN is the
// hunting package's (File.Hunting.IngestToken).
type Env struct {
	DatabaseURL string `env:"DATABASE_URL"`
	DataDir     string `env:"THREATDESK_DATA_DIR"`
	HTTPAddr    string `env:"THREATDESK_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// MetricsAddr, when set, serves /metrics on a listener of its own (and
	// not on HTTPAddr), e.g. for a scraper on an internal network.
	MetricsAddr string `env:"THREATDESK_METRICS_ADDR"`
	ConfigPath  string `env:"THREATDESK_CONFIG"`
	// PublicURL is the base URL where people reach threatdesk's pages
	// (upload links, the web tracker, Slack install), e.g.
	// https://threatdesk.example.com. Unset: PublicBase falls back to
	// http:// and the HTTP address, and says the links only work locally.
	PublicURL string `env:"THREATDESK_PUBLIC_URL"`
	// SecretKey is THREATDESK_SECRET_KEY as given (Config.Key is it parsed).
	SecretKey secrets.String `env:"THREATDESK_SECRET_KEY"`
	LogFormat string         `env:"THREATDESK_LOG_FORMAT" envDefault:"json"`
	LogLevel  string         `env:"THREATDESK_LOG_LEVEL" envDefault:"info"`
	// Slack and Discord are the adapters' settings, from the SLACK_* and
	// DISCORD_* variables (their env tags), with defaults filled.
	Slack   slackadapter.Config
	Discord discordadapter.Config
}

// Config is everything threatdesk is configured with.
type Config struct {
	Env
	File File
	// Key is THREATDESK_SECRET_KEY, parsed; nil when it is unset. Serving
	// needs it with DATABASE_URL; with the embedded database serve loads or
	// generates the key in the data dir (secrets.LoadOrCreate). Commands
	// that do not serve (migrate) do not need it.
	Key *secrets.Key
	// lookup is the environment Load read, for ReadFile (reload.go).
	lookup func(string) (string, bool)
}

// PublicBase is the base URL of threatdesk's pages, without a trailing
// slash: THREATDESK_PUBLIC_URL, or, unset, http:// and the HTTP address
// (localhost for an unspecified host) with local = true: such links only
// work on the machine threatdesk runs on, and should say so.
func (c *Config) PublicBase() (base string, local bool) {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/"), false
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return "http://" + c.HTTPAddr, true
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port), true
}

// SlackEnabled reports whether Slack is configured.
func (c *Config) SlackEnabled() bool { return c.Slack.Enabled() }

// DiscordEnabled reports whether Discord is configured.
func (c *Config) DiscordEnabled() bool { return c.Discord.Enabled() }

// DefaultDataDir is where the embedded PostgreSQL and other local state live
// when THREATDESK_DATA_DIR is unset: $XDG_DATA_HOME/threatdesk, else
// ~/.local/share/threatdesk; for root, /var/lib/threatdesk (the server runs
// as the postgres user, which cannot enter /root).
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/threatdesk"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "threatdesk")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "threatdesk")
	}
	return filepath.Join(os.TempDir(), "threatdesk")
}

// Load reads the environment (through lookup, os.LookupEnv when nil) and the
// config file, fills defaults and validates. All problems are reported
// together, one per line.
func Load(lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var c Config
	c.lookup = lookup
	if err := parseEnv(&c.Env, lookup); err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	c.Slack = c.Slack.WithDefaults()
	c.Discord = c.Discord.WithDefaults()
	var errs []error
	if c.ConfigPath != "" {
		f, err := LoadFile(c.ConfigPath)
		if err != nil {
			errs = append(errs, err)
		}
		if f != nil { // what could be read is checked too: every problem at once
			c.File = *f
		}
	}
	c.File.gather(lookup)
	errs = append(errs, c.Env.validate()...)
	if c.SecretKey != "" {
		k, err := secrets.Parse(c.SecretKey.Value())
		if err != nil {
			errs = append(errs, fmt.Errorf("THREATDESK_SECRET_KEY: %w", err))
		}
		c.Key = k
	}
	errs = append(errs, c.File.validate()...)
	errs = append(errs, c.Env.checkFile(&c.File)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkFile checks what the file must say given the environment. With Add
// to Slack (SLACK_CLIENT_ID) customer workspaces join, and a Slack user id
// names a person only within its workspace: the desk's workspace must be
// named, so that the staff roles hold only there (unnamed, they held in
// every workspace while one customer workspace was configured).
// A desk on Discord names no Slack workspace at all: staff listed by Slack
// id would hold their roles in every customer workspace, so they are
// refused.
func (e *Env) checkFile(f *File) []error {
	if e.Slack.ClientID == "" {
		return nil
	}
	b := f.Bot
	switch {
	case b.Desk.Slack != nil && b.Desk.Slack.Team == "":
		return []error{errors.New("desk.slack.team is required with Add to Slack (SLACK_CLIENT_ID): set it to the team id of the desk's own workspace, so that the experts, managers and admins hold their roles only there")}
	case b.Desk.Slack == nil && len(b.Experts.Slack)+len(b.Managers.Slack)+len(b.Admins.Slack) > 0:
		return []error{errors.New("experts, managers and admins cannot be listed by Slack user id with Add to Slack (SLACK_CLIENT_ID) while the desk is on Discord: " +
			"a Slack user id names a person only within one workspace, and no workspace is the desk's. List them under discord, or put the desk on Slack with desk.slack.team")}
	}
	return nil
}

// parseEnv reads every variable Env's fields (and the adapters' Config
// types in it) name, through lookup.
func parseEnv(e *Env, lookup func(string) (string, bool)) error {
	params, err := env.GetFieldParams(e)
	if err != nil {
		return err
	}
	vars := map[string]string{}
	for _, p := range params {
		if v, ok := lookup(p.Key); ok {
			vars[p.Key] = v
		}
	}
	return env.ParseWithOptions(e, env.Options{Environment: vars})
}

// validate checks the variables that are this package's, then each
// adapter's (their Validate).
func (e *Env) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if e.DatabaseURL != "" {
		u, err := url.Parse(e.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("DATABASE_URL must be a postgres:// URL such as postgres://user:password@host:5432/threatdesk (or unset it to use the embedded PostgreSQL)")
		}
	}
	if _, _, err := net.SplitHostPort(e.HTTPAddr); err != nil {
		bad("THREATDESK_HTTP_ADDR %q must be host:port, for example 127.0.0.1:8080 or :8080", e.HTTPAddr)
	}
	if e.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(e.MetricsAddr); err != nil {
			bad("THREATDESK_METRICS_ADDR %q must be host:port, for example 10.0.0.5:9090 or :9090 (or unset it to serve /metrics on THREATDESK_HTTP_ADDR)", e.MetricsAddr)
		} else if e.MetricsAddr == e.HTTPAddr {
			bad("THREATDESK_METRICS_ADDR must differ from THREATDESK_HTTP_ADDR (%s): it is a listener of its own", e.HTTPAddr)
		}
	}
	if e.PublicURL != "" {
		u, err := url.Parse(e.PublicURL)
		switch {
		case err == nil && u.User != nil:
			// Not repeated: the part before @ may be a password.
			bad("THREATDESK_PUBLIC_URL must be an http(s) URL without a user or password, such as https://threatdesk.example.com")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("THREATDESK_PUBLIC_URL %q must be an http(s) URL such as https://threatdesk.example.com (the address people open threatdesk's pages at)", e.PublicURL)
		case u.RawQuery != "" || u.Fragment != "":
			bad("THREATDESK_PUBLIC_URL %q must not have a query or fragment: give the base URL, e.g. https://threatdesk.example.com", e.PublicURL)
		}
	}
	switch e.LogFormat {
	case "json", "text":
	default:
		bad("THREATDESK_LOG_FORMAT %q must be json or text", e.LogFormat)
	}
	switch strings.ToLower(e.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("THREATDESK_LOG_LEVEL %q must be debug, info, warn or error", e.LogLevel)
	}
	return append(errs, e.Slack.Validate(), e.Discord.Validate())
}
