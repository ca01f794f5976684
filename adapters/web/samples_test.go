package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/casework"
)

func requireSecure(t *testing.T, resp *http.Response) {
	t.Helper()
	h := resp.Header
	require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	require.Equal(t, "DENY", h.Get("X-Frame-Options"))
	require.Equal(t, "no-store", h.Get("Cache-Control"))
}

var styleRE = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

// requirePage checks an HTML page: the security headers, the stylesheet
// allowed by its hash and nothing else loaded, no script anywhere.
func requirePage(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	requireSecure(t, resp)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	m := styleRE.FindStringSubmatch(body)
	require.NotNil(t, m, "inline stylesheet")
	sum := sha256.Sum256([]byte(m[1]))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	for _, bad := range []string{"<script", "<img", "<link", "<iframe", `src="`, `href="`, "@import", "url("} {
		require.NotContains(t, body, bad)
	}
}

// TestUploadOverHTTP: the page, then a real multipart POST of a
// multi-chunk file: stored encrypted (no 16-byte run of the file in the
// database), hashed, announced with the match, the case back in progress;
// the expert's download is a ZIP that decrypts to the same bytes.
func TestUploadOverHTTP(t *testing.T) {
	t.Parallel()
	f := setup(t, 0)
	plain := sampleBytes(2*casework.SampleChunkSize + 12345)
	sum := sha256.Sum256(plain)
	s256 := hex.EncodeToString(sum[:])
	c := f.fileCase(t, s256, "Is <script>alert(1)</script> & this file bad?")
	url := f.uploadLink(t, c.Ref)
	require.True(t, strings.HasPrefix(url, f.base+"/samples/u/"))

	resp, body := get(t, url, browser)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	requirePage(t, resp, body)
	require.Contains(t, body, "Send a file sample for "+c.Ref)
	require.Contains(t, body, "Is &lt;script&gt;alert(1)&lt;/script&gt; &amp; this file bad?")
	require.Contains(t, body, "at most <strong>100 MiB</strong>")
	require.Contains(t, body, `<form method="post" enctype="multipart/form-data">`)
	require.Contains(t, body, `<input type="file" name="file" required>`)
	require.Contains(t, body, s256)
	require.Contains(t, body, "curl -F file=@sample.bin "+url)
	// curl asking for the page gets text.
	resp, body = get(t, url, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, body, "curl -F file=@sample.bin "+url)

	resp, body = post(t, url, "report<img src=x>.pdf.exe", bytes.NewReader(plain), browser)
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	requirePage(t, resp, body)
	require.Contains(t, body, "report&lt;img src=x&gt;.pdf.exe")
	require.Contains(t, body, s256)

	// In the database: three sealed chunks, none holding the file's bytes.
	chunks := f.chunks(t)
	require.Len(t, chunks, 3)
	require.NotEqual(t, plain, bytes.Join(chunks, nil))
	requireNoRun(t, plain, chunks)
	var md5, sha1, sha256db, addr string
	var size int64
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT size, md5, sha1, sha256, uploader_address FROM case_samples`).
		Scan(&size, &md5, &sha1, &sha256db, &addr))
	require.EqualValues(t, len(plain), size)
	require.Equal(t, s256, sha256db)
	require.Equal(t, "127.0.0.1", addr)

	ev := f.storedEvent(t)
	require.Equal(t, c.Ref, ev.Ref)
	require.Equal(t, s256, ev.SHA256)
	require.Equal(t, md5, ev.MD5)
	require.Equal(t, sha1, ev.SHA1)
	require.Equal(t, casework.MatchYes, ev.Match)
	require.Equal(t, "matches the file the case is about", ev.MatchText)
	require.True(t, ev.Resumed)
	got, err := f.svc.Get(context.Background(), casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Equal(t, casework.StatusInProgress, got.Status)
	require.NotNil(t, got.DueAt, "the SLA clock runs again")

	// The expert's download.
	dl, err := f.svc.IssueDownloadLink(context.Background(), c.Ref, ev.SampleID, expert())
	require.NoError(t, err)
	resp, body = get(t, f.links.Download(dl.Token), browser)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/zip", resp.Header.Get("Content-Type"))
	require.Equal(t, fmt.Sprintf(`attachment; filename="%s-sample-%d.zip"`, c.Ref, ev.SampleID), resp.Header.Get("Content-Disposition"))
	require.Equal(t, fmt.Sprint(len(body)), resp.Header.Get("Content-Length"))
	requireSecure(t, resp)
	require.NotContains(t, body, string(plain[:64]))
	name, out := unzipAES(t, []byte(body), "infected")
	require.Equal(t, "report<img src=x>.pdf.exe", name)
	require.Equal(t, plain, out)
	zipBody := body
	// The link has served: opened again (from history, a proxy's log), it
	// says so and sends nothing.
	resp, body = get(t, f.links.Download(dl.Token), browser)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	requirePage(t, resp, body)
	require.Contains(t, body, "This download link was already used")
	require.Contains(t, body, "Press Download sample on the case card")
	body = zipBody

	t.Run("7-Zip extracts it with the password infected", func(t *testing.T) {
		bin := tool(t, "the download against an independent ZIP implementation", "7zz", "7z", "7za")
		dir := t.TempDir()
		zipPath := filepath.Join(dir, "s.zip")
		require.NoError(t, os.WriteFile(zipPath, []byte(body), 0o600))
		o, err := exec.Command(bin, "x", "-pinfected", "-o"+filepath.Join(dir, "out"), zipPath).CombinedOutput()
		require.NoError(t, err, "%s", o)
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		require.NoError(t, err)
		require.Equal(t, plain, b)
	})

	kinds := timelineKinds(t, f, c.Ref)
	require.Contains(t, kinds, casework.EventSampleDownloaded)
	require.NoError(t, f.svc.VerifyTimeline(context.Background(), casework.AllOrgs(), c.Ref))
}

func timelineKinds(t *testing.T, f *fixture, ref string) []string {
	t.Helper()
	tl, err := f.svc.Timeline(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	var out []string
	for _, e := range tl {
		out = append(out, e.Kind)
	}
	return out
}

// TestCurlUploads: the link works with `curl -F file=@sample.bin <link>`,
// and curl is answered in plain text.
func TestCurlUploads(t *testing.T) {
	t.Parallel()
	curl := tool(t, "the upload with curl", "curl")
	f := setup(t, 0)
	c := f.fileCase(t, strings.Repeat("ab", 32), "what is it?")
	url := f.uploadLink(t, c.Ref)
	path := filepath.Join(t.TempDir(), "sample.bin")
	plain := sampleBytes(300000)
	require.NoError(t, os.WriteFile(path, plain, 0o600))
	out, err := exec.Command(curl, "-sS", "-w", "\nstatus %{http_code}\n", "-F", "file=@"+path, url).CombinedOutput()
	require.NoError(t, err, "%s", out)
	sum := sha256.Sum256(plain)
	require.Contains(t, string(out), "Received sample.bin for "+c.Ref+": 293 KiB")
	require.Contains(t, string(out), "SHA-256 "+hex.EncodeToString(sum[:]))
	require.Contains(t, string(out), "status 201")
	ev := f.storedEvent(t)
	require.Equal(t, casework.MatchNo, ev.Match)
	require.Equal(t, "does not match: SHA-256 "+hex.EncodeToString(sum[:])+" is not "+strings.Repeat("ab", 32)+", the file the case is about", ev.MatchText)

	// The same link again: used.
	out, err = exec.Command(curl, "-sS", "-w", "\nstatus %{http_code}\n", "-F", "file=@"+path, url).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "This upload link was already used")
	require.Contains(t, string(out), "status 410")
}

// TestRefusedLinks: used, expired, unknown and foreign tokens, each with a
// page saying what to do; unknown and foreign get the very same page.
func TestRefusedLinks(t *testing.T) {
	t.Parallel()
	f := setup(t, 0)
	ctx := context.Background()
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	used := f.uploadLink(t, c.Ref)
	resp, body := post(t, used, "a.bin", strings.NewReader("first"), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	ev := f.storedEvent(t)
	expiring := f.uploadLink(t, c.Ref)
	dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, ev.SampleID, expert())
	require.NoError(t, err)
	upTok := strings.TrimPrefix(used, f.base+"/samples/u/")

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		resp, body := send(t, method, used, browser)
		require.Equal(t, http.StatusGone, resp.StatusCode, body)
		requirePage(t, resp, body)
		require.Contains(t, body, "This upload link was already used")
		require.Contains(t, body, "/experts upload")
		require.NotRegexp(t, regexp.MustCompile(c.Ref+`\b`), body, "a refused link names no case")
	}

	unknownPage := func(url string) string {
		t.Helper()
		resp, body := get(t, url, browser)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		requirePage(t, resp, body)
		return body
	}
	unknown := unknownPage(f.links.Upload("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	require.Contains(t, unknown, "This upload link is not valid")
	require.Equal(t, unknown, unknownPage(f.links.Upload(dl.Token)), "a download token at the upload address: the same page")
	require.Equal(t, unknown, unknownPage(f.links.Upload("x")))
	resp, body = post(t, f.links.Upload(dl.Token), "a.bin", strings.NewReader("x"), browser)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, unknown, body)
	dlUnknown := func(url string) string {
		t.Helper()
		resp, body := get(t, url, browser)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		return body
	}
	require.Contains(t, dlUnknown(f.links.Download(upTok)), "This download link is not valid")
	require.Equal(t, dlUnknown(f.links.Download(upTok)), dlUnknown(f.links.Download("nope")))

	f.clock.Advance(casework.DownloadLinkTTL)
	resp, body = get(t, f.links.Download(dl.Token), "")
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, body, "This download link has expired")
	require.Contains(t, body, "Press Download sample")

	f.clock.Advance(casework.UploadLinkTTL)
	resp, body = send(t, http.MethodGet, expiring, browser)
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, body, "This upload link has expired")
	resp, body = post(t, expiring, "late.bin", strings.NewReader("late"), "")
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Contains(t, body, "Upload links work for 72 hours")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
}

// TestLinkOfAWithdrawnCase: the page of a link whose case was withdrawn
// does not advise reopening it (nothing reopens a withdrawn case), and a
// fresh link is asked for in the org's channel, not in a direct message
// (where /experts upload is refused).
func TestLinkOfAWithdrawnCase(t *testing.T) {
	t.Parallel()
	f := setup(t, 0)
	ctx := context.Background()
	c := f.fileCase(t, strings.Repeat("3", 64), "q")
	link := f.uploadLink(t, c.Ref)
	_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusWithdrawn, Actor: requester("contoso")})
	require.NoError(t, err)
	resp, body := send(t, http.MethodGet, link, browser)
	require.Equal(t, http.StatusGone, resp.StatusCode, body)
	requirePage(t, resp, body)
	require.Contains(t, body, "The case of this link was withdrawn")
	require.NotContains(t, body, "reopen")
	require.Contains(t, body, "new case")

	closed := f.fileCase(t, strings.Repeat("4", 64), "q")
	link = f.uploadLink(t, closed.Ref)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: closed.Ref, To: casework.StatusConcluded, Actor: expert(), Summary: "done"})
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: closed.Ref, To: casework.StatusClosed, Actor: requester("contoso")})
	require.NoError(t, err)
	_, body = send(t, http.MethodGet, link, browser)
	require.Contains(t, body, "reopen the case from its receipt")
	require.Contains(t, body, "in your organisation&#39;s SOC channel")
}

func send(t *testing.T, method, url, accept string) (*http.Response, string) {
	t.Helper()
	if method == http.MethodPost {
		return post(t, url, "again.bin", strings.NewReader("again"), accept)
	}
	return get(t, url, accept)
}

// TestBadUploadsStoreNothing: over the limit (413), empty, interrupted,
// wrong method, not a form: a clear answer, nothing stored, the link
// still good.
func TestBadUploadsStoreNothing(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	f := setup(t, limit)
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	url := f.uploadLink(t, c.Ref)

	resp, body := post(t, url, "big.bin", bytes.NewReader(sampleBytes(limit+1)), browser)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	requirePage(t, resp, body)
	require.Contains(t, body, "The limit is 64 KiB; nothing was stored.")
	f.nothingStored(t)

	resp, body = post(t, url, "empty.bin", strings.NewReader(""), "")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, "The file is empty")
	f.nothingStored(t)

	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req, err := http.NewRequest(method, url, strings.NewReader("x"))
		require.NoError(t, err)
		resp, body := do(t, req)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.Equal(t, "GET, POST", resp.Header.Get("Allow"))
		require.Contains(t, body, method+" does not work here")
	}
	req, err := http.NewRequest(http.MethodPost, f.links.Download("x"), nil)
	require.NoError(t, err)
	resp, _ = do(t, req)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET", resp.Header.Get("Allow"))

	req, err = http.NewRequest(http.MethodPost, url, strings.NewReader("raw bytes"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, body = do(t, req)
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	require.Contains(t, body, "curl -F file=@sample.bin")
	f.nothingStored(t)

	// Interrupted: the client sends part of the file and hangs up.
	interrupted(t, f, url, sampleBytes(limit/2))
	f.nothingStored(t)

	// The link was not spent by any of it.
	resp, body = post(t, url, "ok.bin", bytes.NewReader(sampleBytes(limit)), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
}

// interrupted posts a multipart body announcing more than it sends, closes
// its side, and checks the answer.
func interrupted(t *testing.T, f *fixture, url string, part []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	const boundary = "xXxBoundaryxXx"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	path := strings.TrimPrefix(url, f.base)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n",
		path, boundary, len(head)+len(part)*2+100)
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	_, err = conn.Write(part)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	answeredInterrupted(t, conn)
}

// TestPreviewBotsGetNoSample: a chat app's link expander neither gets the
// sample nor counts as a download.
func TestPreviewBotsGetNoSample(t *testing.T) {
	t.Parallel()
	f := setup(t, 0)
	ctx := context.Background()
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	resp, body := post(t, f.uploadLink(t, c.Ref), "a.bin", strings.NewReader("sample"), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, f.storedEvent(t).SampleID, expert())
	require.NoError(t, err)
	for _, ua := range []string{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"} {
		req, err := http.NewRequest(http.MethodGet, f.links.Download(dl.Token), nil)
		require.NoError(t, err)
		req.Header.Set("User-Agent", ua)
		resp, body := do(t, req)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Contains(t, body, "Link previews are not served")
	}
	require.NotContains(t, timelineKinds(t, f, c.Ref), casework.EventSampleDownloaded)
}

func TestLinks(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "threatdesk.example.com", "ftp://x", "https://x/?a=b"} {
		_, err := web.NewLinks(bad, false)
		require.Error(t, err, bad)
	}
	l, err := web.NewLinks("https://threatdesk.example.com/soc/", false)
	require.NoError(t, err)
	require.Equal(t, "https://threatdesk.example.com/soc/samples/u/tok-en_1", l.Upload("tok-en_1"))
	require.Equal(t, "https://threatdesk.example.com/soc/samples/d/tok", l.Download("tok"))
	require.Empty(t, l.LocalNote())
	local, err := web.NewLinks("http://localhost:8080", true)
	require.NoError(t, err)
	require.True(t, local.Local())
	require.Contains(t, local.LocalNote(), "only works on the machine threatdesk runs on")
}

// TestStalledUploadIsCut: a client that sends the start of a file and then
// nothing held its store slot for the whole transfer timeout (30 minutes);
// now it is cut after UploadIdle, answered, and nothing is stored.
func TestStalledUploadIsCut(t *testing.T) {
	t.Parallel()
	f := setup(t, 64<<10, func(c *web.Config) { c.UploadIdle = 300 * time.Millisecond })
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	url := f.uploadLink(t, c.Ref)

	conn := startUpload(t, f, url, "stall.bin")
	// The connection stays open and silent; the answer comes anyway.
	answeredInterrupted(t, conn)
	f.nothingStored(t)

	resp, text := post(t, url, "ok.bin", strings.NewReader("sample"), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, text)
}

// TestTricklingUploadIsCut: a client that sends a byte now and then, each
// within UploadIdle, held its store slot, a connection and an open
// transaction for the whole transfer timeout (30 minutes; from a review).
// Once UploadIdle has passed, an upload slower than UploadMinRate on
// average is cut, answered, and nothing is stored.
func TestTricklingUploadIsCut(t *testing.T) {
	t.Parallel()
	f := setup(t, 64<<10, func(c *web.Config) { c.UploadIdle, c.UploadMinRate = 400*time.Millisecond, 1<<10 })
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	url := f.uploadLink(t, c.Ref)

	conn := startUpload(t, f, url, "trickle.bin")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte every 100 ms: never idle, about 10 bytes a second
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	answeredInterrupted(t, conn)
	require.Less(t, time.Since(start), 10*time.Second, "cut soon after UploadIdle")
	f.nothingStored(t)
}

// startUpload sends, over a raw connection, the head of an upload of name
// to url that promises 10,000 bytes: the part's headers and "first bytes".
// The connection is closed when the test ends.
func startUpload(t *testing.T, f *fixture, url, name string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	const boundary = "xXxBoundaryxXx"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + "\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\nfirst bytes"
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s",
		strings.TrimPrefix(url, f.base), boundary, 10000, head)
	return conn
}

// answeredInterrupted reads the answer to an upload on conn while the
// client is still connected: 400, "The upload was interrupted".
func answeredInterrupted(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "answered while the client is still connected")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
	require.Contains(t, string(body), "The upload was interrupted")
}

// paced is a reader that gives n bytes, chunk bytes every every.
type paced struct {
	n, chunk int
	every    time.Duration
}

func (r *paced) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	k := min(r.n, r.chunk, len(p))
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

// TestUploadWaitingForASlotIsNotCut: an upload that waited for a store
// slot (an org stores two at a time) was cut by the rate check, which
// counted the wait as the client's slowness: a healthy upload got "The
// upload was interrupted" (from a review of the session's diff). The
// rate is counted from when the server reads again.
func TestUploadWaitingForASlotIsNotCut(t *testing.T) {
	t.Parallel()
	f := setup(t, 64<<10, func(c *web.Config) { c.UploadIdle, c.UploadMinRate = 400*time.Millisecond, 16<<10 })
	c := f.fileCase(t, strings.Repeat("0", 64), "q")
	var wg sync.WaitGroup
	for range 2 { // the org's two slots, each held about two seconds at 32 KiB/s
		link := f.uploadLink(t, c.Ref)
		wg.Go(func() {
			resp, body := post(t, link, "slow.bin", &paced{n: 64 << 10, chunk: 1 << 10, every: 30 * time.Millisecond}, "")
			assert.Equal(t, http.StatusCreated, resp.StatusCode, body)
		})
	}
	time.Sleep(300 * time.Millisecond)
	resp, body := post(t, f.uploadLink(t, c.Ref), "waited.bin", bytes.NewReader(bytes.Repeat([]byte("y"), 64<<10)), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	wg.Wait()
}

// TestUploadThroughABadLinkIsAnsweredAtOnce: a POST to an upload link that
// does not work (here made up) is answered before its body is read. It used
// to get the upload's long deadlines first, so a client with no valid link
// could hold a connection for the whole transfer time, a byte a minute.
func TestUploadThroughABadLinkIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, 64<<10, func(c *web.Config) { c.UploadIdle = 20 * time.Second })
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	const boundary = "xXxBoundaryxXx"
	fmt.Fprintf(conn, "POST /samples/u/%s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n--%s\r\n",
		strings.Repeat("A", 43), boundary, 10000, boundary)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "answered while the body is still coming")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, string(body))
	f.nothingStored(t)
}

// TestRefusedUploadIsAnsweredWhole: a client that sends its whole file
// before it reads the answer, as curl does, gets the refusal page of a
// link that does not work, not a reset connection. (The server answered
// and closed without reading; the rest of the file then met a reset, and
// curl said "Connection reset by peer" instead of what to do.)
func TestRefusedUploadIsAnsweredWhole(t *testing.T) {
	t.Parallel()
	f := setup(t, 0) // the default cap (100 MiB): the file is within it
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	const boundary = "xXxBoundaryxXx"
	file := bytes.Repeat([]byte("sample "), 24<<20/7) // more than the sockets buffer
	head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.bin\"\r\n\r\n", boundary)
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary)
	fmt.Fprintf(conn, "POST /samples/u/%s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n",
		strings.Repeat("A", 43), boundary, len(head)+len(file)+len(tail))
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.Copy(conn, io.MultiReader(strings.NewReader(head), bytes.NewReader(file), strings.NewReader(tail)))
	require.NoError(t, err, "the whole file was sent")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, string(body))
	f.nothingStored(t)
}

// TestUploadPagesShowTheConfiguredZone: the upload page's expiry and a used
// link's time are in the deployment's time zone, as on every tracker page.
// They were in UTC: "until 13 February 2026 09:00 UTC" beside a tracker
// saying 18:00 JST.
func TestUploadPagesShowTheConfiguredZone(t *testing.T) {
	t.Parallel()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	f := setup(t, 0, func(c *web.Config) { c.Location = tokyo })
	c := f.fileCase(t, strings.Repeat("1", 64), "q")
	link := f.uploadLink(t, c.Ref)
	resp, body := get(t, link, browser)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, "13 February 2026 18:00 JST")
	resp, body = post(t, link, "a.bin", strings.NewReader("first"), "")
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	_, body = get(t, link, browser)
	require.Contains(t, body, "It took a file on 10 February 2026 at 18:00 JST")
}
