package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

var raw = bytes.Repeat([]byte{0xA5, 0x01, 0x7F, 0x33}, 8)

func TestParse(t *testing.T) {
	t.Parallel()
	want, err := secrets.Parse(hex.EncodeToString(raw))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, in string
		err      string
	}{
		{name: "hex", in: hex.EncodeToString(raw)},
		{name: "hex upper with newline", in: strings.ToUpper(hex.EncodeToString(raw)) + "\n"},
		{name: "base64", in: base64.StdEncoding.EncodeToString(raw)},
		{name: "base64 raw", in: base64.RawStdEncoding.EncodeToString(raw)},
		{name: "base64url", in: base64.URLEncoding.EncodeToString(raw)},
		{name: "empty", in: " ", err: "it is empty"},
		{name: "short hex", in: hex.EncodeToString(raw[:16]), err: "decodes to 16 bytes"},
		{name: "not base64", in: "this is not a key!", err: "neither hex nor base64"},
		{name: "zero", in: strings.Repeat("0", 64), err: "all zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := secrets.Parse(tc.in)
			if tc.err != "" {
				require.ErrorIs(t, err, secrets.ErrInvalidKey)
				require.ErrorContains(t, err, tc.err)
				if v := strings.TrimSpace(tc.in); v != "" {
					require.NotContains(t, err.Error(), v, "the value never appears in the error")
				}
				return
			}
			require.NoError(t, err)
			require.True(t, want.Equal(k))
		})
	}
}

func TestKeyNeverPrints(t *testing.T) {
	t.Parallel()
	k, err := secrets.Parse(hex.EncodeToString(raw))
	require.NoError(t, err)
	hexKey, b64Key := hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("key", "ptr", k, "value", *k)
	js, err := json.Marshal(map[string]any{"k": k, "v": *k})
	require.NoError(t, err)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprint(*k), fmt.Sprintf("%v %+v %#v %x %s", k, *k, *k, *k, k), logged.String(), string(js),
	} {
		require.NotContains(t, strings.ToLower(s), hexKey)
		require.NotContains(t, s, b64Key)
		require.NotContains(t, s, "165", "no byte values (0xA5 = 165)")
		require.Contains(t, s, k.Fingerprint())
	}
	require.Len(t, k.Fingerprint(), 16)
}

func TestStringNeverPrints(t *testing.T) {
	t.Parallel()
	const token = "xoxb-S3CR3T"
	s := secrets.String(token)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "token", s, "in", struct{ T secrets.String }{s})
	js, err := json.Marshal(map[string]any{"t": s})
	require.NoError(t, err)
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %d", s, s, s, s, s, s, s), fmt.Sprintf("%+v", struct{ T secrets.String }{s}),
		logged.String(), string(js),
	} {
		require.NotContains(t, out, "S3CR3T")
		require.Contains(t, out, "[redacted]")
	}
	require.Equal(t, token, s.Value())
	require.Empty(t, secrets.String("").String(), "unset prints as unset")
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	t.Parallel()
	k, err := secrets.Parse(hex.EncodeToString(raw))
	require.NoError(t, err)
	purposes := []secrets.Purpose{secrets.PurposeTimelineEntry, secrets.PurposeTimelineHead, secrets.PurposeSampleEncryption,
		secrets.PurposeTokenEncryption, secrets.PurposeLinkSigning, secrets.PurposeSessionSigning}
	seen := map[string]secrets.Purpose{}
	for _, p := range purposes {
		d := k.Derive(p)
		require.Len(t, d, secrets.KeySize)
		require.Equal(t, d, k.Derive(p), "deterministic")
		require.NotEqual(t, raw, d, "never the master key itself")
		prev, dup := seen[string(d)]
		require.False(t, dup, "%s and %s share a subkey", p, prev)
		seen[string(d)] = p
	}
	other, err := secrets.Generate()
	require.NoError(t, err)
	require.NotEqual(t, k.Derive(secrets.PurposeTimelineEntry), other.Derive(secrets.PurposeTimelineEntry))

	// MAC parts are length-prefixed.
	require.NotEqual(t, k.MAC(secrets.PurposeTimelineHead, []byte("ab"), []byte("c")), k.MAC(secrets.PurposeTimelineHead, []byte("a"), []byte("bc")))
	require.NotEqual(t, k.MAC(secrets.PurposeTimelineHead, []byte("x")), k.MAC(secrets.PurposeTimelineEntry, []byte("x")))
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k, err := secrets.Generate()
	require.NoError(t, err)
	other, err := secrets.Generate()
	require.NoError(t, err)
	msg := []byte("xoxb-workspace-token")
	aad := []byte("T0CONTOSO")
	sealed, err := k.Seal(secrets.PurposeTokenEncryption, msg, aad)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), string(msg))
	again, err := k.Seal(secrets.PurposeTokenEncryption, msg, aad)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce every time")

	got, err := k.Open(secrets.PurposeTokenEncryption, sealed, aad)
	require.NoError(t, err)
	require.Equal(t, msg, got)

	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"other key":     func() ([]byte, error) { return other.Open(secrets.PurposeTokenEncryption, sealed, aad) },
		"other purpose": func() ([]byte, error) { return k.Open(secrets.PurposeSampleEncryption, sealed, aad) },
		"other aad":     func() ([]byte, error) { return k.Open(secrets.PurposeTokenEncryption, sealed, []byte("T0OTHER")) },
		"changed":       func() ([]byte, error) { return k.Open(secrets.PurposeTokenEncryption, flipped, aad) },
		"truncated":     func() ([]byte, error) { return k.Open(secrets.PurposeTokenEncryption, sealed[:10], aad) },
	} {
		_, err := try()
		require.ErrorIs(t, err, secrets.ErrOpen, name)
	}
}

