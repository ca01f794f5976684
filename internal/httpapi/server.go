// Package httpapi is threatdesk's HTTP server: health, readiness and metrics
// endpoints, the routes other packages mount (alert intake, Slack and Discord
// webhooks), timeouts, body limits and a graceful shutdown that drains the
// requests in flight. Metrics can be served on a listener of their own, kept
// off the public address.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
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

// Checker reports whether a dependency is ready; nil means ready. /readyz
// shows the reason of an error made by NotReady and nothing else of it: error
// texts can name hosts, users and files.
type Checker func(ctx context.Context) error

// NotReady is a Checker error whose reason /readyz may show to anyone; err,
// the detail, is only logged.
func NotReady(reason string, err error) error { return &notReady{reason: reason, err: err} }

type notReady struct {
	reason string
	err    error
}

func (e *notReady) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}

func (e *notReady) Unwrap() error { return e.err }

// Server is the HTTP server.
type Server struct {
	mux      *http.ServeMux
	srv      *http.Server
	metrics  *http.Server // nil unless Config.MetricsAddr is set
	metricLn net.Listener
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
	// MetricsAddr, when set, is a listener of its own for GET /metrics
	// (THREATDESK_METRICS_ADDR), which is then not served on Addr.
	MetricsAddr string
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
	s.srv = s.httpServer(cfg.Addr, s.mux)
	if cfg.Gatherer != nil {
		metrics := s.instrument("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
		if cfg.MetricsAddr != "" {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", metrics)
			s.metrics = s.httpServer(cfg.MetricsAddr, mux)
		} else {
			// On Addr, only to a direct local scrape (a loopback peer, no
			// proxy headers): whoever reaches Addr (customers' links,
			// Slack's and Discord's requests, forwarders' alerts) must not
			// read series that name every org.
			s.mux.Handle("GET /metrics", localOnly(metrics))
		}
	}
	return s, nil
}

func (s *Server) httpServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
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
		if nr, ok := errors.AsType[*notReady](err); ok {
			_, _ = fmt.Fprintf(w, "not ready: %s\n", nr.reason)
			return
		}
		_, _ = io.WriteString(w, "not ready\n")
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Listen binds the address (and the metrics address, when set); Serve then
// runs on the listener. Separate so that a bind error is reported before
// anything else starts.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (THREATDESK_HTTP_ADDR): %w", s.srv.Addr, err)
	}
	if s.metrics != nil {
		s.metricLn, err = net.Listen("tcp", s.metrics.Addr)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("listen on %s (THREATDESK_METRICS_ADDR): %w", s.metrics.Addr, err)
		}
	}
	return ln, nil
}

// MetricsAddr is the bound address of the metrics listener, "" when metrics
// are served on the main address (or Listen was not called).
func (s *Server) MetricsAddr() string {
	if s.metricLn == nil {
		return ""
	}
	return s.metricLn.Addr().String()
}

// Serve serves on ln, and on the metrics listener, until Shutdown; it
// returns nil after a clean shutdown, or the first listener's failure.
func (s *Server) Serve(ln net.Listener) error {
	errc := make(chan error, 1)
	if s.metricLn != nil {
		s.log.Info("serving metrics", "addr", s.metricLn.Addr().String())
		go func() {
			err := s.metrics.Serve(s.metricLn)
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("the metrics listener failed", "err", err)
			}
			errc <- err
		}()
	}
	s.log.Info("listening", "addr", ln.Addr().String())
	err := s.srv.Serve(ln)
	if s.metricLn != nil {
		if errors.Is(err, http.ErrServerClosed) {
			err = <-errc // Shutdown closes both
		} else {
			_ = s.metrics.Close()
			<-errc
		}
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.metrics != nil {
		err = errors.Join(err, s.metrics.Shutdown(ctx))
	}
	if err != nil {
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

// ServeHTTP serves r as the main listener would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// localOnly serves h to a loopback peer that no proxy forwarded; anyone
// else gets the 404 of a route that is not there.
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !directLocal(r) {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// directLocal reports whether r comes straight from this machine: a
// loopback peer, and none of the headers a reverse proxy adds.
func directLocal(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
