package casework

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Target is an SLA target pair for one priority.
type Target struct {
	// FirstResponse is the time allowed until an expert first answers the
	// requester (a relayed message, or a status change such as asking for
	// more information or concluding). Taking the case alone does not count.
	FirstResponse time.Duration
	// Conclusion is the time allowed until the case is concluded.
	Conclusion time.Duration
}

// Default settings, as the expert service works.
const (
	DefaultWarnAt            = 0.75
	DefaultReopenWindow      = 14 * 24 * time.Hour
	DefaultAutoCloseAfter    = 7 * 24 * time.Hour
	DefaultCreditsPerQuarter = 10
	DefaultCreditsCap        = 20
	DefaultSweepEvery        = time.Minute
	DefaultTimelineCheck     = time.Hour
)

// DefaultTargets are the SLA targets when Config leaves them out:
// high 1 h / 24 h, medium 4 h / 48 h, low 24 h / 120 h.
func DefaultTargets() map[Priority]Target {
	return map[Priority]Target{
		PriorityHigh:   {FirstResponse: time.Hour, Conclusion: 24 * time.Hour},
		PriorityMedium: {FirstResponse: 4 * time.Hour, Conclusion: 48 * time.Hour},
		PriorityLow:    {FirstResponse: 24 * time.Hour, Conclusion: 120 * time.Hour},
	}
}

