package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	// The time zone database, built in: timezone names validate and resolve
	// the same on every host, including images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/threatdesk/threatdesk/oncall"
)

// File is the YAML config file. README.md documents every key.
type File struct {
	// Timezone is the IANA name of the time zone in which times are shown
	// and hand-overs happen, e.g. Europe/London (default UTC).
	Timezone string `yaml:"timezone"`
	// Location is Timezone, loaded by Load; nil in a File that was only
	// parsed.
	Location *time.Location `yaml:"-"`
	Orgs     []Org          `yaml:"orgs"`
	Desk     Desk           `yaml:"desk"`
	Experts  Users          `yaml:"experts"`
	Managers Users          `yaml:"managers"`
	Admins   Users          `yaml:"admins"`
	Cases    Cases          `yaml:"cases"`
	Hunting  Hunting        `yaml:"hunting"`
	Delivery Delivery       `yaml:"delivery"`
	// Oncall is the experts' on-call rotation; package oncall owns its
	// schema, defaults and checks. Its members must be experts (checked
	// here, with the other problems).
	Oncall oncall.Config `yaml:"oncall"`
}

// Org is one customer organisation: its Microsoft tenants and its chat.
type Org struct {
	ID      string      `yaml:"id"`
	Name    string      `yaml:"name"`
	Tenants []string    `yaml:"tenants"`
	Slack   *SlackOrg   `yaml:"slack"`
	Discord *DiscordOrg `yaml:"discord"`
	// CreditsPerQuarter is the quarterly allowance of expert cases (default 10).
	CreditsPerQuarter *int `yaml:"credits_per_quarter"`
	// NotifyScore overrides hunting.notify_score for this org.
	NotifyScore *int `yaml:"notify_score"`
	// IngestTokenEnv names the environment variable holding this org's own
	// ingest token, which only accepts alerts of this org's tenants.
	IngestTokenEnv string `yaml:"ingest_token_env"`
	// IngestToken is filled from IngestTokenEnv at load.
	IngestToken Secret `yaml:"-"`
}

// SlackOrg maps an org to a Slack workspace and channels.
type SlackOrg struct {
	Team     string   `yaml:"team"`
	Channels []string `yaml:"channels"`
}

// DiscordOrg maps an org to a Discord guild and channels.
type DiscordOrg struct {
	Guild    string   `yaml:"guild"`
	Channels []string `yaml:"channels"`
}

// Desk is where experts work cases from every org.
type Desk struct {
	Slack   *SlackDesk   `yaml:"slack"`
	Discord *DiscordDesk `yaml:"discord"`
}

// SlackDesk is a desk channel on Slack.
type SlackDesk struct {
	Team    string `yaml:"team"`
	Channel string `yaml:"channel"`
}

// DiscordDesk is a desk channel on Discord.
type DiscordDesk struct {
	Guild   string `yaml:"guild"`
	Channel string `yaml:"channel"`
}

// Users lists user ids per platform.
type Users struct {
	Slack   []string `yaml:"slack"`
	Discord []string `yaml:"discord"`
}

// Cases configures experts on demand.
type Cases struct {
	// ReopenWindow is how long after concluded or closed a requester may reopen (default 14d).
	ReopenWindow Duration `yaml:"reopen_window"`
	// CreditsRolloverMax caps the balance after unused credits roll over (default 20).
	CreditsRolloverMax int `yaml:"credits_rollover_max"`
	SLA                SLA `yaml:"sla"`
}

// SLA holds the targets per priority.
type SLA struct {
	High   Target `yaml:"high"`
	Medium Target `yaml:"medium"`
	Low    Target `yaml:"low"`
	// WarnAt is the fraction of a target at which a warning is posted (default 0.75).
	WarnAt float64 `yaml:"warn_at"`
	// CheckInterval is how often the SLA clocks are checked for warnings
	// and breaches that fell due (default 1m, at least 1s).
	CheckInterval Duration `yaml:"check_interval"`
}

