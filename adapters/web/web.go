package web

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Samples is what the sample pages need from the domain; *casework.Service
// implements it.
type Samples interface {
	UploadLinkInfo(ctx context.Context, token string) (*casework.UploadLinkInfo, error)
	StoreSample(ctx context.Context, up casework.Upload) (*casework.Sample, error)
	OpenSample(ctx context.Context, token, address string, stillExpert func(casework.Person) bool) (*casework.SampleDownload, error)
}

var _ Samples = (*casework.Service)(nil)

// Defaults.
const (
	// DefaultTransferTimeout bounds one upload or download (the server's
	// own read and write timeouts are far shorter; these routes extend them).
	DefaultTransferTimeout = 30 * time.Minute
	// DefaultUploadIdle cuts an upload that sends nothing for this long:
	// a stalled client must not hold one of casework's few store slots
	// (and a database connection) for the whole TransferTimeout.
	DefaultUploadIdle = time.Minute
	// DefaultUploadMinRate cuts an upload slower than this, on average,
	// after its first UploadIdle (bytes a second: 4 KiB/s, 32 kbit/s): a
	// byte a minute would otherwise hold a store slot, a connection and
	// an open transaction for the whole TransferTimeout.
	DefaultUploadMinRate = 4 << 10
	// multipartOverhead is what the upload route's body cap allows beyond
	// the sample's limit: boundaries, part headers, a few small fields.
	multipartOverhead = 64 << 10
)

// Config configures a Handler.
type Config struct {
	// Links builds the absolute URLs shown on pages (required).
	Links Links
	// Samples stores and opens file samples (required).
	Samples Samples
	// MaxSampleBytes is samples.max_bytes, as casework enforces it
	// (required): it sizes the upload route's body cap and is stated on
	// the page.
	MaxSampleBytes int64
	// TransferTimeout bounds one upload or download (default 30 minutes).
	TransferTimeout time.Duration
	// UploadIdle cuts an upload that sends nothing for this long (default
	// a minute).
	UploadIdle time.Duration
	// UploadMinRate cuts an upload slower than this many bytes a second,
	// on average, once UploadIdle has passed (default 4 KiB/s).
	UploadMinRate int64

	// The case tracker (/web/). Pool keeps its sign-in links and sessions
	// (required); Key keys its forms' CSRF tokens (required); Cases is
	// where its pages read (required; casework's Service). Who a person is
	// comes from the Directory handed over with SetDirectory (the bot).
	Pool  *pgxpool.Pool
	Key   *secrets.Key
	Cases Cases
	// Location is the time zone pages show times and report periods in
	// (the config's timezone; nil: UTC).
	Location *time.Location
	// Now is the clock of sign-in links and sessions (default time.Now).
	Now func() time.Time
}

func (c Config) validate() error {
	switch {
	case c.Links.base == "":
		return errors.New("web: Config.Links is required: build it with NewLinks from the public base URL")
	case c.Samples == nil:
		return errors.New("web: Config.Samples is required (casework's Service)")
	case c.MaxSampleBytes < 1:
		return errors.New("web: Config.MaxSampleBytes must be samples.max_bytes, as casework enforces it")
	case c.TransferTimeout < time.Second:
		return errors.New("web: Config.TransferTimeout must be at least a second")
	case c.Pool == nil:
		return errors.New("web: Config.Pool is required: the case tracker keeps its sign-in links and sessions in the database")
	case c.Key == nil:
		return errors.New("web: Config.Key is required (THREATDESK_SECRET_KEY): it keys the case tracker's form tokens")
	case c.Cases == nil:
		return errors.New("web: Config.Cases is required (casework's Service)")
	}
	return nil
}

// Handler serves threatdesk's pages. Mount each of Routes on the HTTP
// server; Handler is also an http.Handler serving all of them (tests).
type Handler struct {
	cfg   Config
	log   *slog.Logger
	pages *pages
	mux   *http.ServeMux
	m     metrics

	dirMu sync.RWMutex
	dir   Directory

	// presNext is when each session's person is next looked up in chat
	// (by the session id's hash).
	presMu     sync.Mutex
	presNext   map[string]time.Time
	presPruned time.Time
	// presFailing is a session's look-ups failing in a row: since when,
	// and how many.
	presFailing map[string]presenceFailing
}

