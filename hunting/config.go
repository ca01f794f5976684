package hunting

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Config is the hunting policy. Its yaml keys are the `hunting` block of
// the config file (README.md); each org's tenants, notify_score and
// ingest_token_env are in its orgs[] entry, which internal/config hands over
// as Orgs, with the tokens read from the environment.
//
// Zero durations and sizes take the defaults (so a GroupWait of 0 means 30s;
// to post without waiting use a tiny positive value such as 1ns). New fills
// them (WithDefaults) and checks the result (Validate).
type Config struct {
	// Orgs route alerts: each org's tenants, its notification threshold and
	// its own ingest token. A tenant belongs to one org; alerts of any other
	// tenant are rejected.
	Orgs []Org `yaml:"-"`
	// IngestToken (THREATDESK_INGEST_TOKEN) is the admin-wide bearer token
	// of POST /api/v1/alerts: it may post alerts of any org's tenants (meant
	// for single-org setups and for an operator's own forwarder). At least 16
	// characters; optional.
	IngestToken secrets.String `yaml:"-"`
	// Window is how far apart in time two alerts sharing an entity may be and
	// still correlate, and the span over which prevalence is measured
	// (hunting.correlation_window; default 24h, at least 1m).
	Window time.Duration `yaml:"correlation_window"`
	// ChainWindow: alerts linked by a rare entity (a file hash or account
	// seen on at most two devices in the window) keep joining an open
	// incident for this long after its latest sighting of the entity
	// (hunting.chain_window; default 7d, at least Window). Other links keep
	// Window.
	ChainWindow time.Duration `yaml:"chain_window"`
	// CommonEntityDevices: an entity seen on this many devices or more inside
	// the window stops being a join key (hunting.common_entity_devices;
	// default 10, at least 2).
	CommonEntityDevices int `yaml:"common_entity_devices"`
	// NotifyScore is the score (1-100) at which an incident is notified
	// (hunting.notify_score; default 50). An org's own overrides it.
	NotifyScore int `yaml:"notify_score"`
	// RepeatSeverity: unacknowledged incidents at or above this severity are
	// repeated every RepeatInterval (hunting.repeat_severity: informational,
	// low, medium or high; default high). Expert incidents always are.
	RepeatSeverity Severity `yaml:"repeat_severity"`
	// GroupWait is how long to wait before the first post so a burst lands
	// as one card (hunting.group_wait; default 30s). Expert-service alerts
	// are posted at once.
	GroupWait time.Duration `yaml:"group_wait"`
	// GroupInterval is the least time between two updates of a card
	// (hunting.group_interval; default 5m).
	GroupInterval time.Duration `yaml:"group_interval"`
	// RepeatInterval re-notifies an unacknowledged incident at or above
	// RepeatSeverity (hunting.repeat_interval; default 4h).
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// SweepInterval is how often the scheduled sweep looks for due
	// notifications (default 5s).
	SweepInterval time.Duration `yaml:"-"`
	// RescoreInterval: the sweep re-scores open incidents untouched for this
	// long (default 10m), so the recency part of a score decays.
	RescoreInterval time.Duration `yaml:"-"`
	// MaxBodyBytes caps a request body (hunting.max_body_bytes; default 16
	// MiB, at least 1024); MaxItems caps the alerts in one request
	// (hunting.max_items; default 1000, at most 100000).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	MaxItems     int   `yaml:"max_items"`
	// Now is the clock (default time.Now); tests pass a fake.
	Now func() time.Time `yaml:"-"`
	// Graph, when set, pulls alerts from Microsoft Graph on a schedule
	// (hunting.graph).
	Graph *GraphConfig `yaml:"graph"`

	// tenants routes a tenant id (lower case) to its org; built from Orgs
	// by WithDefaults.
	tenants map[string]string
	// minGraphInterval is the shortest Graph.Interval accepted
	// (MinGraphInterval); only tests lower it, to see scheduled pulls.
	minGraphInterval time.Duration
}

// Org is hunting's part of an orgs[] entry of the config file.
type Org struct {
	// ID is the org's id (orgs[].id, checked by the bot's config).
	ID string `yaml:"-"`
	// Tenants are the Microsoft Entra tenant ids (GUIDs, Defender
	// aadTenantId / Graph tenantId) whose alerts belong to the org
	// (orgs[].tenants).
	Tenants []string `yaml:"tenants"`
	// NotifyScore overrides Config.NotifyScore for the org (orgs[].notify_score, 1-100).
	NotifyScore *int `yaml:"notify_score"`
	// IngestTokenEnv names the environment variable that holds IngestToken
	// (orgs[].ingest_token_env, e.g. CONTOSO_INGEST_TOKEN); tokens never go
	// in the file. Optional.
	IngestTokenEnv string `yaml:"ingest_token_env"`
	// IngestToken is the org's own bearer token, which only accepts alerts
	// of the org's tenants: a request with an alert of any other tenant is
	// refused whole (403). At least 16 characters, distinct from every other
	// token; the org needs tenants. Read from IngestTokenEnv at load.
	IngestToken secrets.String `yaml:"-"`
}

