// Package config loads threatdesk's settings: environment variables (the
// contract of DESIGN.md) and the YAML file named by THREATDESK_CONFIG (orgs,
// channels, experts, SLAs, hunting policy). Everything is validated at
// start-up; each error names the setting and how to fix it, and no error or
// log line ever contains a secret.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"gopkg.in/yaml.v3"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Env holds the environment variables.
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
	PublicURL   string `env:"THREATDESK_PUBLIC_URL"`
	IngestToken Secret `env:"THREATDESK_INGEST_TOKEN"`
	// SecretKey is THREATDESK_SECRET_KEY as given (Config.Key is it parsed).
	SecretKey Secret `env:"THREATDESK_SECRET_KEY"`
	LogFormat string `env:"THREATDESK_LOG_FORMAT" envDefault:"json"`
	LogLevel  string `env:"THREATDESK_LOG_LEVEL" envDefault:"info"`

	SlackBotToken      Secret `env:"SLACK_BOT_TOKEN"`
	SlackAppToken      Secret `env:"SLACK_APP_TOKEN"`
	SlackSigningSecret Secret `env:"SLACK_SIGNING_SECRET"`
	SlackAPIURL        string `env:"SLACK_API_URL" envDefault:"https://slack.com/api/"`

	DiscordBotToken  Secret `env:"DISCORD_BOT_TOKEN"`
	DiscordAppID     string `env:"DISCORD_APP_ID"`
	DiscordPublicKey string `env:"DISCORD_PUBLIC_KEY"`
	DiscordAPIURL    string `env:"DISCORD_API_URL" envDefault:"https://discord.com/api/v10/"`
}

// Secret is a string that never prints itself.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText hides the value from encoders (slog's JSON handler among them).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value is the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Config is everything threatdesk is configured with.
type Config struct {
	Env
	File File
	// Key is THREATDESK_SECRET_KEY, parsed; nil when it is unset. Serving
	// needs it with DATABASE_URL; with the embedded database serve loads or
	// generates the key in the data dir (secrets.LoadOrCreate). Commands
	// that do not serve (migrate) do not need it.
	Key *secrets.Key
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
func (c *Config) SlackEnabled() bool { return c.SlackBotToken != "" }

// DiscordEnabled reports whether Discord is configured.
func (c *Config) DiscordEnabled() bool { return c.DiscordBotToken != "" }

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
	vars := map[string]string{}
	for _, name := range envNames {
		if v, ok := lookup(name); ok {
			vars[name] = v
		}
	}
	var c Config
	if err := env.ParseWithOptions(&c.Env, env.Options{Environment: vars}); err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	var errs []error
	if c.ConfigPath != "" {
		f, err := LoadFile(c.ConfigPath)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.File = *f
		}
	}
	for i := range c.File.Orgs {
		if name := c.File.Orgs[i].IngestTokenEnv; name != "" {
			v, _ := lookup(name)
			c.File.Orgs[i].IngestToken = Secret(v)
		}
	}
	if g := c.File.Hunting.Graph; g != nil {
		for i := range g.Tenants {
			if name := g.Tenants[i].ClientSecretEnv; name != "" {
				v, _ := lookup(name)
				g.Tenants[i].Secret = Secret(v)
			}
		}
	}
	c.File.applyDefaults()
	errs = append(errs, c.Env.validate()...)
	if c.SecretKey != "" {
		k, err := secrets.Parse(c.SecretKey.Value())
		if err != nil {
			errs = append(errs, fmt.Errorf("THREATDESK_SECRET_KEY: %w", err))
		}
		c.Key = k
	}
	errs = append(errs, c.File.validate(&c)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

var envNames = []string{
	"DATABASE_URL", "THREATDESK_DATA_DIR", "THREATDESK_HTTP_ADDR", "THREATDESK_METRICS_ADDR", "THREATDESK_CONFIG", "THREATDESK_PUBLIC_URL",
	"THREATDESK_INGEST_TOKEN", "THREATDESK_SECRET_KEY", "THREATDESK_LOG_FORMAT", "THREATDESK_LOG_LEVEL",
	"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL",
	"DISCORD_BOT_TOKEN", "DISCORD_APP_ID", "DISCORD_PUBLIC_KEY", "DISCORD_API_URL",
}

var (
	snowflake = regexp.MustCompile(`^[0-9]{15,21}$`)
	hexKey    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

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
	if t := e.IngestToken.Value(); t != "" && len(t) < 16 {
		bad("THREATDESK_INGEST_TOKEN is too short (%d characters): use at least 16 random characters, e.g. `openssl rand -hex 24`", len(t))
	}
	if t := e.SlackBotToken.Value(); t != "" && !strings.HasPrefix(t, "xoxb-") {
		bad("SLACK_BOT_TOKEN must start with xoxb- (the Bot User OAuth Token from the app's OAuth & Permissions page)")
	}
	if t := e.SlackAppToken.Value(); t != "" {
		if !strings.HasPrefix(t, "xapp-") {
			bad("SLACK_APP_TOKEN must start with xapp- (an app-level token with the connections:write scope, from Basic Information)")
		}
		if e.SlackBotToken == "" {
			bad("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode needs both")
		}
	}
	if e.SlackSigningSecret != "" && e.SlackBotToken == "" {
		bad("SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not: set the bot token too to enable Slack")
	}
	if e.SlackBotToken != "" && e.SlackAppToken == "" && e.SlackSigningSecret == "" {
		bad("SLACK_BOT_TOKEN is set but Slack events cannot arrive: set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
	}
	checkBase := func(name, v string) {
		u, err := url.Parse(v)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("%s %q must be an http(s) URL", name, v)
		case !strings.HasSuffix(u.Path, "/"):
			bad("%s %q must end with a slash, e.g. %s/", name, v, v)
		}
	}
	checkBase("SLACK_API_URL", e.SlackAPIURL)
	checkBase("DISCORD_API_URL", e.DiscordAPIURL)
	if e.DiscordBotToken != "" && e.DiscordAppID == "" {
		bad("DISCORD_APP_ID must be set with DISCORD_BOT_TOKEN (the Application ID from the Discord developer portal)")
	}
	if e.DiscordAppID != "" && !snowflake.MatchString(e.DiscordAppID) {
		bad("DISCORD_APP_ID %q must be a numeric Discord id (a snowflake, 15 to 21 digits)", e.DiscordAppID)
	}
	if e.DiscordPublicKey != "" {
		if !hexKey.MatchString(e.DiscordPublicKey) {
			bad("DISCORD_PUBLIC_KEY must be the 64 hex characters shown as Public Key on the app's General Information page")
		}
		if e.DiscordBotToken == "" {
			bad("DISCORD_PUBLIC_KEY is set but DISCORD_BOT_TOKEN is not: set the bot token too to enable Discord")
		}
	}
	return errs
}

// LoadFile reads and strictly decodes the YAML config file: an unknown key is
// an error (it is almost always a typo).
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("THREATDESK_CONFIG: read %s: %w", path, err)
	}
	return ParseFile(b)
}

// ParseFile strictly decodes a YAML config document (no defaults, no validation).
func ParseFile(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("THREATDESK_CONFIG: %w", err)
	}
	return &f, nil
}

// Duration is a time.Duration that YAML reads from strings like "90m",
// "4h" or "2d" (days are allowed for convenience).
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration must be a string such as 30s, 5m, 4h or 2d", n.Line)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration is time.ParseDuration plus a whole-day suffix "d".
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err == nil && fmt.Sprintf("%dd", days) == s {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a number and a unit, such as 30s, 5m, 4h or 2d", s)
	}
	return v, nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
