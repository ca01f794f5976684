// Package httpapi is threatdesk's HTTP server: health, readiness and metrics
// endpoints, the routes other packages mount (alert intake, Slack and Discord
// webhooks), timeouts, body limits and a graceful shutdown that drains the
// requests in flight.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts and limits.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	// DefaultMaxBody caps request bodies of routes that set no limit of their own.
	DefaultMaxBody = 1 << 20
)

// Checker reports whether a dependency is ready; nil means ready.
type Checker func(ctx context.Context) error

// Server is the HTTP server.
type Server struct {
	mux      *http.ServeMux
	srv      *http.Server
	log      *slog.Logger
	ready    Checker
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// Config configures the server.
type Config struct {
	Addr string
	// Ready is consulted by GET /readyz.
	Ready Checker
	// Gatherer serves GET /metrics.
	Gatherer prometheus.Gatherer
}

// New builds a server with /healthz, /readyz and /metrics mounted.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("httpapi: an address is required")
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	s := &Server{mux: http.NewServeMux(), log: log.With("component", "http"), ready: cfg.Ready}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threatdesk", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "threatdesk", Subsystem: "http", Name: "request_duration_seconds",
		Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
	}, []string{"route"})
	if err := reg.Register(s.requests); err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	if err := reg.Register(s.latency); err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	s.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}))
	s.Handle("GET /readyz", http.HandlerFunc(s.readyz))
	if cfg.Gatherer != nil {
		s.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	s.srv = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.mux,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handle mounts h on a method-and-path pattern. Bodies are capped at
// DefaultMaxBody unless h caps them itself first (http.MaxBytesReader nests).
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.instrument(pattern, h))
}

// HandleLimited mounts h with its own body cap.
func (s *Server) HandleLimited(pattern string, limit int64, h http.Handler) {
	s.mux.Handle(pattern, s.instrumentLimit(pattern, limit, h))
}

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return s.instrumentLimit(route, DefaultMaxBody, h)
}

func (s *Server) instrumentLimit(route string, limit int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.requests.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
		s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Listen binds the address; Serve then runs on the listener. Separate so
// that a bind error is reported before anything else starts.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (THREATDESK_HTTP_ADDR): %w", s.srv.Addr, err)
	}
	return ln, nil
}

// Serve serves on ln until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("listening", "addr", ln.Addr().String())
	if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain http requests: %w", err)
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