// Target is a pair of SLA targets.
type Target struct {
	FirstResponse Duration `yaml:"first_response"`
	Conclusion    Duration `yaml:"conclusion"`
}

// Delivery tunes the outbox workers that post to the chat platforms.
type Delivery struct {
	// Lease is how long a replica keeps an outbox event it claimed before
	// another replica may take it over: how long the messages of a replica
	// that died wait for another (default 2m, at least 5s).
	Lease Duration `yaml:"lease"`
}

// Hunting configures correlation, scoring and the notification policy.
type Hunting struct {
	CorrelationWindow   Duration `yaml:"correlation_window"`
	NotifyScore         int      `yaml:"notify_score"`
	CommonEntityDevices int      `yaml:"common_entity_devices"`
	GroupWait           Duration `yaml:"group_wait"`
	GroupInterval       Duration `yaml:"group_interval"`
	RepeatInterval      Duration `yaml:"repeat_interval"`
	MaxBodyBytes        int64    `yaml:"max_body_bytes"`
	MaxItems            int      `yaml:"max_items"`
	// RepeatSeverity: unacknowledged incidents at or above it are repeated (default high).
	RepeatSeverity string `yaml:"repeat_severity"`
	// Graph, when set, pulls alerts from Microsoft Graph on a schedule.
	Graph *Graph `yaml:"graph"`
}

// Graph configures the scheduled pull of alerts_v2 from Microsoft Graph.
type Graph struct {
	Interval Duration      `yaml:"interval"`
	BaseURL  string        `yaml:"base_url"`
	LoginURL string        `yaml:"login_url"`
	Tenants  []GraphTenant `yaml:"tenants"`
}

// GraphTenant is one tenant's app registration. The client secret is read
// from the environment variable named by ClientSecretEnv, never from the file.
type GraphTenant struct {
	TenantID        string `yaml:"tenant_id"`
	ClientID        string `yaml:"client_id"`
	ClientSecretEnv string `yaml:"client_secret_env"`
	// Secret is filled from the environment at load.
	Secret Secret `yaml:"-"`
}

// Defaults, documented in README.md.
const (
	DefaultCreditsPerQuarter   = 10
	DefaultCreditsRolloverMax  = 20
	DefaultReopenWindow        = 14 * 24 * time.Hour
	DefaultWarnAt              = 0.75
	DefaultSLACheckInterval    = time.Minute
	DefaultDeliveryLease       = 2 * time.Minute
	DefaultCorrelationWindow   = 24 * time.Hour
	DefaultNotifyScore         = 50
	DefaultCommonEntityDevices = 10
	DefaultGroupWait           = 30 * time.Second
	DefaultGroupInterval       = 5 * time.Minute
	DefaultRepeatInterval      = 4 * time.Hour
	DefaultMaxBodyBytes        = 16 << 20
	DefaultMaxItems            = 1000
)

// DefaultSLA is the default target pair per priority.
var defaultSLA = map[string]Target{
	"high":   {FirstResponse: Duration(time.Hour), Conclusion: Duration(24 * time.Hour)},
	"medium": {FirstResponse: Duration(4 * time.Hour), Conclusion: Duration(48 * time.Hour)},
	"low":    {FirstResponse: Duration(24 * time.Hour), Conclusion: Duration(120 * time.Hour)},
}

