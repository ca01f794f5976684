package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/binary"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestServeSampleFlowOverSlack runs the sample flow through serve, wired
// as in production, against the fake Slack and over real HTTP: the expert
// asks for a sample, the analyst's thread gets an upload link on the
// service's own address (THREATDESK_PUBLIC_URL unset, so said to work
// locally only); the analyst uploads through it; the sample is announced
// on the desk; Download sample gives the expert, privately, a link whose
// ZIP (password infected) holds the very bytes uploaded.
func TestServeSampleFlowOverSlack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("paced at one Slack message per second per channel")
	}
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"}, {ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"}},
	})
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(e2eConfig), 0o600))
	opts := fake.Options()
	addr := freeAddr(t)
	cfg, err := config.Load(envOf(map[string]string{
		"DATABASE_URL": dbURL, "THREATDESK_HTTP_ADDR": addr, "THREATDESK_CONFIG": cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		"SLACK_BOT_TOKEN":       opts.BotToken, "SLACK_APP_TOKEN": opts.AppToken, "SLACK_API_URL": fake.APIURL(),
	}))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil))) }()
	var tokens []string
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		for _, tok := range tokens {
			require.NotContains(t, logs.String(), tok, "no link token is logged")
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnected(wctx))

	wait := func(what string, cond func() bool) {
		t.Helper()
		testwait.For(t, 30*time.Second, what, cond, fake)
	}
	find := func(ch, thread, want string) (slackfake.Message, bool) {
		for _, m := range fake.Messages(ch) {
			if m.ThreadTS == thread && !m.Ephemeral && strings.Contains(m.Text+string(m.Blocks), want) {
				return m, true
			}
		}
		return slackfake.Message{}, false
	}
	has := func(ch, thread, want string) func() bool {
		return func() bool { _, ok := find(ch, thread, want); return ok }
	}

	_, err = fake.Command(ctx, slackfake.SlashCommand{UserID: "U0ANALYST1", ChannelID: "C0CONTOSOSOC",
		Text: "file 4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6 is this invoice malware?"})
	require.NoError(t, err)
	wait("receipt and desk card", func() bool { return has("C0CONTOSOSOC", "", "EOD-1")() && has("C0EXPERTDESK", "", "EOD-1")() })
	receipt, _ := find("C0CONTOSOSOC", "", "EOD-1")
	card, _ := find("C0EXPERTDESK", "", "EOD-1")
	press := func(action string) {
		t.Helper()
		p, err := fake.Press("C0EXPERTDESK", card.TS, "U0EXPERT1", action)
		require.NoError(t, err)
		_, err = fake.Interactive(ctx, p)
		require.NoError(t, err)
	}
	wait("the card's Take button", func() bool { _, err := fake.Press("C0EXPERTDESK", card.TS, "U0EXPERT1", "take"); return err == nil })
	press("take")
	wait("taken", has("C0CONTOSOSOC", receipt.TS, "took EOD-1"))
	_, err = fake.Command(ctx, slackfake.SlashCommand{UserID: "U0EXPERT1", ChannelID: "C0EXPERTDESK", Text: "sample EOD-1 the attachment of the mail"})
	require.NoError(t, err)

	// The upload link, on this service's address, in the analyst's thread.
	linkIn := func(raw, path string) string {
		raw = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(raw) // blocks as JSON-encoded
		m := regexp.MustCompile(`<(` + regexp.QuoteMeta(base+path) + `[A-Za-z0-9_-]+)\|`).FindStringSubmatch(raw)
		if m == nil {
			return ""
		}
		return m[1]
	}
	var upload string
	wait("the upload link", func() bool {
		for _, m := range fake.Replies("C0CONTOSOSOC", receipt.TS) {
			if u := linkIn(string(m.Blocks), "/samples/u/"); u != "" {
				upload = u
				require.Contains(t, string(m.Blocks), "only works on the machine threatdesk runs on")
				return true
			}
		}
		return false
	})
	tokens = append(tokens, strings.TrimPrefix(upload, base+"/samples/u/"))

	// The analyst uploads through it.
	sample := bytes.Repeat([]byte("MZ\x90\x00 stage one dropper, do not run\n"), 300)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "invoice.exe")
	require.NoError(t, err)
	_, err = fw.Write(sample)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	resp, err := http.Post(upload, mw.FormDataContentType(), &form)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))

	wait("the sample announced on the desk", has("C0EXPERTDESK", card.TS, "invoice.exe"))
	wait("the Download sample button", func() bool {
		m, _ := fake.Message("C0EXPERTDESK", card.TS)
		return strings.Contains(string(m.Blocks), "download_sample")
	})
	press("download_sample")
	var download string
	wait("the private download link", func() bool {
		for _, r := range fake.Responses() {
			if u := linkIn(string(r.Blocks), "/samples/d/"); u != "" {
				require.Equal(t, "ephemeral", r.ResponseType)
				download = u
				return true
			}
		}
		return false
	})
	tokens = append(tokens, strings.TrimPrefix(download, base+"/samples/d/"))
	for _, m := range fake.Messages("") {
		require.NotContains(t, m.Text+string(m.Blocks), "/samples/d/", "the download link is never posted in public")
		require.NotContains(t, m.Text+string(m.Blocks), "stage one dropper")
	}

	resp, err = http.Get(download)
	require.NoError(t, err)
	archive, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(archive))
	name, plain := unzipAES(t, archive, "infected")
	require.Equal(t, "invoice.exe", name)
	require.Equal(t, sample, plain, "the link downloads the bytes uploaded")
	require.Empty(t, fake.Violations())
}

// unzipAES reads a one-entry WinZip AE-2 archive, from the specification
// (as adapters/web's tests do), independent of internal/aeszip's writer.
func unzipAES(t *testing.T, archive []byte, password string) (string, []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	require.Len(t, zr.File, 1)
	f := zr.File[0]
	require.EqualValues(t, 99, f.Method, "AES encrypted")
	r, err := f.OpenRaw()
	require.NoError(t, err)
	raw, err := io.ReadAll(r)
	require.NoError(t, err)
	salt, pwv, ct, mac := raw[:16], raw[16:18], raw[18:len(raw)-10], raw[len(raw)-10:]
	keys, err := pbkdf2.Key(sha1.New, password, salt, 1000, 66)
	require.NoError(t, err)
	require.Equal(t, keys[64:], pwv, "password verifier")
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
