package config

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	// The time zone database, built in: timezone names validate and resolve
	// the same on every host, including images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/oncall"
	"gopkg.in/yaml.v3"
)

// File is the YAML config file; README.md documents every key. Its blocks
// are the packages' own Config types, which document, default and check
// their keys.
type File struct {
	// Timezone is the IANA name of the time zone in which times are shown
	// and hand-overs happen, e.g. Europe/London (default UTC; Local is
	// refused).
	Timezone string `yaml:"timezone"`
	// Location is Timezone, loaded by Load; nil in a File that was only
	// parsed.
	Location *time.Location `yaml:"-"`
	// Orgs are the customer organisations. Each entry's keys belong to
	// three packages; Load hands each its part (Bot.Orgs, Hunting.Orgs,
	// Cases.Orgs).
	Orgs []Org `yaml:"orgs"`
	// Bot is the desk, experts, managers and admins blocks.
	Bot bot.Config `yaml:",inline"`
	// Cases is the cases block.
	Cases casework.Config `yaml:"cases"`
	// Samples is the samples block; its max_bytes goes to Cases.
	Samples casework.Samples `yaml:"samples"`
	// Hunting is the hunting block; its IngestToken is
	// THREATDESK_INGEST_TOKEN.
	Hunting hunting.Config `yaml:"hunting"`
	// Oncall is the experts' on-call rotation. Its members must be experts
	// (checked here, with the other problems).
	Oncall oncall.Config `yaml:"oncall"`
	// Insight is the experts' view across orgs (sightings, campaigns).
	Insight insight.Config `yaml:"insight"`
	// SHA256 is the hex SHA-256 of the bytes LoadFile parsed: what a
	// reload compares, the file as it was read, not as it is now.
	SHA256 string `yaml:"-"`
}

// Org is one orgs[] entry: the bot's keys (id, name, slack, discord),
// hunting's (tenants, notify_score, ingest_token_env) and casework's
// (credits_per_quarter).
type Org struct {
	bot.Org  `yaml:",inline"`
	Hunting  hunting.Org  `yaml:",inline"`
	Casework casework.Org `yaml:",inline"`
}

// gather fills defaults and hands each package its part of the orgs, with
// the secrets the file names read through lookup (THREATDESK_INGEST_TOKEN,
// orgs[].ingest_token_env, hunting.graph.tenants[].client_secret_env).
func (f *File) gather(lookup func(string) (string, bool)) {
	f.Timezone = cmp.Or(f.Timezone, "UTC")
	f.Bot.Orgs, f.Hunting.Orgs, f.Cases.Orgs = nil, nil, nil
	f.Cases.SampleMaxBytes, f.Cases.SampleCaseMaxBytes = f.Samples.MaxBytes, f.Samples.CaseMaxBytes
	for i := range f.Orgs {
		o := &f.Orgs[i]
		o.Hunting.ID, o.Casework.ID = o.ID, o.ID
		if name := o.Hunting.IngestTokenEnv; name != "" {
			o.Hunting.IngestToken = secretFrom(lookup, name)
		}
		f.Bot.Orgs = append(f.Bot.Orgs, o.Org)
		f.Hunting.Orgs = append(f.Hunting.Orgs, o.Hunting)
		f.Cases.Orgs = append(f.Cases.Orgs, o.Casework)
	}
	f.Hunting.IngestToken = secretFrom(lookup, "THREATDESK_INGEST_TOKEN")
	if g := f.Hunting.Graph; g != nil {
		for i := range g.Tenants {
			if name := g.Tenants[i].ClientSecretEnv; name != "" {
				g.Tenants[i].ClientSecret = secretFrom(lookup, name)
			}
		}
	}
	f.Bot = f.Bot.WithDefaults()
	f.Cases = f.Cases.WithDefaults()
	f.Hunting = f.Hunting.WithDefaults()
	f.Oncall = f.Oncall.WithDefaults()
	f.Insight = f.Insight.WithDefaults()
	// The oncall package owns and checks page_after; casework's sweep pages.
	f.Cases.PageAfter = f.Oncall.PageAfter
}

func secretFrom(lookup func(string) (string, bool), name string) secrets.String {
	v, _ := lookup(name)
	return secrets.String(v)
}