// Config configures a Service. The zero value is valid: every field has a
// default.
type Config struct {
	// Key is the master key (THREATDESK_SECRET_KEY); required. Its
	// timeline subkeys key the HMAC chain of every case's timeline.
	Key *secrets.Key
	// Targets are the SLA targets per priority; a missing priority, or a zero
	// duration, takes its default (see DefaultTargets).
	Targets map[Priority]Target
	// WarnAt is the fraction of a target at which a warning is emitted
	// (default 0.75). It must be in (0, 1).
	WarnAt float64
	// ReopenWindow is how long after concluding (or closing) a case the
	// requester may reopen it (default 14 days).
	ReopenWindow time.Duration
	// AutoCloseAfter closes a concluded case the requester did not close or
	// reopen (default 7 days). Negative disables auto-close.
	AutoCloseAfter time.Duration
	// CreditsPerQuarter is each org's quarterly allowance (default 10).
	CreditsPerQuarter int
	// OrgCredits overrides CreditsPerQuarter for some orgs.
	OrgCredits map[string]int
	// Orgs are the configured org ids. They bound the org label of the
	// metrics (any other org counts as OtherOrgLabel) and are the orgs a
	// Report covers: an org not listed is unknown. The keys of OrgCredits
	// are added to them, so a Config that sets OrgCredits for every org
	// (as the wiring does) need not repeat them.
	Orgs []string
	// Notifications supplies a Report's notification figures (cards posted
	// and acknowledged). Default: HuntingNotifications on the Service's
	// pool, which reads hunting's incident table read-only.
	Notifications NotificationSource
	// CreditsCap caps the balance after unused credits roll over into a new
	// quarter (default 20).
	CreditsCap int
	// SweepEvery is how often Start's job evaluates SLA clocks (default 1 minute).
	SweepEvery time.Duration
	// TimelineCheckEvery is how often Start's job verifies every case's
	// timeline (default 1 hour); a break is logged at error level and counted
	// in threatdesk_casework_timeline_breaks_total.
	TimelineCheckEvery time.Duration
	// SampleMaxBytes caps one file sample (samples.max_bytes; default
	// DefaultSampleMaxBytes, 100 MiB; at most MaxSampleMaxBytes).
	SampleMaxBytes int64
	// SampleRetention is how long after its case closes a sample's bytes
	// are kept (cases.sample_retention; default 30 days).
	SampleRetention time.Duration
	// LockNamespace namespaces the sweep's advisory lock (default "threatdesk").
	LockNamespace string
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	targets := DefaultTargets()
	for p, t := range c.Targets {
		d := targets[p]
		targets[p] = Target{
			FirstResponse: cmp.Or(t.FirstResponse, d.FirstResponse),
			Conclusion:    cmp.Or(t.Conclusion, d.Conclusion),
		}
	}
	c.Targets = targets
	c.WarnAt = cmp.Or(c.WarnAt, DefaultWarnAt)
	c.ReopenWindow = cmp.Or(c.ReopenWindow, DefaultReopenWindow)
	c.AutoCloseAfter = cmp.Or(c.AutoCloseAfter, DefaultAutoCloseAfter)
	c.CreditsPerQuarter = cmp.Or(c.CreditsPerQuarter, DefaultCreditsPerQuarter)
	c.CreditsCap = cmp.Or(c.CreditsCap, DefaultCreditsCap)
	c.SweepEvery = cmp.Or(c.SweepEvery, DefaultSweepEvery)
	c.TimelineCheckEvery = cmp.Or(c.TimelineCheckEvery, DefaultTimelineCheck)
	c.LockNamespace = cmp.Or(c.LockNamespace, "threatdesk")
	c = c.withSampleDefaults()
	orgs := map[string]bool{}
	for _, o := range c.Orgs {
		orgs[o] = true
	}
	for o := range c.OrgCredits {
		orgs[o] = true
	}
	c.Orgs = slices.Sorted(maps.Keys(orgs))
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if c.Key == nil {
		return errors.New("casework config: Key is required: pass the THREATDESK_SECRET_KEY master key (internal/secrets), which keys the timeline's HMAC chain")
	}
	for p, t := range c.Targets {
		if !p.Valid() {
			return fmt.Errorf("casework config: Targets has unknown priority %q: use high, medium or low", p)
		}
		if t.FirstResponse < 0 || t.Conclusion < 0 {
			return fmt.Errorf("casework config: %s SLA targets must be positive durations (got %s / %s)", p, t.FirstResponse, t.Conclusion)
		}
		if t.FirstResponse > t.Conclusion {
			return fmt.Errorf("casework config: %s first-response target %s is longer than its conclusion target %s: swap them or raise the conclusion target",
				p, t.FirstResponse, t.Conclusion)
		}
	}
	if c.WarnAt <= 0 || c.WarnAt >= 1 {
		return fmt.Errorf("casework config: WarnAt %.2f must be a fraction between 0 and 1, e.g. 0.75 for a warning at 75%% of the target", c.WarnAt)
	}
	if c.ReopenWindow < 0 {
		return fmt.Errorf("casework config: ReopenWindow %s must not be negative", c.ReopenWindow)
	}
	if c.CreditsPerQuarter < 0 {
		return fmt.Errorf("casework config: CreditsPerQuarter %d must not be negative", c.CreditsPerQuarter)
	}
	for org, n := range c.OrgCredits {
		if n < 0 || n > c.CreditsCap {
			return fmt.Errorf("casework config: OrgCredits[%q] = %d must be between 0 and the cap %d", org, n, c.CreditsCap)
		}
	}
	if c.CreditsCap < c.CreditsPerQuarter {
		return fmt.Errorf("casework config: CreditsCap %d is below CreditsPerQuarter %d: the cap must allow at least one quarter's credits",
			c.CreditsCap, c.CreditsPerQuarter)
	}
	for _, o := range c.Orgs {
		if o == "" || strings.TrimSpace(o) != o {
			return fmt.Errorf("casework config: Orgs has an empty or padded org id %q: use the ids of the config's orgs", o)
		}
	}
	if c.SweepEvery < time.Second {
		return fmt.Errorf("casework config: SweepEvery %s is too short: use at least one second (default one minute)", c.SweepEvery)
	}
	if c.TimelineCheckEvery < time.Second {
		return fmt.Errorf("casework config: TimelineCheckEvery %s is too short: use at least one second (default one hour)", c.TimelineCheckEvery)
	}
	if err := c.validateSamples(); err != nil {
		return err
	}
	return nil
}

func (c Config) perQuarter(org string) int {
	if n, ok := c.OrgCredits[org]; ok {
		return n
	}
	return c.CreditsPerQuarter
}

// now is the config clock, in UTC and truncated to what PostgreSQL stores.
func (c Config) now() time.Time { return c.Now().UTC().Truncate(time.Microsecond) }

// knows reports whether org is a configured org.
func (c Config) knows(org string) bool {
	_, ok := slices.BinarySearch(c.Orgs, org)
	return ok
}
