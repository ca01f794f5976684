// Package aeszip writes ZIP archives whose entries are encrypted with
// WinZip's AES-256 scheme (AE-2), the format 7-Zip, WinZip, WinRAR,
// libarchive (bsdtar), Python's pyzipper and the malware exchanges read as
// "a ZIP with a password". threatdesk hands file samples to experts this
// way, with the password "infected", so that mail and endpoint filters
// leave them alone.
//
// It sits on archive/zip (Writer.CreateRaw): this package encrypts and
// authenticates, archive/zip lays out the headers and the central
// directory. Entries are stored (not compressed) and streamed: the size is
// declared up front, the bytes pass through in small pieces, and nothing is
// held in memory but the piece being encrypted.
//
// The format (WinZip, "AES Encryption Information: Encryption
// Specification AE-1 and AE-2"): the header says compression method 99 and
// carries the extra field 0x9901 (vendor version 2 "AE", strength 3 =
// AES-256, the real method 0 = stored); the entry's data is a random 16-byte
// salt, a 2-byte password verifier, the AES-256-CTR ciphertext (a 128-bit
// little-endian counter starting at 1) and the first 10 bytes of
// HMAC-SHA1 over the ciphertext. The keys come from PBKDF2-HMAC-SHA1 of the
// password and the salt, 1000 iterations, 66 bytes: the AES key, the HMAC
// key and the verifier. AE-2 stores no CRC-32 (the HMAC authenticates).
//
//	zw := aeszip.NewWriter(w, "infected")
//	f, err := zw.Create(aeszip.Header{Name: "sample.exe", Size: size, Modified: t})
//	_, err = io.Copy(f, body)  // exactly size bytes
//	err = zw.Close()
package aeszip

import (
	"archive/zip"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode/utf8"
)

// Format constants (WinZip AE-2).
const (
	// MethodAES is the compression method of an AES-encrypted entry.
	MethodAES = 99
	// ExtraAES is the id of the AES extra field.
	ExtraAES = 0x9901
	// Iterations is the PBKDF2 iteration count the format fixes.
	Iterations = 1000
	saltLen    = 16 // AES-256
	keyLen     = 32
	pwvLen     = 2
	macLen     = 10
	// Overhead is what encryption adds to an entry's size: salt, password
	// verifier and authentication code.
	Overhead = saltLen + pwvLen + macLen
	// MaxSize bounds an entry: beyond 4 GiB a ZIP needs ZIP64 extensions,
	// which this writer does not produce.
	MaxSize = 1<<32 - 1 - Overhead
	// version 5.1: AES encryption.
	zipVersion51  = 51
	flagEncrypted = 0x1
	flagUTF8      = 0x800
)

// Header describes an entry.
type Header struct {
	// Name is the entry's name inside the archive (use a plain file name).
	Name string
	// Size is the exact number of bytes that will be written.
	Size int64
	// Modified is the modification time shown by extractors (zero: now).
	Modified time.Time
}

// Writer writes an AES-encrypted ZIP archive to an io.Writer.
type Writer struct {
	zw       *zip.Writer
	password string
	cur      *entry
	// Rand supplies the salts (default crypto/rand).
	Rand io.Reader
}

// NewWriter returns a Writer that encrypts every entry with password.
func NewWriter(w io.Writer, password string) *Writer {
	return &Writer{zw: zip.NewWriter(w), password: password, Rand: rand.Reader}
}

// ArchiveSize is the exact size in bytes of the archive a Writer writes
// with these entries and archive comment, for a Content-Length.
func ArchiveSize(comment string, entries ...Header) int64 {
	const (
		localHeader   = 30
		centralHeader = 46
		endOfDir      = 22
		extra         = 11 // the AES extra field
	)
	n := int64(endOfDir + len(comment))
	for _, h := range entries {
		n += localHeader + int64(len(h.Name)) + extra + h.Size + Overhead
		n += centralHeader + int64(len(h.Name)) + extra
	}
	return n
}

// SetComment sets the archive's comment, which is not encrypted.
func (w *Writer) SetComment(c string) error { return w.zw.SetComment(c) }

