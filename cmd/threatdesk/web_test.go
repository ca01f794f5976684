package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// TestServeMountsTheSampleDropBox: serve mounts the upload and download
// routes with samples.max_bytes from the config file (the upload route's
// body cap allows it, 413 beyond), and links on THREATDESK_PUBLIC_URL.
func TestServeMountsTheSampleDropBox(t *testing.T) {
	t.Parallel()
	_, url := pgtest.Empty(t)
	const maxBytes = 256 << 10
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("samples:\n  max_bytes: 262144\ncases:\n  sample_retention: 7d\n"), 0o600))
	addr := freeAddr(t)
	env := map[string]string{"DATABASE_URL": url, "THREATDESK_HTTP_ADDR": addr, "THREATDESK_CONFIG": cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"}
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)

	// A case and its upload link, through casework on the same database and key.
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	svc, err := casework.New(pool, func() casework.Config { c := cfg.File.Cases; c.Key = cfg.Key; return c }(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, int64(maxBytes), svc.Config().SampleMaxBytes)
	require.Equal(t, 7*24*time.Hour, svc.Config().SampleRetention)
	c, _, err := svc.Open(context.Background(), casework.OpenRequest{Key: "k1", Org: "contoso", Question: "is this bad?",
		Requester: casework.Person{Platform: "slack", UserID: "U1"}})
	require.NoError(t, err)
	link, err := svc.IssueUploadLink(context.Background(), c.Ref, casework.System())
	require.NoError(t, err)
	uploadURL := base + "/samples/u/" + link.Token

	resp, err := http.Get(uploadURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "curl -F file=@sample.bin "+uploadURL, "links on the local fallback of THREATDESK_PUBLIC_URL")
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

	postFile := func(n int) (int, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", "s.bin")
		require.NoError(t, err)
		_, err = fw.Write(bytes.Repeat([]byte("A"), n))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		resp, err := http.Post(uploadURL, mw.FormDataContentType(), &buf)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, text := postFile(maxBytes + 1)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, text)
	require.Contains(t, text, "The limit is 256 KiB")
	code, text = postFile(maxBytes)
	require.Equal(t, http.StatusCreated, code, text)
	require.Contains(t, text, "Received s.bin for "+c.Ref)
	smps, err := svc.Samples(context.Background(), casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Len(t, smps, 1)
	require.EqualValues(t, maxBytes, smps[0].Size)

	resp, err = http.Get(base + "/samples/d/" + strings.Repeat("A", 43))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, logs.String(), "THREATDESK_PUBLIC_URL is not set")
}
