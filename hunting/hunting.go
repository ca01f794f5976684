// Package hunting takes in security alerts (Microsoft Defender for Endpoint
// and Microsoft Graph alerts_v2), normalizes them into one model with their
// entities, correlates them into incidents (one per attack), scores each
// incident with stored reasons, and decides when the SOC is notified: it
// records "incident.notify", "incident.update" and "incident.repeat" events
// in the outbox in the same transaction as the incident's state, following
// an Alertmanager-like policy (group_wait, group_interval, repeat_interval).
//
// It knows nothing of chat platforms: the bot drains the outbox and reads
// the incident through Service.Incident (an IncidentView).
//
// A batch (one request, up to Config.MaxItems alerts) is one transaction:
// items are decoded on all cores before it starts; inside it the org's
// advisory lock is taken, and known alerts, prevalence and the incidents to
// join are read, the alerts, entities, merges and incident states written,
// each step a set-based statement over arrays (unnest) sent in pipelines,
// so the round trips per batch stay at about ten whatever its size.
// Correlation (union-find over alerts and incidents) and scoring happen in
// memory; incident aggregates are folded in, never recomputed from all of
// an incident's alerts.
package hunting

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// Config is the hunting policy. Zero durations and sizes take the
// defaults (so a GroupWait of 0 means 30s; to post without waiting use a
// tiny positive value such as 1ns).
type Config struct {
	// Tenants maps a Defender aadTenantId / Graph tenantId to an org id.
	// Alerts of any other tenant are rejected.
	Tenants map[string]string
	// IngestToken is the admin-wide bearer token of POST /api/v1/alerts: it
	// may post alerts of any org's tenants (meant for single-org setups and
	// for an operator's own forwarder).
	IngestToken string
	// OrgIngestTokens maps an org id to its own bearer token, which only
	// accepts alerts of that org's tenants: a request with an alert of any
	// other tenant is refused whole (403). Each org needs at least one
	// tenant; tokens must differ from each other and from IngestToken.
	OrgIngestTokens map[string]string
	// Window is how far apart in time two alerts sharing an entity may be and
	// still correlate, and the span over which prevalence is measured
	// (default 24h).
	Window time.Duration
	// CommonEntityDevices: an entity seen on this many devices or more inside
	// the window stops being a join key (default 10).
	CommonEntityDevices int
	// NotifyScore is the default score (0-100) at which an incident is
	// notified (default 50). OrgNotifyScore overrides it per org.
	NotifyScore    int
	OrgNotifyScore map[string]int
	// RepeatSeverity: unacknowledged incidents at or above this severity are
	// repeated every RepeatInterval (default high). Expert incidents always are.
	RepeatSeverity Severity
	// GroupWait is how long to wait before the first post so a burst lands
	// as one card (default 30s). Expert-service alerts are posted at once.
	GroupWait time.Duration
	// GroupInterval is the least time between two updates of a card (default 5m).
	GroupInterval time.Duration
	// RepeatInterval re-notifies an unacknowledged high incident (default 4h).
	RepeatInterval time.Duration
	// SweepInterval is how often the scheduled sweep looks for due
	// notifications (default 5s).
	SweepInterval time.Duration
	// RescoreInterval: the sweep re-scores open incidents untouched for this
	// long (default 10m), so the recency part of a score decays.
	RescoreInterval time.Duration
	// MaxBodyBytes caps a request body (default 16 MiB); MaxItems caps the
	// alerts in one request (default 1000).
	MaxBodyBytes int64
	MaxItems     int
	// Now is the clock (default time.Now); tests pass a fake.
	Now func() time.Time
	// Graph, when set, pulls alerts from Microsoft Graph on a schedule.
	Graph *GraphConfig
}

// Defaults.
const (
	DefaultWindow              = 24 * time.Hour
	DefaultCommonEntityDevices = 10
	DefaultNotifyScore         = 50
	DefaultGroupWait           = 30 * time.Second
	DefaultGroupInterval       = 5 * time.Minute
	DefaultRepeatInterval      = 4 * time.Hour
	DefaultSweepInterval       = 5 * time.Second
	DefaultMaxBodyBytes        = 16 << 20
	DefaultMaxItems            = 1000
)

func (c *Config) withDefaults() Config {
	d := *c
	d.Window = cmp.Or(d.Window, DefaultWindow)
	d.CommonEntityDevices = cmp.Or(d.CommonEntityDevices, DefaultCommonEntityDevices)
	d.NotifyScore = cmp.Or(d.NotifyScore, DefaultNotifyScore)
	d.RepeatSeverity = cmp.Or(d.RepeatSeverity, SeverityHigh)
	d.GroupWait = cmp.Or(d.GroupWait, DefaultGroupWait)
	d.GroupInterval = cmp.Or(d.GroupInterval, DefaultGroupInterval)
	d.RepeatInterval = cmp.Or(d.RepeatInterval, DefaultRepeatInterval)
	d.SweepInterval = cmp.Or(d.SweepInterval, DefaultSweepInterval)
	d.RescoreInterval = cmp.Or(d.RescoreInterval, 10*time.Minute)
	d.MaxBodyBytes = cmp.Or(d.MaxBodyBytes, DefaultMaxBodyBytes)
	d.MaxItems = cmp.Or(d.MaxItems, DefaultMaxItems)
	if d.Now == nil {
		d.Now = time.Now
	}
	tenants := make(map[string]string, len(d.Tenants))
	for t, org := range d.Tenants {
		tenants[strings.ToLower(strings.TrimSpace(t))] = org
	}
	d.Tenants = tenants
	d.Graph = c.Graph.withDefaults()
	return d
}