// GraphConfig turns on pulling alerts from Microsoft Graph
// (GET /security/alerts_v2) on a schedule, per tenant, with OAuth2 client
// credentials and a lastUpdateDateTime watermark kept in the database
// (hunting.graph).
type GraphConfig struct {
	// Tenants to pull, each with its app registration
	// (SecurityAlert.Read.All), at least one. Each tenant must also be one
	// of an org's tenants (that is how its alerts find their org).
	Tenants []GraphTenant `yaml:"tenants"`
	// Interval between pulls (default 1m, at least 10s).
	Interval time.Duration `yaml:"interval"`
	// BaseURL is the Graph API root (default https://graph.microsoft.com/v1.0/);
	// LoginURL the identity platform (default https://login.microsoftonline.com/).
	// Both http(s) URLs; a missing trailing slash is added.
	BaseURL  string `yaml:"base_url"`
	LoginURL string `yaml:"login_url"`
	// Settle is how far behind Graph's time the watermark stays (default
	// 5m, from 1m to 1h): Graph may list an alert a while after its
	// lastUpdateDateTime, and one listed later than this is missed. Each
	// pull reads that much again (it comes back unchanged); new alerts
	// still arrive at once.
	Settle time.Duration `yaml:"settle"`
	// PageSize is $top (default 500; Graph allows up to 2000).
	PageSize int `yaml:"-"`
	// MaxPages bounds one pull per tenant (default 20); the rest comes next time.
	MaxPages int `yaml:"-"`
	// Lookback is how far back the first pull of a tenant reaches (default 24h).
	Lookback time.Duration `yaml:"-"`
	// HoldFor is how long a rejected alert is fetched again, by its id, at
	// every pull before it is given up (default 7 days).
	HoldFor time.Duration `yaml:"-"`
	// HeldPerPull bounds how many held alerts one pull of a tenant fetches
	// again (default 50), the longest untried first.
	HeldPerPull int `yaml:"-"`
	// HTTPClient defaults to one with a 30 s timeout.
	HTTPClient *http.Client `yaml:"-"`
}

// GraphTenant is one tenant's app registration (hunting.graph.tenants[]).
type GraphTenant struct {
	// TenantID is the tenant's GUID.
	TenantID string `yaml:"tenant_id"`
	// ClientID is the app registration's Application (client) ID, a GUID.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable holding the client
	// secret; secrets never go in the file.
	ClientSecretEnv string `yaml:"client_secret_env"`
	// ClientSecret is the client secret, read from ClientSecretEnv at load.
	ClientSecret secrets.String `yaml:"-"`
}

// Defaults.
const (
	DefaultWindow              = 24 * time.Hour
	DefaultChainWindow         = 7 * 24 * time.Hour
	DefaultCommonEntityDevices = 10
	DefaultNotifyScore         = 50
	DefaultGroupWait           = 30 * time.Second
	DefaultGroupInterval       = 5 * time.Minute
	DefaultRepeatInterval      = 4 * time.Hour
	DefaultSweepInterval       = 5 * time.Second
	DefaultMaxBodyBytes        = 16 << 20
	DefaultMaxItems            = 1000
	DefaultGraphInterval       = time.Minute
	// MinGraphInterval is the shortest time between two Graph pulls.
	MinGraphInterval = 10 * time.Second
)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	d := c
	d.Window = cmp.Or(d.Window, DefaultWindow)
	d.ChainWindow = cmp.Or(d.ChainWindow, max(DefaultChainWindow, d.Window))
	d.CommonEntityDevices = cmp.Or(d.CommonEntityDevices, DefaultCommonEntityDevices)
	d.NotifyScore = cmp.Or(d.NotifyScore, DefaultNotifyScore)
	d.RepeatSeverity = cmp.Or(d.RepeatSeverity, SeverityHigh)
	d.GroupWait = cmp.Or(d.GroupWait, DefaultGroupWait)
	d.GroupInterval = cmp.Or(d.GroupInterval, DefaultGroupInterval)
	d.RepeatInterval = cmp.Or(d.RepeatInterval, DefaultRepeatInterval)
	d.SweepInterval = cmp.Or(d.SweepInterval, DefaultSweepInterval)
	d.RescoreInterval = cmp.Or(d.RescoreInterval, 10*time.Minute)
	d.MaxBodyBytes = cmp.Or(d.MaxBodyBytes, DefaultMaxBodyBytes)
	d.MaxItems = cmp.Or(d.MaxItems, DefaultMaxItems)
	if d.Now == nil {
		d.Now = time.Now
	}
	d.tenants = map[string]string{}
	for _, o := range d.Orgs {
		for _, t := range o.Tenants {
			if t := normTenant(t); d.tenants[t] == "" {
				d.tenants[t] = o.ID
			}
		}
	}
	d.Graph = c.Graph.withDefaults()
	d.minGraphInterval = cmp.Or(d.minGraphInterval, MinGraphInterval)
	return d
}

