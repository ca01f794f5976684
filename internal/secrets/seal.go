package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// sealVersion is the first byte of a sealed value: AES-256-GCM with a
// random 96-bit nonce under the purpose's subkey.
const sealVersion byte = 1

// ErrOpen is returned when a sealed value or a token does not verify: wrong
// key or purpose, changed bytes, or the wrong associated data.
var ErrOpen = errors.New("sealed value does not verify")

// ErrExpired is returned for a token past its expiry.
var ErrExpired = errors.New("token expired")

func (k *Key) aead(p Purpose) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.Derive(p))
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return cipher.NewGCM(block)
}

// Seal encrypts and authenticates plaintext under the subkey for p.
// Associated data (aad) is authenticated but not stored: pass what the value
// belongs to (a case reference, a workspace id) so that a sealed value moved
// to another row does not open there. The result is a version byte, the
// nonce and the ciphertext with its tag (29 bytes longer than plaintext).
func (k *Key) Seal(p Purpose, plaintext, aad []byte) ([]byte, error) {
	g, err := k.aead(p)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+g.NonceSize(), 1+g.NonceSize()+len(plaintext)+g.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return g.Seal(out, out[1:], plaintext, aad), nil
}

// Open reverses Seal. It returns ErrOpen when the value was not sealed with
// this key, purpose and associated data, or was changed.
func (k *Key) Open(p Purpose, sealed, aad []byte) ([]byte, error) {
	g, err := k.aead(p)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+g.NonceSize()+g.Overhead() || sealed[0] != sealVersion {
		return nil, ErrOpen
	}
	n := 1 + g.NonceSize()
	out, err := g.Open(nil, sealed[1:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// tokenVersion is the first byte of a signed token's body.
const tokenVersion byte = 1

// b64 is strict, and VerifyToken also takes a token only as SignToken wrote
// it (the decoder skips line breaks): one token has one spelling, so a use
// recorded by its text cannot be repeated under another.
var b64 = base64.RawURLEncoding.Strict()

// SignToken returns a URL-safe token carrying payload until expires, signed
// under the subkey for p: base64url(version, expiry in Unix seconds,
// payload) "." base64url(HMAC-SHA256). The payload is readable by whoever
// holds the token: put ids in it, not secrets.
func (k *Key) SignToken(p Purpose, payload []byte, expires time.Time) string {
	body := make([]byte, 9, 9+len(payload))
	body[0] = tokenVersion
	binary.BigEndian.PutUint64(body[1:], uint64(expires.Unix()))
	body = append(body, payload...)
	return b64.EncodeToString(body) + "." + b64.EncodeToString(k.tokenMAC(p, body))
}

func (k *Key) tokenMAC(p Purpose, body []byte) []byte {
	m := hmac.New(sha256.New, k.Derive(p))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyToken checks a token made by SignToken with the same purpose and
// returns its payload. A token whose signature fails is ErrOpen; one past
// its expiry at now is ErrExpired (checked only after the signature).
func (k *Key) VerifyToken(p Purpose, token string, now time.Time) ([]byte, error) {
	bodyPart, sigPart, ok := strings.Cut(token, ".")
	if !ok {
		return nil, ErrOpen
	}
	body, err := b64.DecodeString(bodyPart)
	if err != nil || len(body) < 9 || body[0] != tokenVersion || b64.EncodeToString(body) != bodyPart {
		return nil, ErrOpen
	}
	sig, err := b64.DecodeString(sigPart)
	if err != nil || !hmac.Equal(sig, k.tokenMAC(p, body)) || b64.EncodeToString(sig) != sigPart {
		return nil, ErrOpen
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(body[1:9])), 0)
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return bytes.Clone(body[9:]), nil
}
