package oncall

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Chat platforms a rotation member can be on (the same names as
// casework.Person.Platform).
const (
	PlatformSlack   = "slack"
	PlatformDiscord = "discord"
)

// Defaults.
const (
	// DefaultPageAfter is how long a high-priority case may stay new before
	// the next expert and the managers are paged.
	DefaultPageAfter = 15 * time.Minute
	// MinPageAfter is the shortest page_after accepted: shorter would page
	// people for every high-priority case before anyone could read it.
	MinPageAfter = time.Minute
)

// Config is the `oncall` block of the config file. The zero value is valid
// and means "no rotation": nobody is on call and nobody can take the pager.
// The time zone of the hand-over is the config file's top-level `timezone`,
// given to New separately.
//
//	oncall:
//	  handover: "Mon 09:00"     # weekly; "daily 09:00" for a daily hand-over
//	  rotation:                 # in order
//	    - slack: U0EXPERT1
//	    - discord: "100000000000000001"
//	  page_after: 15m
type Config struct {
	// Handover is when the pager passes to the next member of the
	// rotation: "Mon 09:00" (weekly, on that weekday) or "daily 09:00", at
	// that wall-clock time in the configured time zone. Required with a
	// rotation; no default.
	Handover Handover `yaml:"handover"`
	// Rotation lists the experts who hold the pager, in order, each once.
	// Rotation[0] holds it from the first hand-over on or after the
	// reference date (see Schedule). Every member must also be one of the
	// configured experts (internal/config checks that). Empty: no on-call.
	Rotation []Member `yaml:"rotation"`
	// PageAfter is how long a high-priority case may stay new (nobody took
	// it) before the next expert on the rotation and the managers are paged,
	// once. Default 15m (DefaultPageAfter), at least 1m.
	PageAfter time.Duration `yaml:"page_after"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.PageAfter = cmp.Or(c.PageAfter, DefaultPageAfter)
	return c
}

// Enabled reports whether a rotation is configured.
func (c Config) Enabled() bool { return len(c.Rotation) > 0 }

var userID = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// Validate reports every problem of c (after WithDefaults), each naming the
// setting and how to fix it, joined into one error; nil when c is usable.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case len(c.Rotation) > 0 && c.Handover.IsZero():
		bad(`oncall.handover is missing: set when the pager passes to the next expert, e.g. "Mon 09:00" (weekly) or "daily 09:00"`)
	case len(c.Rotation) == 0 && !c.Handover.IsZero():
		bad("oncall.rotation is empty: list the experts who hold the pager, in order (- slack: U0123ABCD), or remove oncall.handover")
	}
	if !c.Handover.IsZero() {
		if err := c.Handover.valid(); err != nil {
			bad("oncall.handover: %v", err)
		}
	}
	seen := map[Member]int{}
	for i, m := range c.Rotation {
		at := fmt.Sprintf("oncall.rotation[%d]", i)
		switch {
		case m.Platform != PlatformSlack && m.Platform != PlatformDiscord:
			bad(`%s: platform %q is not slack or discord: write "- slack: U0123ABCD" or "- discord: \"123456789012345678\""`, at, m.Platform)
		case !userID.MatchString(m.UserID):
			bad("%s: %q is not a %s user id: use the id (Slack: profile, Copy member ID; Discord: Copy User ID), not a name or mention", at, m.UserID, m.Platform)
		}
		if j, dup := seen[m]; dup {
			bad("%s: %s is already oncall.rotation[%d]: list each expert once", at, m, j)
		} else {
			seen[m] = i
		}
	}
	if c.PageAfter < MinPageAfter {
		bad("oncall.page_after %s is too short: use at least 1m (default 15m)", c.PageAfter)
	}
	return errors.Join(errs...)
}

// Member is one person on the rotation: a chat account. In YAML it is a
// one-key mapping, `slack: U0EXPERT1` or `discord: "100000000000000001"`.
type Member struct {
	// Platform is PlatformSlack or PlatformDiscord.
	Platform string `json:"platform"`
	// UserID is the platform's user id (Slack U…/W…, a Discord snowflake).
	UserID string `json:"user_id"`
}

// IsZero reports whether m names nobody.
func (m Member) IsZero() bool { return m.UserID == "" }

// String is "slack:U0EXPERT1", for logs and errors.
func (m Member) String() string {
	if m.IsZero() {
		return "nobody"
	}
	return m.Platform + ":" + m.UserID
}

// UnmarshalYAML reads `slack: U…` or `discord: "…"`. Problems are returned
// as *yaml.TypeError, so the decoder goes on and reports them with the file's
// other type errors.
func (m *Member) UnmarshalYAML(n *yaml.Node) error {
	fail := func() error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			`line %d: an oncall.rotation entry is one account, "- slack: U0123ABCD" or "- discord: \"123456789012345678\"" (quote Discord ids)`, n.Line)}}
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return fail()
	}
	k, v := n.Content[0], n.Content[1]
	if v.Kind != yaml.ScalarNode || (k.Value != PlatformSlack && k.Value != PlatformDiscord) {
		return fail()
	}
	*m = Member{Platform: k.Value, UserID: v.Value}
	return nil
}

// MarshalYAML writes the one-key mapping UnmarshalYAML reads.
func (m Member) MarshalYAML() (any, error) {
	return map[string]string{m.Platform: m.UserID}, nil
}

// Period is how often the pager passes on.
type Period int

// Periods. The zero Period means no hand-over is configured.
const (
	Daily Period = iota + 1
	Weekly
)

// Handover is when the pager passes on: every day, or every week on Weekday,
// at Hour:Minute wall-clock time in the rotation's time zone. The zero value
// is "not set".
type Handover struct {
	Period Period
	// Weekday is used when Period is Weekly.
	Weekday time.Weekday
	// Hour (0-23) and Minute (0-59) are the local wall-clock time.
	Hour, Minute int
}

// IsZero reports whether no hand-over is set.
func (h Handover) IsZero() bool { return h.Period == 0 }

// String is the spec ParseHandover reads: "Mon 09:00" or "daily 09:00".
func (h Handover) String() string {
	switch h.Period {
	case Daily:
		return fmt.Sprintf("daily %02d:%02d", h.Hour, h.Minute)
	case Weekly:
		return fmt.Sprintf("%s %02d:%02d", h.Weekday.String()[:3], h.Hour, h.Minute)
	}
	return ""
}

func (h Handover) valid() error {
	if h.Period != Daily && h.Period != Weekly {
		return fmt.Errorf("unknown period %d", h.Period)
	}
	if h.Period == Weekly && (h.Weekday < time.Sunday || h.Weekday > time.Saturday) {
		return fmt.Errorf("weekday %d is not a day of the week", h.Weekday)
	}
	if h.Hour < 0 || h.Hour > 23 || h.Minute < 0 || h.Minute > 59 {
		return fmt.Errorf("%02d:%02d is not a time of day: use 00:00 to 23:59", h.Hour, h.Minute)
	}
	return nil
}

// weekday reads "mon" or "monday" (lower case).
func weekday(s string) (time.Weekday, bool) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if name := strings.ToLower(d.String()); s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// ParseHandover reads a hand-over spec: a weekday (Mon or Monday, any case)
// or "daily", a space, and a 24-hour time H:MM or HH:MM. The time zone is not
// part of the spec: it is the config's top-level timezone.
func ParseHandover(s string) (Handover, error) {
	bad := func(why string) (Handover, error) {
		return Handover{}, fmt.Errorf(`%q is not a hand-over: %s; write a weekday and a 24-hour time, e.g. "Mon 09:00", or "daily 09:00" (the time zone is the top-level timezone)`, s, why)
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return bad("expected two words")
	}
	var h Handover
	if day := strings.ToLower(f[0]); day == "daily" {
		h.Period = Daily
	} else if wd, ok := weekday(day); ok {
		h.Period, h.Weekday = Weekly, wd
	} else {
		return bad(fmt.Sprintf("%q is not a weekday or daily", f[0]))
	}
	hh, mm, ok := strings.Cut(f[1], ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 {
		return bad(fmt.Sprintf("%q is not a time such as 09:00", f[1]))
	}
	var err1, err2 error
	h.Hour, err1 = strconv.Atoi(hh)
	h.Minute, err2 = strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h.Hour < 0 || h.Hour > 23 || h.Minute < 0 || h.Minute > 59 {
		return bad(fmt.Sprintf("%q is not a time between 00:00 and 23:59", f[1]))
	}
	return h, nil
}

// UnmarshalYAML reads a spec with ParseHandover. A bad spec is returned as a
// *yaml.TypeError, so the decoder reports it with the file's other type
// errors.
func (h *Handover) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(`line %d: oncall.handover must be a string such as "Mon 09:00" or "daily 09:00"`, n.Line)}}
	}
	v, err := ParseHandover(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: oncall.handover %v", n.Line, err)}}
	}
	*h = v
	return nil
}

// MarshalYAML writes the spec.
func (h Handover) MarshalYAML() (any, error) { return h.String(), nil }