func normTenant(t string) string { return strings.ToLower(strings.TrimSpace(t)) }

func (g *GraphConfig) withDefaults() *GraphConfig {
	if g == nil {
		return nil
	}
	d := *g
	d.Interval = cmp.Or(d.Interval, DefaultGraphInterval)
	d.BaseURL = cmp.Or(d.BaseURL, "https://graph.microsoft.com/v1.0/")
	d.LoginURL = cmp.Or(d.LoginURL, "https://login.microsoftonline.com/")
	if !strings.HasSuffix(d.BaseURL, "/") {
		d.BaseURL += "/"
	}
	if !strings.HasSuffix(d.LoginURL, "/") {
		d.LoginURL += "/"
	}
	d.PageSize = cmp.Or(d.PageSize, 500)
	d.MaxPages = cmp.Or(d.MaxPages, 20)
	d.Lookback = cmp.Or(d.Lookback, 24*time.Hour)
	d.Settle = cmp.Or(d.Settle, 5*time.Minute)
	d.HoldFor = cmp.Or(d.HoldFor, 7*24*time.Hour)
	d.HeldPerPull = cmp.Or(d.HeldPerPull, 50)
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	d.Tenants = append([]GraphTenant(nil), g.Tenants...)
	for i := range d.Tenants {
		d.Tenants[i].TenantID = normTenant(d.Tenants[i].TenantID)
	}
	return &d
}

var (
	guidPattern    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// MinTokenLength is the shortest ingest token accepted.
const MinTokenLength = 16

// Validate reports every problem of c (after WithDefaults), each naming the
// key of the config file (or the environment variable) and how to fix it,
// joined into one error; nil when c is usable. No error repeats a token or
// a secret.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	tokens := map[string]string{} // token -> where it is set
	if t := c.IngestToken.Value(); t != "" {
		if len(t) < MinTokenLength {
			bad("THREATDESK_INGEST_TOKEN is too short (%d characters): use at least 16 random characters, e.g. `openssl rand -hex 24`", len(t))
		}
		tokens[t] = "THREATDESK_INGEST_TOKEN"
	}
	tenants := map[string]string{} // lower-case tenant -> org
	for i, o := range c.Orgs {
		at := fmt.Sprintf("orgs[%d] (%s)", i, o.ID)
		for _, t := range o.Tenants {
			switch {
			case !guidPattern.MatchString(t):
				bad("%s.tenants: %q is not a tenant id: use the GUID of the Microsoft Entra tenant (Defender aadTenantId, Graph tenantId)", at, t)
			case tenants[normTenant(t)] != "":
				bad("%s.tenants: %s already belongs to org %s: a tenant routes to one org", at, t, tenants[normTenant(t)])
			default:
				tenants[normTenant(t)] = o.ID
			}
		}
		if n := o.NotifyScore; n != nil && (*n < 1 || *n > 100) {
			bad("%s.notify_score %d must be between 1 and 100", at, *n)
		}
		errs = append(errs, o.validateToken(at, tokens)...)
	}
	if c.NotifyScore < 1 || c.NotifyScore > 100 {
		bad("hunting.notify_score %d must be between 1 and 100", c.NotifyScore)
	}
	if c.Window < time.Minute {
		bad("hunting.correlation_window %s is too short: use at least 1m (default 24h)", c.Window)
	}
	if c.ChainWindow < c.Window {
		bad("hunting.chain_window %s is shorter than hunting.correlation_window %s: use at least that (default 7d)", c.ChainWindow, c.Window)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"group_wait", c.GroupWait}, {"group_interval", c.GroupInterval}, {"repeat_interval", c.RepeatInterval}} {
		if d.v <= 0 {
			bad("hunting.%s must be a positive duration", d.name)
		}
	}
	if c.SweepInterval <= 0 || c.RescoreInterval <= 0 {
		bad("hunting: the sweep and rescore intervals must be positive")
	}
	if c.CommonEntityDevices < 2 {
		bad("hunting.common_entity_devices %d must be at least 2", c.CommonEntityDevices)
	}
	if c.MaxBodyBytes < 1024 {
		bad("hunting.max_body_bytes %d is too small: use at least 1024 (default %d)", c.MaxBodyBytes, DefaultMaxBodyBytes)
	}
	if c.MaxItems < 1 || c.MaxItems > 100000 {
		bad("hunting.max_items %d must be between 1 and 100000 (default %d)", c.MaxItems, DefaultMaxItems)
	}
	if c.RepeatSeverity.Rank() == 0 && c.RepeatSeverity != SeverityInformational {
		bad("hunting.repeat_severity %q must be informational, low, medium or high", c.RepeatSeverity)
	}
	if err := c.Graph.validate(tenants, c.minGraphInterval); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateToken checks the org's own ingest token; tokens maps the tokens
