package bot

import (
	"context"
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

// Bot is the platform-neutral core: it implements Handler for the adapters
// and runs the delivery workers that drain the outbox into them.
//
// The configuration can change while it runs (SetConfig, reload.go): every
// event (a command, a button, a reply, an outbox row) is worked with one
// snapshot of it, taken when the event arrives (current), so that its work
// never sees half of one config and half of another.
type Bot struct {
	*core
	// cfg is the snapshot this value works with.
	cfg Config
}

// core is what every snapshot of a Bot shares.
type core struct {
	// running is the running configuration (SetConfig swaps it).
	running atomic.Pointer[Config]
	db      *pgxpool.Pool
	cases   Cases
	hunt    Incidents
	log     *slog.Logger
	m       *metrics
	now     func() time.Time

	// onCall is the experts' rotation (UseOnCall); nil: nobody is on call.
	onCall OnCall

	// toldNotRelayed: the thread and author of each "Not relayed" note
	// sent, so that it is sent once (on Discord a note is a DM).
	toldNotRelayed sync.Map

	mu       sync.RWMutex
	adapters map[Platform]Adapter
	// samples and links are the chat side of file samples (samples.go),
	// set by UseSamples; nil when not enabled.
	samples Samples
	links   SampleLinks
	web     WebSignIn // the case tracker's sign-in links (web.go); nil: not enabled
	insight Insight   // sightings and campaigns (insight.go); nil: not enabled
	// installer makes Add to Slack links (workspaces.go) and reloader runs
	// "/experts reload" (reload.go); nil: not set up.
	installer Installer
	reloader  Reloader

	// life runs the workers (its loops) and the work handlers start (its
	// work); Stop waits for both.
	life  *lifecycle.Group
	pacer *pacer

	// Inbound work (inbound.go): its metrics, the Responders of rows stored
	// here, the workers' wake-up, and a test switch that stores and
	// acknowledges without working, as a process that dies at once would.
	im          *inboundMetrics
	storeDB     *pgxpool.Pool // a few connections of db's, for the inserts before acknowledgements
	live        liveResponders
	inboundKick chan struct{}
	holdInbound atomic.Bool

	// settled, when set (by tests, before Start), is called after each
	// outbox or inbound row a worker has handled, so that tests wait on it
	// rather than poll the tables.
	settled func()
	// relayMissed, when set (by tests, before Start), is called when an
	// edit or deletion finds no relay of its message on the first read.
	relayMissed func()
}

var _ Handler = (*Bot)(nil)

// New fills cfg's defaults, validates it and returns a Bot. cfg needs at
// least one org and one expert. cases is casework's shim (required); hunt
// may be nil until hunting is wired. Adapters are added with Register;
// delivery starts with Start.
func New(cfg Config, db *pgxpool.Pool, cases Cases, hunt Incidents, log *slog.Logger, reg prometheus.Registerer) (*Bot, error) {
	cfg = cfg.WithDefaults()
	if err := errors.Join(cfg.Validate(), cfg.ready()); err != nil {
		return nil, fmt.Errorf("bot config: %w", err)
	}
	if db == nil {
		return nil, errors.New("bot: a database pool is required")
	}
	if cases == nil {
		return nil, errors.New("bot: a casework implementation is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	im, err := newInboundMetrics(reg)
	if err != nil {
		return nil, err
	}
	// The inserts made before acknowledgements get connections of their own
	// (opened on first use), so that they never wait behind the work.
	sc := db.Config()
	sc.MaxConns, sc.MinConns = int32(cfg.Inbound.StoreConns), 0
	storeDB, err := pgxpool.NewWithConfig(context.Background(), sc)
	if err != nil {
		return nil, fmt.Errorf("bot: inbound store connections: %w", err)
	}
	log = log.With("component", "bot")
	life, err := lifecycle.New("bot", lifecycle.Options{Log: log, Registerer: reg, Grace: stopGrace})
	if err != nil {
		storeDB.Close()
		return nil, fmt.Errorf("bot: %w", err)
	}
	c := &core{
		db: db, cases: cases, hunt: hunt, log: log, m: m,
		now: cfg.Now, adapters: map[Platform]Adapter{}, life: life,
		pacer: newPacer(cfg.Delivery.Pace), im: im, storeDB: storeDB, inboundKick: make(chan struct{}, 1),
	}
	c.running.Store(&cfg)
	return &Bot{core: c, cfg: cfg}, nil
}

// current is b working with the running configuration: each event takes
// it once, when it arrives, and keeps it to the end.
func (b *Bot) current() *Bot {
	cfg := b.running.Load()
	return &Bot{core: b.core, cfg: *cfg}
}

// Register adds the adapter for its platform. Register before Start; a
// second adapter for the same platform is refused.
func (b *Bot) Register(a Adapter) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := a.Platform()
	if _, ok := b.adapters[p]; ok {
		return fmt.Errorf("bot: an adapter for %s is already registered", p)
	}
	b.adapters[p] = a
	return nil
}

func (b *Bot) adapter(p Platform) (Adapter, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	a, ok := b.adapters[p]
	return a, ok
}

// Start starts the delivery workers and the inbound workers (which retry
// inbound work, and take over work a stopped replica left). They run until
// ctx ends or Stop. A second Start is an error (lifecycle.ErrStarted).
func (b *Bot) Start(ctx context.Context) error {
	return b.life.Start(ctx, func(ctx context.Context) error {
		if _, ok := b.adapter(b.cfg.Desk.DeskDest().Platform); !ok {
			b.log.Warn("no adapter registered for the desk's platform: desk cards wait in the outbox", "platform", b.cfg.Desk.DeskDest().Platform)
		}
		b.startWorkers()
		b.startInbound()
		return nil
	})
}

// stopGrace is how long Stop lets inbound work in flight finish before it
// interrupts it; interrupted work is given back for another replica.
const stopGrace = 10 * time.Second

// Stop stops the delivery workers (a row being sent is left to its lease),
// lets inbound work already started finish for up to stopGrace, then
// interrupts what is left (its rows are given back at once, for whichever
// replica is up) and returns when all is done. It is safe before Start and
// more than once; it returns the errors the workers ended with (a panic
// that escaped a row's boundary is one).
func (b *Bot) Stop() error {
	err := b.life.Stop()
	b.storeDB.Close()
	return err
}

// goBackground runs f after an acknowledgement, tracked by Stop. f gets a
// context that outlives the inbound request but not the bot. It reports
// false when the bot has stopped and f was not run.
func (b *Bot) goBackground(name string, timeout time.Duration, f func(ctx context.Context)) bool {
	return b.life.GoWork(name, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		f(ctx)
		return nil
	})
}

// afterRow calls the settled hook, if any.
func (b *Bot) afterRow() {
	if b.settled != nil {
		b.settled()
	}
}

// guard is the bot's panic boundary: it runs the work of one inbound or
// outbox row, and a panic in it becomes an error (logged with its stack,
// counted in threatdesk_panics_total{component="bot"}) that settles the row
// like any other permanent failure.
func (b *Bot) guard(what string, f func() error) error {
	return b.life.Guard(what, f)
}

type metrics struct {
	depth      prometheus.Gauge
	oldest     prometheus.Gauge
	dead       prometheus.Gauge
	deliveries *prometheus.CounterVec
	handling   *prometheus.HistogramVec
	ack        *prometheus.HistogramVec
	direct     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "outbox",
			Name: "depth", Help: "Outbox rows waiting for delivery."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "outbox",
			Name: "oldest_pending_age_seconds", Help: "Age of the oldest undelivered outbox row."}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "outbox",
			Name: "dead", Help: "Outbox rows that failed permanently and need an operator."}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "outbox",
			Name: "deliveries_total", Help: "Outbox delivery attempts by result (delivered, retry, rate_limited, dead)."},
			[]string{"platform", "result"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "bot",
			Name: "command_handling_seconds", Help: "Time from receiving a command, button, form or reply to its answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"kind", "name"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "threatdesk", Subsystem: "bot",
			Name: "ack_seconds", Help: "Time from receiving an inbound event to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 3, 12)}, []string{"kind"}),
		direct: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "bot",
			Name: "direct_messages_total", Help: "Direct messages (pages, assignments, reminders, breaches) by result: sent, or unreachable (the person blocks them or cannot be found; skipped)."},
			[]string{"platform", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.depth, m.oldest, m.dead, m.deliveries, m.handling, m.ack, m.direct} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bot: register metrics: %w", err)
		}
	}
	return m, nil
}
