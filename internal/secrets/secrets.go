// Package secrets holds threatdesk's master key (THREATDESK_SECRET_KEY) and
// what is built on it: purpose-specific subkeys, authenticated encryption of
// stored secrets and samples, and signed, expiring tokens for links and
// sessions.
//
// The master key is 32 random bytes, given as 64 hex characters or as
// base64 (standard or URL alphabet, padded or not). It is never used
// directly: every use derives its own subkey with HKDF-SHA256 from the key
// and a Purpose, so that a MAC made for the timeline can never pass as a
// link signature, and a leaked subkey reveals neither the key nor the others.
//
// With the embedded database and no THREATDESK_SECRET_KEY, LoadOrCreate
// generates the key once into the data directory (file KeyFile, mode 0600)
// and reads it back on later starts. A Key never prints, logs or marshals
// its value: String, GoString, LogValue and MarshalText all redact it.
// Fingerprint names a key (for logs and "which key is this?") without
// revealing it.
package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the size of the master key in bytes.
const KeySize = 32

// Purpose names what a subkey is for. Each purpose gets an unrelated key;
// the version suffix lets a purpose change its construction later without
// reusing a key.
type Purpose string

// Purposes. New features add theirs here, so that every use of the master
// key is listed in one place.
const (
	// PurposeTimelineEntry keys the HMAC chain of a case's timeline.
	PurposeTimelineEntry Purpose = "threatdesk/timeline-entry/v1"
	// PurposeTimelineHead keys the MAC over a case's chain head and length,
	// and the seal over the legacy (unkeyed) timelines.
	PurposeTimelineHead Purpose = "threatdesk/timeline-head/v1"
	// PurposeSampleEncryption encrypts stored file samples (Seal, Open).
	PurposeSampleEncryption Purpose = "threatdesk/sample-encryption/v1"
	// PurposeTokenEncryption encrypts stored secrets such as workspace
	// tokens (Seal, Open).
	PurposeTokenEncryption Purpose = "threatdesk/token-encryption/v1"
	// PurposeLinkSigning signs one-time links (SignToken, VerifyToken).
	PurposeLinkSigning Purpose = "threatdesk/link-signing/v1"
	// PurposeSessionSigning signs web sessions (SignToken, VerifyToken).
	PurposeSessionSigning Purpose = "threatdesk/session-signing/v1"
	// PurposeSlackToken encrypts the bot tokens of the Slack workspaces
	// that installed the app (Seal, Open; the team id is the associated data).
	PurposeSlackToken Purpose = "threatdesk/slack-workspace-token/v1"
	// PurposeSlackInstall signs Add to Slack install links, whose sealed
	// state names the org and who asked (SignToken, VerifyToken).
	PurposeSlackInstall Purpose = "threatdesk/slack-install-state/v1"
	// PurposeSlackInstallSeal encrypts the install state before it is
	// signed, so that whoever holds the link cannot read who asked for it
	// (Seal, Open).
	PurposeSlackInstallSeal Purpose = "threatdesk/slack-install-state-seal/v1"

	purposeFingerprint Purpose = "threatdesk/key-fingerprint/v1"
)

// ErrInvalidKey is wrapped by Parse's errors. The messages never contain
// the offending value.
var ErrInvalidKey = errors.New("invalid secret key")

// Key is the master key. The zero Key is not usable; get one from Parse,
// Generate or LoadOrCreate.
type Key struct {
	b [KeySize]byte
}

// Parse reads a key written as 64 hex characters or as base64 of 32 bytes
// (standard or URL alphabet, with or without padding). Surrounding spaces
// and a trailing newline are ignored.
func Parse(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: it is empty: use 32 random bytes as hex or base64, e.g. `openssl rand -hex 32`", ErrInvalidKey)
	}
	var raw []byte
	if len(s)%2 == 0 {
		// Even-length hex is hex (base64 of 32 bytes is 43 or 44 characters,
		// and never all hex digits with padding).
		if b, err := hex.DecodeString(s); err == nil {
			raw = b
		}
	}
	if raw == nil {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				raw = b
				break
			}
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: it is neither hex nor base64 (%d characters): use 32 random bytes, e.g. `openssl rand -hex 32`", ErrInvalidKey, len(s))
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("%w: it decodes to %d bytes, not %d: use 32 random bytes, e.g. `openssl rand -hex 32`", ErrInvalidKey, len(raw), KeySize)
	}
	k := &Key{}
	copy(k.b[:], raw)
	clear(raw)
	if k.isZero() {
		return nil, fmt.Errorf("%w: it is all zero bytes: use 32 random bytes, e.g. `openssl rand -hex 32`", ErrInvalidKey)
	}
	return k, nil
}

// Generate returns a new random key.
func Generate() (*Key, error) {
	k := &Key{}
	if _, err := rand.Read(k.b[:]); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	return k, nil
}

func (k *Key) isZero() bool {
	var zero [KeySize]byte
	return hmac.Equal(k.b[:], zero[:])
}

// Encode returns the key as 64 hex characters: what Parse reads and
// LoadOrCreate writes. Only for writing the key where it is kept.
func (k *Key) Encode() string { return hex.EncodeToString(k.b[:]) }

// Equal reports whether two keys are the same, in constant time.
func (k *Key) Equal(o *Key) bool { return k != nil && o != nil && hmac.Equal(k.b[:], o.b[:]) }

// Derive returns the 32-byte subkey for p: HKDF-SHA256 with the master key
// as input keying material, no salt, and p as info.
func (k *Key) Derive(p Purpose) []byte {
	if p == "" {
		panic("secrets: Derive needs a purpose")
	}
	out, err := hkdf.Key(sha256.New, k.b[:], nil, string(p), KeySize)
	if err != nil {
		// Only a length beyond 255*32 bytes fails; 32 never does.
		panic("secrets: derive subkey: " + err.Error())
	}
	return out
}

// MAC returns HMAC-SHA256 of the parts, in order, under the subkey for p.
// Parts are length-prefixed, so ("ab", "c") and ("a", "bc") differ.
func (k *Key) MAC(p Purpose, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, k.Derive(p))
	var n [8]byte
	for _, part := range parts {
		l := uint64(len(part))
		for i := range n {
			n[7-i] = byte(l >> (8 * i))
		}
		m.Write(n[:])
		m.Write(part)
	}
	return m.Sum(nil)
}

// Fingerprint is a short, one-way name of the key (16 hex characters):
// safe to log, and the same for the same key everywhere.
func (k Key) Fingerprint() string { return hex.EncodeToString(k.Derive(purposeFingerprint)[:8]) }

// The methods below have value receivers so that a Key copied by value
// hides itself as well as a *Key does.

// String hides the key.
func (k Key) String() string { return "[secret key " + k.Fingerprint() + "]" }

// GoString hides the key from %#v.
func (k Key) GoString() string { return k.String() }

// Format hides the key from every fmt verb (%x and %v of the struct included).
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue hides the key from slog.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText hides the key from encoders (JSON, YAML, slog's JSON handler).
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

var (
	_ slog.LogValuer = Key{}
	_ fmt.Formatter  = Key{}
)