// Create starts an entry and returns the writer of its content, which must
// receive exactly h.Size bytes before the next Create or Close.
func (w *Writer) Create(h Header) (io.Writer, error) {
	if err := w.finish(); err != nil {
		return nil, err
	}
	if h.Name == "" || !utf8.ValidString(h.Name) {
		return nil, errors.New("aeszip: an entry needs a valid UTF-8 name")
	}
	if h.Size < 0 || h.Size > MaxSize {
		return nil, fmt.Errorf("aeszip: entry size %d is outside 0..%d", h.Size, int64(MaxSize))
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(w.Rand, salt); err != nil {
		return nil, fmt.Errorf("aeszip: salt: %w", err)
	}
	keys, err := pbkdf2.Key(sha1.New, w.password, salt, Iterations, 2*keyLen+pwvLen)
	if err != nil {
		return nil, fmt.Errorf("aeszip: derive keys: %w", err)
	}
	block, err := aes.NewCipher(keys[:keyLen])
	if err != nil {
		return nil, fmt.Errorf("aeszip: %w", err)
	}
	mod := h.Modified
	if mod.IsZero() {
		mod = time.Now()
	}
	fh := &zip.FileHeader{
		Name:               h.Name,
		Method:             MethodAES,
		Flags:              flagEncrypted,
		CreatorVersion:     zipVersion51, // host 0: MS-DOS attributes
		ReaderVersion:      zipVersion51,
		CRC32:              0, // AE-2: no CRC, the HMAC authenticates
		CompressedSize64:   uint64(h.Size) + Overhead,
		UncompressedSize64: uint64(h.Size),
		Extra:              aesExtra(zip.Store),
	}
	fh.ModifiedDate, fh.ModifiedTime = dosTime(mod)
	for _, r := range h.Name {
		if r >= utf8.RuneSelf {
			fh.Flags |= flagUTF8
			break
		}
	}
	raw, err := w.zw.CreateRaw(fh)
	if err != nil {
		return nil, fmt.Errorf("aeszip: %w", err)
	}
	if _, err := raw.Write(salt); err != nil {
		return nil, err
	}
	if _, err := raw.Write(keys[2*keyLen:]); err != nil {
		return nil, err
	}
	w.cur = &entry{raw: raw, ctr: newCTR(block), mac: hmac.New(sha1.New, keys[keyLen:2*keyLen]), size: h.Size, name: h.Name}
	return w.cur, nil
}

// Close finishes the last entry and writes the central directory. It does
// not close the underlying writer.
func (w *Writer) Close() error {
	if err := w.finish(); err != nil {
		return err
	}
	return w.zw.Close()
}

// finish writes the current entry's authentication code.
func (w *Writer) finish() error {
	e := w.cur
	if e == nil {
		return nil
	}
	w.cur = nil
	if e.n != e.size {
		return fmt.Errorf("aeszip: entry %q got %d bytes, not the %d declared", e.name, e.n, e.size)
	}
	_, err := e.raw.Write(e.mac.Sum(nil)[:macLen])
	return err
}

// aesExtra is the AES extra field: vendor version 2 (AE-2), vendor "AE",
// strength 3 (AES-256), the real compression method.
func aesExtra(method uint16) []byte {
	b := make([]byte, 0, 11)
	b = binary.LittleEndian.AppendUint16(b, ExtraAES)
	b = binary.LittleEndian.AppendUint16(b, 7)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = append(b, 'A', 'E', 3)
	return binary.LittleEndian.AppendUint16(b, method)
}

// dosTime is t as MS-DOS date and time (2-second precision, 1980..2107).
func dosTime(t time.Time) (date, tm uint16) {
	switch {
	case t.Year() < 1980:
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2107:
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}

// entry encrypts and authenticates one entry's content.
type entry struct {
	raw     io.Writer
	ctr     *ctr
	mac     hash.Hash
	size, n int64
	name    string
	buf     [32 << 10]byte
}

func (e *entry) Write(p []byte) (int, error) {
	if e.n+int64(len(p)) > e.size {
		return 0, fmt.Errorf("aeszip: entry %q is declared %d bytes; more were written", e.name, e.size)
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), len(e.buf))
		ct := e.buf[:n]
		e.ctr.xor(ct, p[:n])
		e.mac.Write(ct)
		if _, err := e.raw.Write(ct); err != nil {
			return written, err
		}
		e.n += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// ctr is AES in counter mode with WinZip's little-endian 128-bit counter,
// starting at 1 (crypto/cipher's CTR counts big-endian).
type ctr struct {
	block   cipher.Block
	counter [aes.BlockSize]byte
	stream  [32 * aes.BlockSize]byte
	pos     int
}

func newCTR(b cipher.Block) *ctr {
	c := &ctr{block: b}
	c.pos = len(c.stream)
	return c
}

func (c *ctr) refill() {
	for i := 0; i < len(c.stream); i += aes.BlockSize {
		for j := range c.counter { // increment, little-endian: the first block uses 1
			c.counter[j]++
			if c.counter[j] != 0 {
				break
			}
		}
		c.block.Encrypt(c.stream[i:i+aes.BlockSize], c.counter[:])
	}
	c.pos = 0
}

func (c *ctr) xor(dst, src []byte) {
	for len(src) > 0 {
		if c.pos == len(c.stream) {
			c.refill()
		}
		n := subtle.XORBytes(dst, src, c.stream[c.pos:])
		c.pos += n
		dst, src = dst[n:], src[n:]
	}
}