func (c *Config) validate() error {
	var errs []error
	hasTenant := map[string]bool{}
	for t, org := range c.Tenants {
		if t == "" || org == "" {
			errs = append(errs, fmt.Errorf("hunting: tenant %q -> org %q: both must be set", t, org))
		}
		hasTenant[org] = true
	}
	seen := map[string]string{"": "(empty)"}
	if c.IngestToken != "" {
		seen[c.IngestToken] = "the admin-wide ingest token"
	}
	orgs := make([]string, 0, len(c.OrgIngestTokens))
	for org := range c.OrgIngestTokens {
		orgs = append(orgs, org)
	}
	sort.Strings(orgs)
	for _, org := range orgs {
		tok := c.OrgIngestTokens[org]
		if !hasTenant[org] {
			errs = append(errs, fmt.Errorf("hunting: org %q has an ingest token but no tenants: the token could accept nothing", org))
		}
		if prev, dup := seen[tok]; dup {
			errs = append(errs, fmt.Errorf("hunting: the ingest token of org %q is empty or the same as %s: give each org a token of its own", org, prev))
			continue
		}
		seen[tok] = "org " + org + "'s ingest token"
	}
	if c.Window < time.Minute {
		errs = append(errs, fmt.Errorf("hunting: correlation window %s is too short: use at least 1m (default 24h)", c.Window))
	}
	if c.CommonEntityDevices < 2 {
		errs = append(errs, fmt.Errorf("hunting: common-entity threshold %d: must be at least 2 devices (default 10)", c.CommonEntityDevices))
	}
	check := func(name string, v int) {
		if v < 0 || v > 100 {
			errs = append(errs, fmt.Errorf("hunting: %s %d: a score is 0-100", name, v))
		}
	}
	check("notify score", c.NotifyScore)
	for org, v := range c.OrgNotifyScore {
		check("notify score of org "+org, v)
	}
	if c.GroupWait < 0 || c.GroupInterval <= 0 || c.RepeatInterval <= 0 || c.SweepInterval <= 0 || c.RescoreInterval <= 0 {
		errs = append(errs, errors.New("hunting: group_wait must be >= 0 and group_interval, repeat_interval, sweep interval > 0"))
	}
	if c.RepeatSeverity.Rank() == 0 && c.RepeatSeverity != SeverityInformational {
		errs = append(errs, fmt.Errorf("hunting: repeat severity %q: use low, medium or high", c.RepeatSeverity))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("hunting: body cap %d bytes is too small: use at least 1024", c.MaxBodyBytes))
	}
	if c.MaxItems < 1 || c.MaxItems > 100000 {
		errs = append(errs, fmt.Errorf("hunting: item cap %d: use 1-100000", c.MaxItems))
	}
	if err := c.Graph.validate(c.Tenants); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) notifyScore(org string) int {
	if v, ok := c.OrgNotifyScore[org]; ok {
		return v
	}
	return c.NotifyScore
}

// Service is the hunting service: intake, correlation, scoring, policy.
type Service struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger
	m    *metrics

	cache *prevalenceCache
	graph *graphPuller
	// life runs the scheduler of the sweep, the prune and the Graph pull.
	life *lifecycle.Group

	rescoreMu   sync.Mutex
	lastRescore time.Time
}

// New validates cfg and returns a Service. Its metrics are registered on
// reg under the threatdesk_hunting_ prefix.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if pool == nil {
		return nil, errors.New("hunting: nil pool")
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "hunting")
	life, err := lifecycle.New("hunting", lifecycle.Options{Log: log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("hunting: %w", err)
	}
	return &Service{pool: pool, cfg: c, log: log, m: m, cache: newPrevalenceCache(), life: life,
		graph: &graphPuller{tokens: map[string]graphToken{}, notBef: map[string]time.Time{}}}, nil
}

type metrics struct {
	items     *prometheus.CounterVec
	requests  *prometheus.CounterVec
	batchDur  prometheus.Histogram
	events    *prometheus.CounterVec
	merges    prometheus.Counter
	incidents prometheus.Counter
	sweepDur  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "alerts_total", Help: "Alert items taken in, by result (accepted, updated, unchanged, rejected)."}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "intake_requests_total", Help: "Intake HTTP requests by status code."}, []string{"code"}),
		batchDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "ingest_batch_seconds", Help: "Time to ingest one batch of alerts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "outbox_events_total", Help: "Notification events written to the outbox, by kind."}, []string{"kind"}),
		merges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "incident_merges_total", Help: "Incidents merged because an alert linked them."}),
		incidents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "incidents_created_total", Help: "Incidents created."}),
		sweepDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "sweep_seconds", Help: "Time of one notification sweep.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.items, m.requests, m.batchDur, m.events, m.merges, m.incidents, m.sweepDur} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("hunting: register metrics: %w", err)
		}
	}
	return m, nil
}
