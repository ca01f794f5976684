package secrets

import (
	"fmt"
	"log/slog"
)

// String is a secret given as text (a bot token, a signing secret, an ingest
// token, an OAuth client secret) that never prints itself: String, GoString,
// Format, LogValue and MarshalText all redact it, so a config holding one can
// be logged or printed with %+v. Value is the secret, for the one place that
// uses it.
type String string

// Value is the secret itself.
func (s String) Value() string { return string(s) }

// String hides the value: "[redacted]", or "" when unset.
func (s String) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s String) GoString() string { return s.String() }

// Format hides the value from every verb (%s, %v, %q, %x, ...).
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue hides the value from log/slog.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from encoders (slog's JSON handler among them).
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
