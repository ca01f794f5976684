package aeszip_test

import (
	"archive/zip"
	"bytes"
	"crypto/aes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/aeszip"
)

// Extract reads an AE-2 archive with a reference implementation written
// from the specification, byte by byte: it checks the extra field, the
// password verifier and the authentication code, and returns the entries.
func Extract(t *testing.T, archive []byte, password string) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, f := range zr.File {
		require.EqualValues(t, aeszip.MethodAES, f.Method)
		require.NotZero(t, f.Flags&1, "the encrypted flag")
		require.Zero(t, f.CRC32, "AE-2 stores no CRC")
		require.Equal(t, []byte{0x01, 0x99, 7, 0, 2, 0, 'A', 'E', 3, 0, 0}, f.Extra, "AES extra: AE-2, AES-256, stored")
		r, err := f.OpenRaw()
		require.NoError(t, err)
		raw, err := io.ReadAll(r)
		require.NoError(t, err)
		require.EqualValues(t, len(raw), f.CompressedSize64)
		require.EqualValues(t, f.UncompressedSize64+aeszip.Overhead, f.CompressedSize64)
		salt, pwv, ct, mac := raw[:16], raw[16:18], raw[18:len(raw)-10], raw[len(raw)-10:]
		keys, err := pbkdf2.Key(sha1.New, password, salt, 1000, 66)
		require.NoError(t, err)
		require.Equal(t, keys[64:], pwv, "password verifier")
		m := hmac.New(sha1.New, keys[32:64])
		m.Write(ct)
		require.Equal(t, m.Sum(nil)[:10], mac, "authentication code")
		block, err := aes.NewCipher(keys[:32])
		require.NoError(t, err)
		plain := make([]byte, len(ct))
		var ks [16]byte
		for i := range ct {
			if i%16 == 0 {
				var ctr [16]byte
				binary.LittleEndian.PutUint64(ctr[:8], uint64(i/16+1))
				block.Encrypt(ks[:], ctr[:])
			}
			plain[i] = ct[i] ^ ks[i%16]
		}
		out[f.Name] = plain
	}
	return out
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// files of sizes around the block and buffer boundaries.
func files(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"empty.txt": {}}
	for _, n := range []int{1, 15, 16, 17, 511, 512, 513, 32 << 10, 32<<10 + 1, 300001} {
		out[fmt.Sprintf("f%d.bin", n)] = random(t, n)
	}
	out["échantillon-样本.exe"] = []byte("MZ a file with a name that is not ASCII")
	return out
}

func write(t *testing.T, fs map[string][]byte, password string, piece int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := aeszip.NewWriter(&buf, password)
	require.NoError(t, zw.SetComment("threatdesk test archive"))
	for name, b := range fs {
		w, err := zw.Create(aeszip.Header{Name: name, Size: int64(len(b)), Modified: time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)})
		require.NoError(t, err)
		for p := b; len(p) > 0; {
			n := min(piece, len(p))
			_, err := w.Write(p[:n])
			require.NoError(t, err)
			p = p[n:]
		}
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	fs := files(t)
	for _, piece := range []int{1, 7, 4096, 1 << 20} {
		archive := write(t, fs, "infected", piece)
		require.Equal(t, fs, Extract(t, archive, "infected"))
		for _, b := range fs {
			if len(b) >= 16 {
				require.False(t, bytes.Contains(archive, b[:16]), "plaintext in the archive")
			}
		}
	}
}

func TestArchiveSize(t *testing.T) {
	t.Parallel()
	fs := files(t)
	var hs []aeszip.Header
	for name, b := range fs {
		hs = append(hs, aeszip.Header{Name: name, Size: int64(len(b))})
	}
	require.EqualValues(t, len(write(t, fs, "infected", 4096)), aeszip.ArchiveSize("threatdesk test archive", hs...))
	var buf bytes.Buffer
	require.NoError(t, aeszip.NewWriter(&buf, "x").Close())
	require.EqualValues(t, buf.Len(), aeszip.ArchiveSize(""))
}

func TestSizesAreEnforced(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := aeszip.NewWriter(&buf, "infected")
	w, err := zw.Create(aeszip.Header{Name: "a", Size: 3})
	require.NoError(t, err)
	_, err = w.Write([]byte("abcd"))
	require.ErrorContains(t, err, "declared 3 bytes")
	_, err = w.Write([]byte("ab"))
	require.NoError(t, err)
	require.ErrorContains(t, zw.Close(), "got 2 bytes, not the 3 declared")

	_, err = aeszip.NewWriter(io.Discard, "x").Create(aeszip.Header{Name: "", Size: 1})
	require.Error(t, err)
	_, err = aeszip.NewWriter(io.Discard, "x").Create(aeszip.Header{Name: "big", Size: 1 << 32})
	require.ErrorContains(t, err, "outside")
}

// sevenZip finds 7-Zip, an implementation independent of ours. CI installs
// it (.ci/run) and must run this test; elsewhere a missing one is a skip
// that says so.
func sevenZip(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"7zz", "7z", "7za"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "7-Zip (7zz, 7z or 7za) is not installed, so the archive is not checked against an independent implementation: apt-get install 7zip"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestSevenZipExtracts: 7-Zip tests and extracts what we write with the
// password, and refuses a wrong one.
func TestSevenZipExtracts(t *testing.T) {
	t.Parallel()
	bin := sevenZip(t)
	fs := files(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "samples.zip")
	require.NoError(t, os.WriteFile(path, write(t, fs, "infected", 1000), 0o600))

	out, err := exec.Command(bin, "t", "-pinfected", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Everything is Ok")
	out, err = exec.Command(bin, "l", "-slt", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Method = AES-256 Store")

	into := filepath.Join(dir, "out")
	out, err = exec.Command(bin, "x", "-pinfected", "-o"+into, path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for name, want := range fs {
		got, err := os.ReadFile(filepath.Join(into, name))
		require.NoError(t, err, name)
		require.Equal(t, want, got, name)
	}

	out, err = exec.Command(bin, "t", "-pwrong", path).CombinedOutput()
	require.Error(t, err, "a wrong password: %s", out)
	require.Contains(t, string(out), "Wrong password")
}

// BenchmarkWrite encrypts a 16 MiB entry (PBKDF2, AES-CTR, HMAC-SHA1).
func BenchmarkWrite(b *testing.B) {
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		zw := aeszip.NewWriter(io.Discard, "infected")
		w, err := zw.Create(aeszip.Header{Name: "s.bin", Size: int64(len(data))})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
