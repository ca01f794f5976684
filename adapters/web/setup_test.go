package web_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"archive/zip"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

var t0 = time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is casework on a real database behind the real HTTP server
// (internal/httpapi, with its body caps and timeouts) with the web routes
// mounted as cmd/threatdesk mounts them.
type fixture struct {
	svc   *casework.Service
	pool  *pgxpool.Pool
	clock *fakeClock
	links web.Links
	base  string
	n     int
}

func setup(t *testing.T, maxBytes int64, opts ...func(*web.Config)) *fixture {
	t.Helper()
	pool := pgtest.New(t)
	clock := &fakeClock{now: t0}
	key, err := secrets.Generate()
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	svc, err := casework.New(pool, casework.Config{Key: key, Now: clock.Now, SampleMaxBytes: maxBytes}, nil, reg)
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	links, err := web.NewLinks(base, true)
	require.NoError(t, err)
	cfg := web.Config{Links: links, Samples: svc, MaxSampleBytes: svc.Config().SampleMaxBytes,
		Pool: pool, Key: key, Cases: svc, Now: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := web.New(cfg, nil, reg)
	require.NoError(t, err)
	h.SetDirectory(expertsOnly{})
	for _, r := range h.Routes() {
		srv.HandleLimited(r.Pattern, r.MaxBody, r.Handler)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-done)
	})
	return &fixture{svc: svc, pool: pool, clock: clock, links: links, base: base}
}

// expertsOnly is a web.Directory in which expert() is a threat expert
// and nobody else has a role (download links need their expert still).
type expertsOnly struct{}

func (expertsOnly) WebAccess(u bot.User, _ string) bot.WebUser {
	w := bot.WebUser{User: u}
	if u.Platform == bot.Slack && u.ID == expert().Person.UserID {
		w.Roles = []bot.Role{bot.RoleExpert}
	}
	return w
}
func (expertsOnly) WebOrgs() []bot.WebOrg { return nil }
func (expertsOnly) WebPresent(context.Context, bot.User, string) (bool, error) {
	return true, nil
}

func requester(org string) casework.Actor {
	return casework.Actor{Role: casework.RoleRequester, Org: org,
		Person: casework.Person{Platform: "slack", Workspace: "T" + org, UserID: "U-analyst", DisplayName: "analyst"}}
}

func expert() casework.Actor {
	return casework.Actor{Role: casework.RoleExpert,
		Person: casework.Person{Platform: "slack", Workspace: "TDESK", UserID: "U-expert", DisplayName: "expert"}}
}

// fileCase opens a case of contoso about the file with SHA-256 hash,
// question q, and has an expert ask for a sample.
func (f *fixture) fileCase(t *testing.T, hash, q string) *casework.Case {
	t.Helper()
	ctx := context.Background()
	f.n++
	c, _, err := f.svc.Open(ctx, casework.OpenRequest{Key: fmt.Sprint("k", f.n), Org: "contoso",
		Subject:  casework.Subject{Kind: casework.SubjectFile, ID: hash},
		Question: q, Requester: requester("contoso").Person})
	require.NoError(t, err)
	_, err = f.svc.Take(ctx, c.Ref, expert())
	require.NoError(t, err)
	c, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusFileSampleNeeded, Actor: expert()})
	require.NoError(t, err)
	return c
}