func (f *File) applyDefaults() {
	if f.Timezone == "" {
		f.Timezone = "UTC"
	}
	f.Oncall = f.Oncall.WithDefaults()
	for i := range f.Orgs {
		o := &f.Orgs[i]
		if o.Name == "" {
			o.Name = o.ID
		}
		if o.CreditsPerQuarter == nil {
			n := DefaultCreditsPerQuarter
			o.CreditsPerQuarter = &n
		}
	}
	c := &f.Cases
	if c.ReopenWindow == 0 {
		c.ReopenWindow = Duration(DefaultReopenWindow)
	}
	if c.CreditsRolloverMax == 0 {
		c.CreditsRolloverMax = DefaultCreditsRolloverMax
	}
	if c.SLA.WarnAt == 0 {
		c.SLA.WarnAt = DefaultWarnAt
	}
	if c.SLA.CheckInterval == 0 {
		c.SLA.CheckInterval = Duration(DefaultSLACheckInterval)
	}
	if f.Delivery.Lease == 0 {
		f.Delivery.Lease = Duration(DefaultDeliveryLease)
	}
	for _, p := range []struct {
		name string
		t    *Target
	}{{"high", &c.SLA.High}, {"medium", &c.SLA.Medium}, {"low", &c.SLA.Low}} {
		if p.t.FirstResponse == 0 {
			p.t.FirstResponse = defaultSLA[p.name].FirstResponse
		}
		if p.t.Conclusion == 0 {
			p.t.Conclusion = defaultSLA[p.name].Conclusion
		}
	}
	h := &f.Hunting
	setD := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	setD(&h.CorrelationWindow, DefaultCorrelationWindow)
	setD(&h.GroupWait, DefaultGroupWait)
	setD(&h.GroupInterval, DefaultGroupInterval)
	setD(&h.RepeatInterval, DefaultRepeatInterval)
	if h.NotifyScore == 0 {
		h.NotifyScore = DefaultNotifyScore
	}
	if h.CommonEntityDevices == 0 {
		h.CommonEntityDevices = DefaultCommonEntityDevices
	}
	if h.MaxBodyBytes == 0 {
		h.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.MaxItems == 0 {
		h.MaxItems = DefaultMaxItems
	}
	if h.RepeatSeverity == "" {
		h.RepeatSeverity = "high"
	}
	if h.Graph != nil && h.Graph.Interval == 0 {
		h.Graph.Interval = Duration(time.Minute)
	}
}

var (
	orgID        = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	tenantID     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	slackTeam    = regexp.MustCompile(`^[TE][A-Z0-9]{2,}$`)
	slackChannel = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	slackUser    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (f *File) validate(c *Config) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// Location is set here because loading the zone is its check.
	if loc, err := time.LoadLocation(f.Timezone); f.Timezone == "Local" || err != nil {
		bad("timezone %q is not a time zone name: use an IANA name such as Europe/London, America/New_York or UTC", f.Timezone)
	} else {
		f.Location = loc
	}
	ids := map[string]bool{}
	tenants := map[string]string{}
	channels := map[string]string{}
	tokens := map[string]string{}
	if c.IngestToken != "" {
		tokens[c.IngestToken.Value()] = "THREATDESK_INGEST_TOKEN"
	}
	for i, o := range f.Orgs {
		at := fmt.Sprintf("orgs[%d]", i)
		if !orgID.MatchString(o.ID) {
			bad("%s.id %q must be lower-case letters, digits and dashes, e.g. contoso", at, o.ID)
		} else {
			at = fmt.Sprintf("orgs[%d] (%s)", i, o.ID)
		}
		if ids[o.ID] {
			bad("%s.id is used by two orgs: org ids must be unique", at)
		}
		ids[o.ID] = true
		for _, t := range o.Tenants {
			switch {
			case !tenantID.MatchString(t):
				bad("%s.tenants: %q is not a tenant id: use the GUID of the Microsoft Entra tenant (Defender aadTenantId, Graph tenantId)", at, t)
			case tenants[strings.ToLower(t)] != "":
				bad("%s.tenants: %s already belongs to org %s: a tenant routes to one org", at, t, tenants[strings.ToLower(t)])
			default:
				tenants[strings.ToLower(t)] = o.ID
			}
		}
		if o.Slack == nil && o.Discord == nil {
			bad("%s has no chat: add slack: {team, channels} or discord: {guild, channels} so its people can reach experts and see notifications", at)
		}
		if s := o.Slack; s != nil {
			if !slackTeam.MatchString(s.Team) {
				bad("%s.slack.team %q must be a Slack team id such as T0123ABCD (from the workspace URL or auth.test)", at, s.Team)
			}
			if len(s.Channels) == 0 {
				bad("%s.slack.channels is empty: list at least one channel id; notifications go to the first", at)
			}
			for _, ch := range s.Channels {
				if !slackChannel.MatchString(ch) {
					bad("%s.slack.channels: %q must be a Slack channel id such as C0123ABCD (channel details, at the bottom), not a #name", at, ch)
				} else if prev := channels["slack:"+ch]; prev != "" {
					bad("%s.slack.channels: %s already belongs to org %s: a channel acts for one org", at, ch, prev)
				}
				channels["slack:"+ch] = o.ID
			}
		}
		if d := o.Discord; d != nil {
			if !snowflake.MatchString(d.Guild) {
				bad("%s.discord.guild %q must be a Discord guild id (a quoted number, 15 to 21 digits; Developer Mode, Copy Server ID)", at, d.Guild)
			}
			if len(d.Channels) == 0 {
				bad("%s.discord.channels is empty: list at least one channel id; notifications go to the first", at)
			}
			for _, ch := range d.Channels {
				if !snowflake.MatchString(ch) {
					bad("%s.discord.channels: %q must be a Discord channel id (a quoted number; Copy Channel ID)", at, ch)
				} else if prev := channels["discord:"+ch]; prev != "" {
					bad("%s.discord.channels: %s already belongs to org %s: a channel acts for one org", at, ch, prev)
				}
				channels["discord:"+ch] = o.ID
			}
		}
		if n := *o.CreditsPerQuarter; n < 0 || n > f.Cases.CreditsRolloverMax {
			bad("%s.credits_per_quarter %d must be between 0 and cases.credits_rollover_max (%d)", at, n, f.Cases.CreditsRolloverMax)
		}
		if o.NotifyScore != nil && (*o.NotifyScore < 1 || *o.NotifyScore > 100) {
			bad("%s.notify_score %d must be between 1 and 100", at, *o.NotifyScore)
		}
		if name := o.IngestTokenEnv; name != "" {
			tok := o.IngestToken.Value()
			switch {
			case !envName.MatchString(name):
				// The value is not repeated: it may be a token pasted by mistake.
				bad("%s.ingest_token_env must be the name of an environment variable, such as CONTOSO_INGEST_TOKEN, not the token itself (tokens never go in the file)", at)
			case tok == "":
				bad("%s: environment variable %s (ingest_token_env) is not set or empty", at, name)
			case len(tok) < 16:
				bad("%s: the token in %s is too short (%d characters): use at least 16 random characters, e.g. `openssl rand -hex 24`", at, name, len(tok))
			case tokens[tok] != "":
				bad("%s: the token in %s is the same as %s: every org needs a token of its own, distinct from THREATDESK_INGEST_TOKEN", at, name, tokens[tok])
			case len(o.Tenants) == 0:
				bad("%s.ingest_token_env is set but the org lists no tenants: its token could accept nothing; add its tenants", at)
			default:
				tokens[tok] = name
			}
		}
	}
	if len(f.Orgs) > 0 && f.Desk.Slack == nil && f.Desk.Discord == nil {
		bad("desk is missing: set desk.slack.channel (or desk.discord.guild and desk.discord.channel) to the channel where experts work cases")
	}
	if f.Desk.Slack != nil && f.Desk.Discord != nil {
		bad("desk: set either desk.slack or desk.discord, not both")
	}
	if d := f.Desk.Slack; d != nil {
		if !slackChannel.MatchString(d.Channel) {
			bad("desk.slack.channel %q must be a Slack channel id such as C0123ABCD", d.Channel)
		}
		if d.Team != "" && !slackTeam.MatchString(d.Team) {
			bad("desk.slack.team %q must be a Slack team id such as T0123ABCD", d.Team)
		}
		if org := channels["slack:"+d.Channel]; org != "" {
			bad("desk.slack.channel %s is also org %s's channel: give the experts a channel of their own", d.Channel, org)
		}
	}
	if d := f.Desk.Discord; d != nil {
		if !snowflake.MatchString(d.Guild) || !snowflake.MatchString(d.Channel) {
			bad("desk.discord needs guild and channel as Discord ids (quoted numbers, 15 to 21 digits)")
		}
		if org := channels["discord:"+d.Channel]; org != "" {
			bad("desk.discord.channel %s is also org %s's channel: give the experts a channel of their own", d.Channel, org)
		}
	}
	for _, u := range []struct {
		name  string
		users Users
	}{{"experts", f.Experts}, {"managers", f.Managers}, {"admins", f.Admins}} {
		for _, id := range u.users.Slack {
			if !slackUser.MatchString(id) {
				bad("%s.slack: %q must be a Slack user id such as U0123ABCD (profile, Copy member ID), not a name", u.name, id)
			}
		}
		for _, id := range u.users.Discord {
			if !snowflake.MatchString(id) {
				bad("%s.discord: %q must be a Discord user id (a quoted number; Copy User ID)", u.name, id)
			}
		}
	}
	if err := f.Oncall.Validate(); err != nil {
		errs = append(errs, err)
	}
	experts := map[oncall.Member]bool{}
	for _, id := range f.Experts.Slack {
		experts[oncall.Member{Platform: oncall.PlatformSlack, UserID: id}] = true
	}
	for _, id := range f.Experts.Discord {
		experts[oncall.Member{Platform: oncall.PlatformDiscord, UserID: id}] = true
	}
	for i, m := range f.Oncall.Rotation {
		if (m.Platform == oncall.PlatformSlack || m.Platform == oncall.PlatformDiscord) && !experts[m] {
			bad("oncall.rotation[%d]: %s user %s is not one of the experts: add them to experts.%s, or remove them from the rotation", i, m.Platform, m.UserID, m.Platform)
		}
	}
	cs := f.Cases
	if cs.ReopenWindow.D() < 0 {
		bad("cases.reopen_window must not be negative")
	}
	if cs.CreditsRolloverMax < 0 {
		bad("cases.credits_rollover_max must not be negative")
	}
	if cs.SLA.WarnAt <= 0 || cs.SLA.WarnAt >= 1 {
		bad("cases.sla.warn_at %v must be a fraction between 0 and 1, e.g. 0.75", cs.SLA.WarnAt)
	}
	if cs.SLA.CheckInterval.D() < time.Second {
		bad("cases.sla.check_interval %s is too short: use at least 1s (default 1m)", cs.SLA.CheckInterval.D())
	}
	if l := f.Delivery.Lease.D(); l < 5*time.Second {
		bad("delivery.lease %s is too short to deliver a batch of messages: use at least 5s (default 2m)", l)
	}
	for _, p := range []struct {
		name string
		t    Target
	}{{"high", cs.SLA.High}, {"medium", cs.SLA.Medium}, {"low", cs.SLA.Low}} {
		if p.t.FirstResponse.D() <= 0 || p.t.Conclusion.D() <= 0 {
			bad("cases.sla.%s: first_response and conclusion must be positive durations", p.name)
		} else if p.t.FirstResponse.D() > p.t.Conclusion.D() {
			bad("cases.sla.%s.first_response (%s) must not exceed conclusion (%s)", p.name, p.t.FirstResponse.D(), p.t.Conclusion.D())
		}
	}
	h := f.Hunting
	for _, d := range []struct {
		name string
		v    Duration
	}{{"correlation_window", h.CorrelationWindow}, {"group_wait", h.GroupWait}, {"group_interval", h.GroupInterval}, {"repeat_interval", h.RepeatInterval}} {
		if d.v.D() <= 0 {
			bad("hunting.%s must be a positive duration", d.name)
		}
	}
	if h.NotifyScore < 1 || h.NotifyScore > 100 {
		bad("hunting.notify_score %d must be between 1 and 100", h.NotifyScore)
	}
	if h.CommonEntityDevices < 2 {
		bad("hunting.common_entity_devices %d must be at least 2", h.CommonEntityDevices)
	}
	if h.MaxBodyBytes < 1024 {
		bad("hunting.max_body_bytes %d is too small: use at least 1024 (default %d)", h.MaxBodyBytes, DefaultMaxBodyBytes)
	}
	if h.MaxItems < 1 {
		bad("hunting.max_items must be at least 1")
	}
	switch h.RepeatSeverity {
	case "informational", "low", "medium", "high":
	default:
		bad("hunting.repeat_severity %q must be informational, low, medium or high", h.RepeatSeverity)
	}
	if g := h.Graph; g != nil {
		if len(g.Tenants) == 0 {
			bad("hunting.graph.tenants is empty: list each tenant to pull with its tenant_id, client_id and client_secret_env, or remove hunting.graph")
		}
		if g.Interval.D() < 10*time.Second {
			bad("hunting.graph.interval %s is too short: use at least 10s (default 1m)", g.Interval.D())
		}
		for _, u := range []struct{ name, v string }{{"base_url", g.BaseURL}, {"login_url", g.LoginURL}} {
			if u.v != "" && !strings.HasPrefix(u.v, "https://") && !strings.HasPrefix(u.v, "http://") {
				bad("hunting.graph.%s %q must be an http(s) URL", u.name, u.v)
			}
		}
		for i, gt := range g.Tenants {
			at := fmt.Sprintf("hunting.graph.tenants[%d]", i)
			if _, ok := tenants[strings.ToLower(gt.TenantID)]; !ok {
				bad("%s.tenant_id %q is not in any org's tenants: add it to the org whose alerts it holds", at, gt.TenantID)
			}
			if !tenantID.MatchString(gt.ClientID) {
				bad("%s.client_id %q must be the app registration's Application (client) ID, a GUID", at, gt.ClientID)
			}
			if gt.ClientSecretEnv == "" {
				bad("%s.client_secret_env must name the environment variable that holds the client secret", at)
			} else if gt.Secret == "" {
				bad("%s: environment variable %s (client_secret_env) is not set or empty", at, gt.ClientSecretEnv)
			}
		}
	}
	return errs
}

// Warnings are settings that are valid but probably not what the operator
// wants, such as an org on Slack while Slack is not enabled.
func (c *Config) Warnings() []string {
	var w []string
	slack, discord := false, false
	for _, o := range c.File.Orgs {
		slack = slack || o.Slack != nil
		discord = discord || o.Discord != nil
	}
	slack = slack || c.File.Desk.Slack != nil
	discord = discord || c.File.Desk.Discord != nil
	if slack && !c.SlackEnabled() {
		w = append(w, "the config names Slack channels but SLACK_BOT_TOKEN is not set: nothing will be posted to Slack")
	}
	if discord && !c.DiscordEnabled() {
		w = append(w, "the config names Discord channels but DISCORD_BOT_TOKEN is not set: nothing will be posted to Discord")
	}
	orgTokens := false
	for _, o := range c.File.Orgs {
		orgTokens = orgTokens || o.IngestToken != ""
	}
	if len(c.File.Orgs) > 0 && c.IngestToken == "" && !orgTokens {
		w = append(w, "THREATDESK_INGEST_TOKEN is not set and no org has ingest_token_env: POST /api/v1/alerts refuses every request until one is")
	}
	if len(c.File.Experts.Slack)+len(c.File.Experts.Discord) == 0 && len(c.File.Orgs) > 0 {
		w = append(w, "no experts are configured (experts.slack / experts.discord): nobody can take cases")
	}
	return w
}

// OrgByTenant returns the org id a tenant routes to.
func (f *File) OrgByTenant(tenant string) (string, bool) {
	for _, o := range f.Orgs {
		for _, t := range o.Tenants {
			if strings.EqualFold(t, tenant) {
				return o.ID, true
			}
		}
	}
	return "", false
}