// validate reports every problem of the file: each package's, then what
// spans packages.
func (f *File) validate() []error {
	errs := []error{f.Bot.Validate(), f.Cases.Validate(), f.Hunting.Validate(), f.Oncall.Validate(), f.Insight.Validate()}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// Location is set here because loading the zone is its check.
	if loc, err := time.LoadLocation(f.Timezone); f.Timezone == "Local" || err != nil {
		bad("timezone %q is not a time zone name: use an IANA name such as Europe/London, America/New_York or UTC", f.Timezone)
	} else {
		f.Location = loc
		f.Bot.Reports.Location = loc // the calendar of reports and of the weekly digest
		f.Bot.Location = loc         // times are shown in it
		f.Cases.Location = loc       // the calendar of credit quarters
	}
	for i, m := range f.Oncall.Rotation {
		if (m.Platform == oncall.PlatformSlack || m.Platform == oncall.PlatformDiscord) && !f.isExpert(m) {
			bad("oncall.rotation[%d]: %s user %s is not one of the experts: add them to experts.%s, or remove them from the rotation", i, m.Platform, m.UserID, m.Platform)
		}
	}
	return errs
}

func (f *File) isExpert(m oncall.Member) bool {
	switch m.Platform {
	case oncall.PlatformSlack:
		return f.Bot.Experts.Has(bot.Slack, m.UserID)
	case oncall.PlatformDiscord:
		return f.Bot.Experts.Has(bot.Discord, m.UserID)
	}
	return false
}

// Warnings are settings that are valid but probably not what the operator
// wants, such as an org on Slack while Slack is not enabled.
func (c *Config) Warnings() []string {
	var w []string
	f := c.File
	slack, discord := f.Bot.Desk.Slack != nil, f.Bot.Desk.Discord != nil
	orgTokens := false
	for _, o := range f.Orgs {
		slack = slack || o.Slack != nil
		discord = discord || o.Discord != nil
		orgTokens = orgTokens || o.Hunting.IngestToken != ""
	}
	if slack && !c.SlackEnabled() {
		w = append(w, "the config names Slack channels but SLACK_BOT_TOKEN is not set: nothing will be posted to Slack")
	}
	if discord && !c.DiscordEnabled() {
		w = append(w, "the config names Discord channels but DISCORD_BOT_TOKEN is not set: nothing will be posted to Discord")
	}
	if len(f.Orgs) > 0 && f.Hunting.IngestToken == "" && !orgTokens {
		w = append(w, "THREATDESK_INGEST_TOKEN is not set and no org has ingest_token_env: POST /api/v1/alerts refuses every request until one is")
	}
	if u, err := url.Parse(c.PublicURL); c.PublicURL != "" && err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		w = append(w, "THREATDESK_PUBLIC_URL is plain http: upload and download links carry secret tokens; serve threatdesk behind https")
	}
	if len(f.Bot.Experts.Slack)+len(f.Bot.Experts.Discord) == 0 && len(f.Orgs) > 0 {
		w = append(w, "no experts are configured (experts.slack / experts.discord): nobody can take cases")
	}
	if len(f.Orgs) == 0 {
		where := "THREATDESK_CONFIG is not set"
		if c.ConfigPath != "" {
			where = c.ConfigPath + " lists no orgs"
		}
		w = append(w, where+": no organisation can ask experts or get notifications; write a config file with orgs (threatdesk.example.yaml shows one) and point THREATDESK_CONFIG at it")
	}
	return w
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OrgByTenant returns the org id a tenant routes to.
func (f *File) OrgByTenant(tenant string) (string, bool) {
	for _, o := range f.Orgs {
		for _, t := range o.Hunting.Tenants {
			if strings.EqualFold(t, tenant) {
				return o.ID, true
			}
		}
	}
	return "", false
}

// LoadFile reads and strictly decodes the YAML config file (no defaults, no
// validation: Load does those).
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once
		}
		return nil, fmt.Errorf("THREATDESK_CONFIG: read %s: %w", path, err)
	}
	f, err := ParseFile(b)
	if f != nil {
		sum := sha256.Sum256(b)
		f.SHA256 = hex.EncodeToString(sum[:])
	}
	return f, err
}

// ParseFile strictly decodes a YAML config document (no defaults, no
// validation). With problems of its keys or values (not of its YAML) it
// returns them together with what it could read, so that the checks of the
// rest report their problems at the same time.
func ParseFile(b []byte) (*File, error) {
	var f File
	if err := Decode(b, &f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return &f, fmt.Errorf("THREATDESK_CONFIG: %w", err)
		}
		return nil, fmt.Errorf("THREATDESK_CONFIG: %w", err)
	}
	return &f, nil
}