func TestSignedTokens(t *testing.T) {
	t.Parallel()
	k, err := secrets.Generate()
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tok := k.SignToken(secrets.PurposeLinkSigning, []byte("upload:EOD-12"), now.Add(time.Hour))
	require.NotContains(t, tok, "=", "URL-safe without padding")
	got, err := k.VerifyToken(secrets.PurposeLinkSigning, tok, now)
	require.NoError(t, err)
	require.Equal(t, "upload:EOD-12", string(got))

	_, err = k.VerifyToken(secrets.PurposeLinkSigning, tok, now.Add(time.Hour))
	require.ErrorIs(t, err, secrets.ErrExpired)
	_, err = k.VerifyToken(secrets.PurposeSessionSigning, tok, now)
	require.ErrorIs(t, err, secrets.ErrOpen, "a link token is no session")

	body, sig, _ := strings.Cut(tok, ".")
	forged := k.SignToken(secrets.PurposeLinkSigning, []byte("upload:EOD-13"), now.Add(time.Hour))
	fbody, _, _ := strings.Cut(forged, ".")
	for name, bad := range map[string]string{
		"swapped body": fbody + "." + sig,
		"no signature": body,
		"garbage":      "!!!.???",
		"empty":        "",
		// The same bytes with other unused trailing bits: one token has one
		// spelling (an install link recorded as used by its text was used
		// again under a sibling one).
		"sibling signature": body + "." + sibling(sig),
		"sibling body":      sibling(body) + "." + sig,
		"line breaks":       body[:3] + "\n" + body[3:] + "." + sig + "\r",
	} {
		_, err := k.VerifyToken(secrets.PurposeLinkSigning, bad, now)
		require.ErrorIs(t, err, secrets.ErrOpen, name)
	}
}

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	// Several processes starting at once agree on one key.
	var wg sync.WaitGroup
	keys := make([]*secrets.Key, 8)
	created := make([]bool, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Go(func() { keys[i], created[i], errs[i] = secrets.LoadOrCreate(dir) })
	}
	wg.Wait()
	n := 0
	for i := range keys {
		require.NoError(t, errs[i])
		require.True(t, keys[0].Equal(keys[i]))
		if created[i] {
			n++
		}
	}
	require.Equal(t, 1, n, "generated exactly once")
	path := filepath.Join(dir, secrets.KeyFile)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files left behind")

	again, made, err := secrets.LoadOrCreate(dir)
	require.NoError(t, err)
	require.False(t, made)
	require.True(t, keys[0].Equal(again), "the next start reads the same key")

	require.NoError(t, os.Chmod(path, 0o644))
	_, _, err = secrets.LoadOrCreate(dir)
	require.ErrorContains(t, err, "chmod 600")

	require.NoError(t, os.WriteFile(path, []byte("nonsense"), 0o600))
	require.NoError(t, os.Chmod(path, 0o600))
	_, _, err = secrets.LoadOrCreate(dir)
	require.ErrorIs(t, err, secrets.ErrInvalidKey)
}

// sibling is s (unpadded base64url whose last character has unused bits)
// with the last of them flipped: other text, the same bytes.
func sibling(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}
