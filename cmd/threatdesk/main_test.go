package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pglocal"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "threatdesk migrate"},
		{[]string{"help"}, "threatdesk version"},
		{[]string{"serve", "--help"}, "Usage: threatdesk [serve]"},
		{[]string{"serve", "-help"}, "THREATDESK_METRICS_ADDR"},
		{[]string{"migrate", "--help"}, "Usage: threatdesk migrate"},
		{[]string{"version", "--help"}, "Usage: threatdesk version"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut, envOf(nil))
			require.Equal(t, 0, code, errOut.String())
			require.Contains(t, out.String(), tc.want)
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"version"}, &out, io.Discard, envOf(nil)))
	require.Regexp(t, `^threatdesk \S+ \(commit \S+, go1\.\d+`, out.String())
}

func TestBadUsage(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	require.Equal(t, 2, run([]string{"launch"}, io.Discard, &errOut, envOf(nil)))
	require.Contains(t, errOut.String(), `unknown command "launch"`)
	errOut.Reset()
	require.Equal(t, 2, run([]string{"migrate", "--force"}, io.Discard, &errOut, envOf(nil)))
	require.Contains(t, errOut.String(), "flag provided but not defined: -force")
}

func TestInvalidConfigurationExitsWithEveryProblem(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	code := run([]string{"serve"}, io.Discard, &errOut, envOf(map[string]string{
		"SLACK_BOT_TOKEN":       "xoxb-SECRET",
		"SLACK_APP_TOKEN":       "oops-SECRET",
		"THREATDESK_LOG_FORMAT": "xml",
	}))
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "SLACK_APP_TOKEN must start with xapp-")
	require.Contains(t, errOut.String(), "THREATDESK_LOG_FORMAT")
	require.NotContains(t, errOut.String(), "SECRET")
}

func TestMigrateThenServe(t *testing.T) {
	t.Parallel()
	_, url := pgtest.Empty(t)
	env := map[string]string{"DATABASE_URL": url, "THREATDESK_HTTP_ADDR": freeAddr(t), "THREATDESK_METRICS_ADDR": freeAddr(t),
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"}

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"migrate"}, &out, &errOut, envOf(env)), errOut.String())
	require.Contains(t, out.String(), "the schema is current")
	out.Reset()
	require.Equal(t, 0, run([]string{"migrate"}, &out, &errOut, envOf(env)), errOut.String())
	require.Contains(t, out.String(), "applied 0 migrations")

	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()

	base := "http://" + env["THREATDESK_HTTP_ADDR"]
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusOK, get(base+"/healthz"))
	require.Equal(t, http.StatusNotFound, get(base+"/metrics"), "with THREATDESK_METRICS_ADDR, metrics are served only there")
	resp, err := http.Get("http://" + env["THREATDESK_METRICS_ADDR"] + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "threatdesk_build_info{")
	require.Contains(t, string(body), "go_goroutines")
	require.Contains(t, string(body), "process_cpu_seconds_total")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
	require.Contains(t, logs.String(), "no chat platform is enabled")
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// syncWriter serialises writes from the service's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String is what was written so far (the writer must be a *bytes.Buffer).
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(*bytes.Buffer).String()
}

// TestServeWithEmbeddedPostgres is the fresh-machine path: no DATABASE_URL,
// so serve starts its own PostgreSQL under THREATDESK_DATA_DIR, answers
// /readyz, stops it on shutdown, and a second start keeps the data.
func TestServeWithEmbeddedPostgres(t *testing.T) {
	t.Parallel()
	dataDir, err := os.MkdirTemp("", "tdd")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dataDir, 0o755)) // the server may run as the postgres user
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	if _, err := pglocal.FindBinDir(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL server binaries are required in CI: %v", err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
	env := map[string]string{"THREATDESK_DATA_DIR": dataDir, "THREATDESK_HTTP_ADDR": freeAddr(t)}
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	dbURL := pglocal.URL(filepath.Join(dataDir, "postgres"), "threatdesk", "threatdesk")
	pidFile := filepath.Join(dataDir, "postgres", "data", "postmaster.pid")

	runOnce := func(during func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
		require.Eventually(t, func() bool { return get("http://"+env["THREATDESK_HTTP_ADDR"]+"/readyz") == http.StatusOK },
			60*time.Second, 50*time.Millisecond)
		during()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("serve did not stop")
		}
		_, err := os.Stat(pidFile)
		require.True(t, os.IsNotExist(err), "the embedded PostgreSQL stopped with the service")
	}
	query := func(sql string) string {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var out string
		if err := conn.QueryRow(ctx, sql).Scan(&out); !errors.Is(err, pgx.ErrNoRows) {
			require.NoError(t, err)
		}
		return out
	}
	runOnce(func() {
		query("CREATE TABLE kept (v) AS SELECT 'still here'::text WITH DATA")
		// A second service on the same data dir is refused, not allowed to
		// share (and later stop) this one's PostgreSQL.
		other, err := config.Load(envOf(map[string]string{"THREATDESK_DATA_DIR": dataDir, "THREATDESK_HTTP_ADDR": freeAddr(t)}))
		require.NoError(t, err)
		err = serve(context.Background(), other, slog.New(slog.DiscardHandler))
		require.ErrorContains(t, err, "another threatdesk is already using THREATDESK_DATA_DIR")
	})
	runOnce(func() { require.Equal(t, "still here", query("SELECT v FROM kept")) })
}
