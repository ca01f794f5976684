package insight

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// DefaultWindow is how far back experts see sightings by default.
const DefaultWindow = 30 * 24 * time.Hour

// Limits of insight.window.
const (
	MinWindow = time.Hour
	MaxWindow = 365 * 24 * time.Hour
)

// Config is the `insight` block of the config file (README.md).
type Config struct {
	// Window is how far back experts see sightings across orgs: an
	// indicator counts where it was seen, and a case where it changed,
	// within it (insight.window; default 30d, between 1h and 365d).
	Window time.Duration `yaml:"window"`
	// Now is the clock (tests pin it); nil: time.Now.
	Now func() time.Time `yaml:"-"`
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	c.Window = cmp.Or(c.Window, DefaultWindow)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks a Config with its defaults filled and says how to fix
// what is wrong.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Window < MinWindow:
		errs = append(errs, fmt.Errorf("insight.window %s is too short: experts would see almost no sightings; use at least 1h (default 30d)", c.Window))
	case c.Window > MaxWindow:
		errs = append(errs, fmt.Errorf("insight.window %s is too long: use at most 365d (default 30d)", c.Window))
	}
	return errors.Join(errs...)
}
