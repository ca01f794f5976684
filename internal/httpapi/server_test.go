package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/httpapi"
)

type fixture struct {
	srv  *httpapi.Server
	base string
}

func setup(t *testing.T, ready httpapi.Checker, mount func(*httpapi.Server)) fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Ready: ready, Gatherer: reg}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	if mount != nil {
		mount(srv)
	}
	ln, err := srv.Listen()
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		require.NoError(t, <-done)
	})
	return fixture{srv: srv, base: "http://" + ln.Addr().String()}
}

func fetch(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	detail := errors.New(`failed to connect to user=threatdesk database=threatdesk: /var/lib/threatdesk/postgres/.s.PGSQL.5432: connect: connection refused`)
	f := setup(t, func(context.Context) error { return httpapi.NotReady("database unreachable", detail) }, nil)

	code, _ := fetch(t, http.MethodGet, f.base+"/healthz", "")
	require.Equal(t, http.StatusOK, code)
	code, body := fetch(t, http.MethodGet, f.base+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: database unreachable\n", body, "the reason, without connection details")
	code, _ = fetch(t, http.MethodPost, f.base+"/healthz", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	code, body = fetch(t, http.MethodGet, f.base+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `threatdesk_http_requests_total{code="503",route="GET /readyz"} 1`)
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	echoLen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", len(b)))
	})
	f := setup(t, nil, func(s *httpapi.Server) {
		s.Handle("POST /default", echoLen)
		s.HandleLimited("POST /small", 10, echoLen)
	})
	tests := []struct {
		name  string
		route string
		size  int
		want  int
	}{
		{"default cap allows 1 MiB", "/default", httpapi.DefaultMaxBody, http.StatusOK},
		{"default cap refuses more", "/default", httpapi.DefaultMaxBody + 1, http.StatusRequestEntityTooLarge},
		{"own cap allows", "/small", 10, http.StatusOK},
		{"own cap refuses", "/small", 11, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _ := fetch(t, http.MethodPost, f.base+tc.route, strings.Repeat("a", tc.size))
			require.Equal(t, tc.want, code)
		})
	}
}

func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	srv.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	ln, err := srv.Listen()
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- srv.Shutdown(ctx)
	}()
	select {
	case <-shutdownDone:
		t.Fatal("shutdown returned while a request was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.Equal(t, "finished", <-got, "the request in flight completes")
	require.NoError(t, <-shutdownDone)
	require.NoError(t, <-served)
}

func TestListenErrorNamesTheSetting(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "256.0.0.1:80"}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	_, err = srv.Listen()
	require.ErrorContains(t, err, "THREATDESK_HTTP_ADDR")
}

// TestReadyzShowsNoErrorText: a checker's error text (hosts, users, paths)
// never reaches the body; only a reason made with NotReady does.
func TestReadyzShowsNoErrorText(t *testing.T) {
	t.Parallel()
	f := setup(t, func(context.Context) error {
		return errors.New("dial tcp db.internal:5432 as user admin: connection refused")
	}, nil)
	code, body := fetch(t, http.MethodGet, f.base+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready\n", body)
}

// TestMetricsOnTheirOwnListener: with MetricsAddr set, /metrics is served
// there and nowhere else.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Gatherer: reg},
		slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	require.NotEmpty(t, srv.MetricsAddr())
	metrics := "http://" + srv.MetricsAddr()

	code, _ := fetch(t, http.MethodGet, base+"/metrics", "")
	require.Equal(t, http.StatusNotFound, code, "not on the public address")
	code, _ = fetch(t, http.MethodGet, base+"/healthz", "")
	require.Equal(t, http.StatusOK, code)
	code, body := fetch(t, http.MethodGet, metrics+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `threatdesk_http_requests_total{code="200",route="GET /healthz"} 1`)
	code, _ = fetch(t, http.MethodGet, metrics+"/healthz", "")
	require.Equal(t, http.StatusNotFound, code, "only metrics on the internal listener")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, <-done)
	_, err = http.Get(metrics + "/metrics")
	require.Error(t, err, "the metrics listener is closed too")
}

func TestMetricsListenErrorNamesTheSetting(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", MetricsAddr: "256.0.0.1:80", Gatherer: reg},
		slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	_, err = srv.Listen()
	require.ErrorContains(t, err, "THREATDESK_METRICS_ADDR")
}

// TestMetricsKeptFromCustomers: /metrics on the shared listener answered
// anyone, and its series name every org; later it answered anyone when
// THREATDESK_PUBLIC_URL was unset, though Slack's HTTP mode, Discord's
// interactions and the alert intake reach that address too (from a
// review). Only a direct local scrape gets them.
func TestMetricsKeptFromCustomers(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Gatherer: reg},
		slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	code, _ := fetch(t, http.MethodGet, base+"/healthz", "")
	require.Equal(t, http.StatusOK, code)
	code, body := fetch(t, http.MethodGet, base+"/metrics", "")
	require.Equal(t, http.StatusOK, code, "a local scrape")
	require.Contains(t, body, `threatdesk_http_requests_total{code="200",route="GET /healthz"} 1`)
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"} {
		req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set(h, "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "through a proxy (%s)", h)
	}
	// A peer on the network: the handler sees its address.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.RemoteAddr = "203.0.113.9:40000"
	srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code, "a remote peer")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, <-done)
}