type metrics struct {
	uploads   *prometheus.CounterVec
	downloads *prometheus.CounterVec
	signIns   *prometheus.CounterVec
	ended     *prometheus.CounterVec
}

var _ bot.WebSignIn = (*Handler)(nil)

// New returns a Handler. reg receives its metrics (nil: not registered).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	cfg.TransferTimeout = cmp.Or(cfg.TransferTimeout, DefaultTransferTimeout)
	cfg.UploadIdle = cmp.Or(cfg.UploadIdle, DefaultUploadIdle)
	cfg.UploadMinRate = cmp.Or(cfg.UploadMinRate, DefaultUploadMinRate)
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: log.With("adapter", "web"), pages: p, mux: http.NewServeMux(), presNext: map[string]time.Time{}, presFailing: map[string]presenceFailing{}}
	h.m = metrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "web", Name: "sample_uploads_total",
			Help: "Sample upload posts, by outcome (stored, too_large, empty, interrupted, link_used, ...).",
		}, []string{"outcome"}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "web", Name: "sample_downloads_total",
			Help: "Sample download requests, by outcome (sent, failed, link_expired, ...).",
		}, []string{"outcome"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "web", Name: "signins_total",
			Help: "Case tracker sign-in links opened (GET) and posted, by outcome (asked: the page asking to sign in was shown; signed_in, link_used, link_expired, link_unknown, no_access, preview_refused, cross_site_refused, form_refused, failed).",
		}, []string{"outcome"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "web", Name: "sessions_ended_total",
			Help: "Case tracker sessions ended before they expired, by reason (signed_out, access_removed, left_chat, presence_unconfirmed).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{h.m.uploads, h.m.downloads, h.m.signIns, h.m.ended} {
			if err := reg.Register(c); err != nil {
				return nil, errors.Join(errors.New("web: register metrics"), err)
			}
		}
	}
	for _, r := range h.Routes() {
		h.mux.Handle(r.Pattern, http.MaxBytesHandler(r.Handler, r.MaxBody))
	}
	return h, nil
}

// Links returns the Links the handler was built with, for the chat side.
func (h *Handler) Links() Links { return h.cfg.Links }

// Route is one route to mount: a ServeMux pattern, the cap on its request
// body, and its handler.
type Route struct {
	Pattern string
	MaxBody int64
	Handler http.Handler
}

// Routes lists the routes to mount, each with its body cap:
//
//	for _, r := range h.Routes() {
//		srv.HandleLimited(r.Pattern, r.MaxBody, r.Handler)
//	}
//
// Patterns have no method: the handlers answer a wrong one with 405 and
// a page saying which methods work.
//
// Over https (THREATDESK_PUBLIC_URL), every answer tells the browser to
// come back over https only (HSTS, a year): a first visit over plain http
// could otherwise be served, or a session cookie planted, by a network in
// between.
func (h *Handler) Routes() []Route {
	rs := append([]Route{
		{Pattern: UploadPath + "{token}", MaxBody: h.cfg.MaxSampleBytes + multipartOverhead, Handler: http.HandlerFunc(h.serveUpload)},
		{Pattern: DownloadPath + "{token}", MaxBody: 4 << 10, Handler: http.HandlerFunc(h.serveDownload)},
	}, h.trackerRoutes()...)
	if h.cfg.Links.secure {
		for i, r := range rs {
			next := r.Handler
			rs[i].Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Strict-Transport-Security", "max-age=31536000")
				next.ServeHTTP(w, req)
			})
		}
	}
	return rs
}

// presenceFailing counts a session's failed look-ups in a row.
type presenceFailing struct {
	first time.Time
	n     int
}

// ServeHTTP serves every route (tests, or a server of its own).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// methodNotAllowed answers 405 with the methods that work.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	h.say(w, r, http.StatusMethodNotAllowed, message{Title: "Method not allowed",
		Lines: []string{r.Method + " does not work here; use " + allow + "."}})
}