func (f *fixture) uploadLink(t *testing.T, ref string) string {
	t.Helper()
	l, err := f.svc.IssueUploadLink(context.Background(), ref, casework.System())
	require.NoError(t, err)
	return f.links.Upload(l.Token)
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (f *fixture) nothingStored(t *testing.T) {
	t.Helper()
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_samples`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_sample_chunks`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM outbox WHERE kind = $1`, casework.EventSampleStored))
}

func (f *fixture) chunks(t *testing.T) [][]byte {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT data FROM case_sample_chunks ORDER BY sample_id, seq`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	return out
}

func (f *fixture) storedEvent(t *testing.T) casework.SampleStoredEvent {
	t.Helper()
	var p json.RawMessage
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT payload FROM outbox WHERE kind = $1`, casework.EventSampleStored).Scan(&p))
	var ev casework.SampleStoredEvent
	require.NoError(t, json.Unmarshal(p, &ev))
	return ev
}

// post sends body as the multipart field "file" named name, streamed, with
// the Accept header given ("" for curl's */*).
func post(t *testing.T, url, name string, body io.Reader, accept string) (*http.Response, string) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := mw.WriteField("note", "a field that is not the file")
		var fw io.Writer
		if err == nil {
			fw, err = mw.CreateFormFile("file", name)
		}
		if err == nil {
			_, err = io.Copy(fw, body)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func get(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return do(t, req)
}

const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// sampleBytes is n bytes of a structured file whose 16-byte runs are
// (nearly all) distinct.
func sampleBytes(n int) []byte {
	var b bytes.Buffer
	b.WriteString("MZ\x90\x00")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %08d of the sample, do not run\n", i)
	}
	return b.Bytes()[:n]
}

// requireNoRun fails when any chunk holds any 16-byte run of plain. Every
// 16-byte window of plain is hashed (a rolling polynomial hash) and sorted;
// every window of every chunk is looked up, and a hit checked byte for byte.
func requireNoRun(t *testing.T, plain []byte, chunks [][]byte) {
	t.Helper()
	const w = 16
	const base = 1099511628211
	var pow uint64 = 1
	for range w - 1 {
		pow *= base
	}
	roll := func(b []byte, fn func(i int, h uint64) bool) {
		var h uint64
		for i := range b {
			if i >= w {
				h -= uint64(b[i-w]) * pow
			}
			h = h*base + uint64(b[i])
			if i >= w-1 && !fn(i-w+1, h) {
				return
			}
		}
	}
	var hashes []uint64
	roll(plain, func(_ int, h uint64) bool { hashes = append(hashes, h); return true })
	slices.Sort(hashes)
	for ci, c := range chunks {
		roll(c, func(i int, h uint64) bool {
			if _, found := slices.BinarySearch(hashes, h); found && bytes.Contains(plain, c[i:i+w]) {
				t.Fatalf("chunk %d holds 16 bytes of the file at offset %d", ci, i)
				return false
			}
			return true
		})
	}
}

// unzipAES reads the sample ZIP with a reader written from the WinZip AE-2
// specification, independent of the writer.
func unzipAES(t *testing.T, archive []byte, password string) (string, []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	require.Len(t, zr.File, 1)
	f := zr.File[0]
	require.EqualValues(t, 99, f.Method)
	r, err := f.OpenRaw()
	require.NoError(t, err)
	raw, err := io.ReadAll(r)
	require.NoError(t, err)
	salt, pwv, ct, mac := raw[:16], raw[16:18], raw[18:len(raw)-10], raw[len(raw)-10:]
	keys, err := pbkdf2.Key(sha1.New, password, salt, 1000, 66)
	require.NoError(t, err)
	if !bytes.Equal(keys[64:], pwv) {
		t.Fatal(errors.New("wrong password"))
	}
	m := hmac.New(sha1.New, keys[32:64])
	m.Write(ct)
	require.Equal(t, m.Sum(nil)[:10], mac)
	block, err := aes.NewCipher(keys[:32])
	require.NoError(t, err)
	plain := make([]byte, len(ct))
	var ks, ctr [16]byte
	for i := range ct {
		if i%16 == 0 {
			binary.LittleEndian.PutUint64(ctr[:8], uint64(i/16+1))
			block.Encrypt(ks[:], ctr[:])
		}
		plain[i] = ct[i] ^ ks[i%16]
	}
	return f.Name, plain
}

// tool finds an outside program a test drives. CI must have it (.ci/run
// installs it); elsewhere its absence is a skip that says so.
func tool(t *testing.T, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%v is not installed, so %s is not checked", names, why)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
