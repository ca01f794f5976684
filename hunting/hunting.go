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
// A batch (one request, up to Config.MaxItems alerts) is one transaction,
// shared with the org's other requests in flight (group commit,
// groupcommit.go): items are decoded on all cores before it starts; inside
// it the org's advisory lock is taken, and known alerts, prevalence and the
// incidents to join are read, the alerts, entities, merges and incident
// states written, each step a set-based statement over arrays (unnest)
// sent in pipelines, so the round trips per batch stay at about ten
// whatever its size. The steps are named stages (stages.go). Correlation
// (union-find over alerts and incidents, a pure function in correlate.go)
// and scoring (score.go) happen in memory; incident aggregates are folded
// in, and recomputed from an incident's alerts only when upstream changes
// an alert's status, classification or severity.
//
// A sender that asks to be answered before correlation (Prefer:
// respond-async) has its alerts stored in the intake queue and answered at
// once; each org's queue is then drained, oldest first, into the same
// transactions (queue.go).
//
// Incidents are worked from chat through Resolve, Acknowledge, Close and
// NotifyNow, and listed by Incidents (triage.go).
package hunting

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// Service is the hunting service: intake, correlation, scoring, policy.
type Service struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger
	m    *metrics

	cache  *prevalenceCache
	groups *groupCommits
	// queueWake wakes the drain of the intake queue (queue.go), which
	// waits queueLockWait for an org's lock before it goes on.
	queueWake     chan struct{}
	queueLockWait time.Duration
	graph         *graphPuller
	// life runs the scheduler of the sweep, the prune and the Graph pull.
	life *lifecycle.Group

	rescoreMu   sync.Mutex
	lastRescore time.Time

	// live is cfg with the orgs a reload may change (reload.go).
	live atomic.Pointer[Config]
}

// New validates cfg and returns a Service. Its metrics are registered on
// reg under the threatdesk_hunting_ prefix.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if pool == nil {
		return nil, errors.New("hunting: nil pool")
	}
	c := cfg.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("hunting config: %w", err)
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
	s := &Service{pool: pool, cfg: c, log: log, m: m, cache: newPrevalenceCache(), groups: newGroupCommits(), life: life, queueWake: make(chan struct{}, 1), queueLockWait: queueLockWait,
		graph: &graphPuller{tokens: map[string]graphToken{}, notBef: map[string]time.Time{}, span: map[string]time.Duration{}, fresh: map[string]time.Time{}}}
	s.live.Store(&c)
	return s, nil
}

type metrics struct {
	items     *prometheus.CounterVec
	requests  *prometheus.CounterVec
	batchDur  prometheus.Histogram
	events    *prometheus.CounterVec
	merges    prometheus.Counter
	incidents prometheus.Counter
	sweepDur  prometheus.Histogram
	// groups counts group transactions of coalesced requests, and
	// groupRequests the requests they carried.
	groups, groupRequests prometheus.Counter
	// graphHeld counts rejected Graph alerts held for another try, by
	// result (held, accepted, gone, given_up).
	graphHeld *prometheus.CounterVec
	// queue counts alerts of the intake queue by result (queued,
	// correlated, failed).
	queue *prometheus.CounterVec
	// queueWait is how long the oldest alert of the last chunk drained
	// had waited in the queue.
	queueWait prometheus.Gauge
	// stages is the wall time spent in each stage of an ingest
	// transaction (stages.go), indexed by stage.
	stages [numStages]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "alerts_total", Help: "Alert items taken in, by org (" + OtherOrgLabel + ": no configured org, such as an unknown tenant) and result (accepted, updated, unchanged, rejected; queued: stored in the intake queue, to be correlated after the answer)."}, []string{"org", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "intake_requests_total", Help: "Intake HTTP requests by status code."}, []string{"code"}),
		batchDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "ingest_batch_seconds", Help: "Time to ingest one batch of alerts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "outbox_events_total", Help: "Notification events written to the outbox, by org and kind (incident.notify: a card posted)."}, []string{"org", "kind"}),
		merges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "incident_merges_total", Help: "Incidents merged because an alert linked them."}),
		incidents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "incidents_created_total", Help: "Incidents created."}),
		groups: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "ingest_groups_total", Help: "Ingest transactions of one org's concurrent requests coalesced (group commit)."}),
		groupRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "ingest_group_requests_total", Help: "Requests carried by the group transactions (over ingest_groups_total: requests per transaction)."}),
		graphHeld: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "graph_held_total", Help: "Rejected Graph alerts held and fetched again by id at every pull, by result (held: newly held; accepted: taken in later; gone: no longer in Graph; given_up: still rejected after hunting.graph's hold time)."}, []string{"result"}),
		queue: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "queue_alerts_total", Help: "Alerts of the intake queue (Prefer: respond-async) by org and result (queued: stored and answered; correlated: taken from the queue and correlated; failed: set aside in hunting_intake_set_aside for an operator). Queued minus correlated minus failed is what waits."}, []string{"org", "result"}),
		queueWait: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "queue_wait_seconds", Help: "How long the oldest alert waiting in the intake queue had waited when the drain last looked (0: none waited), whether or not it could correlate it: how far the notifications of queued alerts run behind."}),
		sweepDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "hunting",
			Name: "sweep_seconds", Help: "Time of one notification sweep.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	stages := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "hunting",
		Name: "ingest_stage_seconds_total", Help: "Wall time of ingest transactions by stage (begin: a connection and BEGIN; known: the org lock and stored versions; measure: prevalence; candidates; correlate; allocate; lock_incidents; store; refresh; commit; apply: the caches and the results after commit): where intake time goes. A transaction that rolls back counts the stages it went through."}, []string{"stage"})
	for i, n := range stageNames {
		m.stages[i] = stages.WithLabelValues(n)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{stages, m.items, m.requests, m.batchDur, m.events, m.merges, m.incidents, m.sweepDur, m.groups, m.groupRequests, m.graphHeld, m.queue, m.queueWait} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("hunting: register metrics: %w", err)
		}
	}
	return m, nil
}
