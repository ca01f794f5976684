package casework

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Target is an SLA target pair for one priority (cases.sla.high, .medium,
// .low of the config file).
type Target struct {
	// FirstResponse is the time allowed until an expert first answers the
	// requester (a relayed message, or a status change such as asking for
	// more information or concluding). Taking the case alone does not count.
	FirstResponse time.Duration `yaml:"first_response"`
	// Conclusion is the time allowed until the case is concluded. At least
	// FirstResponse.
	Conclusion time.Duration `yaml:"conclusion"`
}

// SLA holds the targets per priority and when to warn (cases.sla). A zero
// duration takes its default (DefaultSLA).
type SLA struct {
	High   Target `yaml:"high"`
	Medium Target `yaml:"medium"`
	Low    Target `yaml:"low"`
	// WarnAt is the fraction of a target at which a warning is posted, in
	// (0, 1) (cases.sla.warn_at; default 0.75).
	WarnAt float64 `yaml:"warn_at"`
	// CheckInterval is how often the SLA clocks are checked for warnings
	// and breaches that fell due (cases.sla.check_interval; default 1m, at
	// least 1s). It becomes Config.SweepEvery.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// Target returns the target pair of priority p (zero for an unknown one).
func (s SLA) Target(p Priority) Target {
	switch p {
	case PriorityHigh:
		return s.High
	case PriorityMedium:
		return s.Medium
	case PriorityLow:
		return s.Low
	}
	return Target{}
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
	DefaultRemindAfter       = 24 * time.Hour
	// MinRemindAfter is the shortest cases.remind_after accepted.
	MinRemindAfter = time.Minute
)

// DefaultSLA is the SLA when Config leaves it out: warnings at 75%, and
// targets high 1 h / 24 h, medium 4 h / 48 h, low 24 h / 120 h.
func DefaultSLA() SLA {
	return SLA{
		High:   Target{FirstResponse: time.Hour, Conclusion: 24 * time.Hour},
		Medium: Target{FirstResponse: 4 * time.Hour, Conclusion: 48 * time.Hour},
		Low:    Target{FirstResponse: 24 * time.Hour, Conclusion: 120 * time.Hour},
		WarnAt: DefaultWarnAt,
	}
}

// Config configures a Service. The zero value, with a Key, is valid: every
// other field has a default. Its yaml keys are the `cases` block of the
// config file (README.md); each org's credits_per_quarter is in its orgs[]
// entry, which internal/config hands over as Orgs.
type Config struct {
	// Key is the master key (THREATDESK_SECRET_KEY); required by New. Its
	// timeline subkeys key the HMAC chain of every case's timeline.
	Key *secrets.Key `yaml:"-"`
	// Location is the calendar of credit quarters (the configured
	// timezone, read at start, as reports' periods are); nil is UTC.
	Location *time.Location `yaml:"-"`
	// SLA holds the targets per priority and the warning fraction.
	SLA SLA `yaml:"sla"`
	// ReopenWindow is how long after concluding (or closing) a case the
	// requester may reopen it (cases.reopen_window; default 14 days). Not
	// negative.
	ReopenWindow time.Duration `yaml:"reopen_window"`
	// AutoCloseAfter closes a concluded case the requester did not close or
	// reopen, this long after its conclusion (cases.auto_close_after;
	// default 7 days, at least 1h). Negative (not from the file) disables
	// auto-close.
	AutoCloseAfter time.Duration `yaml:"auto_close_after"`
	// CreditsPerQuarter is the quarterly allowance of an org that does not
	// set its own (default 10).
	CreditsPerQuarter int `yaml:"-"`
	// Orgs are the configured orgs and their own allowances
	// (orgs[].credits_per_quarter). They bound the org label of the metrics
	// (any other org counts as OtherOrgLabel) and are the orgs a Report
	// covers: an org not listed is unknown.
	Orgs []Org `yaml:"-"`
	// Notifications supplies a Report's notification figures (cards posted
	// and acknowledged). Default: HuntingNotifications on the Service's
	// pool, which reads hunting's incident table read-only.
	Notifications NotificationSource `yaml:"-"`
	// CreditsCap caps the balance after unused credits roll over into a new
	// quarter (cases.credits_rollover_max; default 20). At least every
	// org's allowance.
	CreditsCap int `yaml:"credits_rollover_max"`
	// SweepEvery is how often Start's job evaluates SLA clocks (default 1
	// minute, at least 1 second).
	SweepEvery time.Duration `yaml:"-"`
	// TimelineCheckEvery is how often Start's job verifies every case's
	// timeline (default 1 hour, at least 1 second); a break is logged at
	// error level and counted in threatdesk_casework_timeline_breaks_total.
	TimelineCheckEvery time.Duration `yaml:"-"`
	// SampleMaxBytes caps one file sample (samples.max_bytes, from the
	// samples block: Samples; default DefaultSampleMaxBytes, 100 MiB; at
	// most MaxSampleMaxBytes).
	SampleMaxBytes int64 `yaml:"-"`
	// SampleCaseMaxBytes caps the samples of one case, in all
	// (samples.case_max_bytes; default DefaultSampleCaseMaxBytes, 1 GiB, or
	// SampleMaxBytes when that is more): links and thread files are not
	// counted, so without it one member could fill the database.
	SampleCaseMaxBytes int64 `yaml:"-"`
	// SampleRetention is how long after its case closes a sample's bytes
	// are kept (cases.sample_retention; default 30 days, at least 1h).
	SampleRetention time.Duration `yaml:"sample_retention"`
	// RemindAfter is how long a case may wait on its requester (more
	// information or a file sample) before the requester is reminded, once
	// per wait, with a mention (cases.remind_after; default 24h, at least
	// 1m). The SLA clock stays paused.
	RemindAfter time.Duration `yaml:"remind_after"`
	// PageAfter is how long a high-priority case may stay new before the
	// next expert on the rotation and the managers are paged, once
	// (oncall.page_after, which internal/config hands over; the oncall
	// package validates it). Zero: never page.
	PageAfter time.Duration `yaml:"-"`
	// LockNamespace namespaces the sweep's advisory lock (default "threatdesk").
	LockNamespace string `yaml:"-"`
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time `yaml:"-"`
}

// Samples is the samples block of the config file; its MaxBytes becomes
// Config.SampleMaxBytes.
type Samples struct {
	// MaxBytes caps one sample (samples.max_bytes; default 100 MiB, 413
	// beyond).
	MaxBytes int64 `yaml:"max_bytes"`
	// CaseMaxBytes caps the samples of one case in all
	// (samples.case_max_bytes; default 1 GiB, 413 beyond).
	CaseMaxBytes int64 `yaml:"case_max_bytes"`
}

// Org is casework's part of an orgs[] entry of the config file.
type Org struct {
	// ID is the org's id (orgs[].id, checked by the bot's config).
	ID string `yaml:"-"`
	// CreditsPerQuarter is the org's quarterly allowance of expert cases
	// (orgs[].credits_per_quarter), between 0 and Config.CreditsCap; nil
	// takes Config.CreditsPerQuarter.
	CreditsPerQuarter *int `yaml:"credits_per_quarter"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	d := DefaultSLA()
	for _, t := range []struct{ got, def *Target }{{&c.SLA.High, &d.High}, {&c.SLA.Medium, &d.Medium}, {&c.SLA.Low, &d.Low}} {
		t.got.FirstResponse = cmp.Or(t.got.FirstResponse, t.def.FirstResponse)
		t.got.Conclusion = cmp.Or(t.got.Conclusion, t.def.Conclusion)
	}
	c.SLA.WarnAt = cmp.Or(c.SLA.WarnAt, d.WarnAt)
	c.ReopenWindow = cmp.Or(c.ReopenWindow, DefaultReopenWindow)
	c.AutoCloseAfter = cmp.Or(c.AutoCloseAfter, DefaultAutoCloseAfter)
	c.CreditsPerQuarter = cmp.Or(c.CreditsPerQuarter, DefaultCreditsPerQuarter)
	c.CreditsCap = cmp.Or(c.CreditsCap, DefaultCreditsCap)
	c.SweepEvery = cmp.Or(c.SweepEvery, c.SLA.CheckInterval, DefaultSweepEvery)
	c.SLA.CheckInterval = c.SweepEvery
	c.TimelineCheckEvery = cmp.Or(c.TimelineCheckEvery, DefaultTimelineCheck)
	c.LockNamespace = cmp.Or(c.LockNamespace, "threatdesk")
	c.RemindAfter = cmp.Or(c.RemindAfter, DefaultRemindAfter)
	c = c.withSampleDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c (after WithDefaults), each naming the
// key of the config file (or the field, for those not in it) and how to fix
// it, joined into one error; nil when c is usable. The Key is New's to check:
// it may be generated after the file is read.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ReopenWindow < 0 {
		bad("cases.reopen_window must not be negative")
	}
	if c.AutoCloseAfter > 0 && c.AutoCloseAfter < time.Hour {
		bad("cases.auto_close_after %s is too short: give the requester at least 1h to read the conclusion (default 7d)", c.AutoCloseAfter)
	}
	if c.CreditsCap < 0 {
		bad("cases.credits_rollover_max must not be negative")
	} else if c.CreditsPerQuarter < 0 || c.CreditsPerQuarter > c.CreditsCap {
		bad("cases.credits_rollover_max %d is below the default credits_per_quarter %d: the cap must allow at least one quarter's credits",
			c.CreditsCap, c.CreditsPerQuarter)
	}
	if c.SLA.WarnAt <= 0 || c.SLA.WarnAt >= 1 {
		bad("cases.sla.warn_at %v must be a fraction between 0 and 1, e.g. 0.75", c.SLA.WarnAt)
	}
	for _, p := range []Priority{PriorityHigh, PriorityMedium, PriorityLow} {
		t := c.SLA.Target(p)
		if t.FirstResponse <= 0 || t.Conclusion <= 0 {
			bad("cases.sla.%s: first_response and conclusion must be positive durations", p)
		} else if t.FirstResponse > t.Conclusion {
			bad("cases.sla.%s.first_response (%s) must not exceed conclusion (%s): swap them or raise the conclusion target", p, t.FirstResponse, t.Conclusion)
		}
	}
	for i, o := range c.Orgs {
		if n := o.CreditsPerQuarter; n != nil && (*n < 0 || *n > c.CreditsCap) {
			bad("orgs[%d] (%s).credits_per_quarter %d must be between 0 and cases.credits_rollover_max (%d)", i, o.ID, *n, c.CreditsCap)
		}
	}
	if c.SweepEvery < time.Second {
		bad("cases.sla.check_interval %s is too short: use at least 1s (default 1m)", c.SweepEvery)
	}
	if c.TimelineCheckEvery < time.Second {
		bad("TimelineCheckEvery %s is too short: use at least one second (default one hour)", c.TimelineCheckEvery)
	}
	if c.RemindAfter < MinRemindAfter {
		bad("cases.remind_after %s is too short: use at least 1m (default 24h)", c.RemindAfter)
	}
	if c.PageAfter < 0 {
		bad("PageAfter %s must not be negative (zero never pages)", c.PageAfter)
	}
	errs = append(errs, c.validateSamples()...)
	return errors.Join(errs...)
}

func (c Config) perQuarter(org string) int {
	for _, o := range c.Orgs {
		if o.ID == org && o.CreditsPerQuarter != nil {
			return *o.CreditsPerQuarter
		}
	}
	return c.CreditsPerQuarter
}

// now is the config clock, in UTC and truncated to what PostgreSQL stores.
func (c Config) now() time.Time { return c.Now().UTC().Truncate(time.Microsecond) }

// orgIDs are the configured orgs' ids, sorted.
func (c Config) orgIDs() []string {
	ids := make([]string, 0, len(c.Orgs))
	for _, o := range c.Orgs {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// knows reports whether org is a configured org.
func (c Config) knows(org string) bool {
	return slices.ContainsFunc(c.Orgs, func(o Org) bool { return o.ID == org })
}