// seen so far to where they are set, and gets this one.
func (o Org) validateToken(at string, tokens map[string]string) []error {
	tok := o.IngestToken.Value()
	if o.IngestTokenEnv == "" && tok == "" {
		return nil
	}
	name := cmp.Or(o.IngestTokenEnv, "IngestToken")
	var err error
	switch {
	case o.IngestTokenEnv != "" && !envNamePattern.MatchString(o.IngestTokenEnv):
		// The value is not repeated: it may be a token pasted by mistake.
		err = fmt.Errorf("%s.ingest_token_env must be the name of an environment variable, such as CONTOSO_INGEST_TOKEN, not the token itself (tokens never go in the file)", at)
	case tok == "":
		err = fmt.Errorf("%s: environment variable %s (ingest_token_env) is not set or empty", at, name)
	case len(tok) < MinTokenLength:
		err = fmt.Errorf("%s: the token in %s is too short (%d characters): use at least 16 random characters, e.g. `openssl rand -hex 24`", at, name, len(tok))
	case tokens[tok] != "":
		err = fmt.Errorf("%s: the token in %s is the same as %s: every org needs a token of its own, distinct from THREATDESK_INGEST_TOKEN", at, name, tokens[tok])
	case len(o.Tenants) == 0:
		err = fmt.Errorf("%s.ingest_token_env is set but the org lists no tenants: its token could accept nothing; add its tenants", at)
	default:
		tokens[tok] = name
		if o.IngestTokenEnv == "" {
			tokens[tok] = "the ingest token of org " + o.ID
		}
		return nil
	}
	return []error{err}
}

// validate checks the Graph pull against tenants, every org's tenant
// (lower case) and its org, and the shortest interval allowed.
func (g *GraphConfig) validate(tenants map[string]string, minInterval time.Duration) error {
	if g == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(g.Tenants) == 0 {
		bad("hunting.graph.tenants is empty: list each tenant to pull with its tenant_id, client_id and client_secret_env, or remove hunting.graph")
	}
	if g.Interval < minInterval {
		bad("hunting.graph.interval %s is too short: use at least %s (default 1m)", g.Interval, minInterval)
	}
	for _, u := range []struct{ name, v string }{{"base_url", g.BaseURL}, {"login_url", g.LoginURL}} {
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			bad("hunting.graph.%s %q must be an http(s) URL", u.name, u.v)
		}
	}
	if g.Settle < time.Minute || g.Settle > time.Hour {
		bad("hunting.graph.settle %s: use 1m to 1h (default 5m)", g.Settle)
	}
	if g.PageSize < 1 || g.PageSize > 2000 {
		bad("hunting: graph page size %d: use 1-2000", g.PageSize)
	}
	for i, t := range g.Tenants {
		at := fmt.Sprintf("hunting.graph.tenants[%d]", i)
		if _, ok := tenants[normTenant(t.TenantID)]; !ok {
			bad("%s.tenant_id %q is not in any org's tenants: add it to the org whose alerts it holds", at, t.TenantID)
		}
		if !guidPattern.MatchString(t.ClientID) {
			bad("%s.client_id %q must be the app registration's Application (client) ID, a GUID", at, t.ClientID)
		}
		switch {
		case t.ClientSecret != "":
		case t.ClientSecretEnv == "":
			bad("%s.client_secret_env must name the environment variable that holds the client secret", at)
		default:
			bad("%s: environment variable %s (client_secret_env) is not set or empty", at, t.ClientSecretEnv)
		}
	}
	return errors.Join(errs...)
}

// notifyScore is org's notification threshold.
func (c *Config) notifyScore(org string) int {
	for _, o := range c.Orgs {
		if o.ID == org && o.NotifyScore != nil {
			return *o.NotifyScore
		}
	}
	return c.NotifyScore
}

// OtherOrgLabel is the org label of metrics about no configured org (an
// alert of an unknown tenant): the label's values are bounded by the
// configured orgs.
const OtherOrgLabel = "_other"

// orgLabel is org as a metric label: itself when configured, else
// OtherOrgLabel.
func (c Config) orgLabel(org string) string {
	for _, o := range c.Orgs {
		if o.ID == org && org != "" {
			return org
		}
	}
	return OtherOrgLabel
}
