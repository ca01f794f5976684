package casework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// MaxTextRunes bounds a question, a summary or a message.
const MaxTextRunes = 20000

// Service is the casework store and state machine. It is safe for
// concurrent use, and several Services (replicas) may share one database.
type Service struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger
	m    metrics
	// entryKey is the timeline subkey that keys each entry's HMAC.
	entryKey []byte
	// smp is the file samples' machinery (sample.go).
	smp *sampleState

	// life runs the scheduler of the SLA sweep and the timeline check.
	life *lifecycle.Group
	// live is cfg with the orgs and SLA targets a reload may change
	// (reload.go).
	live atomic.Pointer[Config]
}

// OtherOrgLabel is the org label of metrics about an org that is not in
// Config.Orgs, so that the label's values stay bounded by the configuration
// (org ids start with a letter or digit, so it never names a real org).
const OtherOrgLabel = "_other"

type metrics struct {
	opened      *prometheus.CounterVec
	credits     *prometheus.CounterVec
	transitions *prometheus.CounterVec
	messages    *prometheus.CounterVec
	sla         *prometheus.CounterVec
	refused     *prometheus.CounterVec
	sweep       prometheus.Histogram

	timelineBreaks    prometheus.Counter
	timelineBroken    prometheus.Gauge
	timelineLastCheck prometheus.Gauge
}

// New returns a Service on pool. cfg is validated after defaults are filled
// in, and needs a Key; reg receives the metrics (nil: not registered).
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if pool == nil {
		return nil, errors.New("casework: New needs a database pool")
	}
	cfg = cfg.WithDefaults()
	if cfg.Key == nil {
		return nil, errors.New("casework config: Key is required: pass the THREATDESK_SECRET_KEY master key (internal/secrets), which keys the timeline's HMAC chain")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("casework config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{pool: pool, cfg: cfg, log: log.With("component", "casework"), entryKey: cfg.Key.Derive(secrets.PurposeTimelineEntry)}
	s.live.Store(&cfg)
	s.m = metrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "cases_opened_total",
			Help: "Cases opened, by org and priority (org " + OtherOrgLabel + ": an org not in the configuration).",
		}, []string{"org", "priority"}),
		credits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "credits_total",
			Help: "Case credits used (change used) and given back (change refunded), by org; used minus refunded is what the service report counts as used.",
		}, []string{"org", "change"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "transitions_total",
			Help: "Status changes, by new status.",
		}, []string{"to"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "messages_total",
			Help: "Case messages stored, by side (internal notes count as side internal).",
		}, []string{"side"}),
		sla: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "sla_events_total",
			Help: "SLA warnings and breaches emitted, by org, clock and kind.",
		}, []string{"org", "clock", "kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "refused_total",
			Help: "Refused operations, by reason (transition, taken, credits).",
		}, []string{"reason"}),
		sweep: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "sla_sweep_seconds",
			Help:    "Duration of an SLA sweep.",
			Buckets: prometheus.DefBuckets,
		}),
		timelineBreaks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "timeline_breaks_total",
			Help: "Broken case timelines found by the scheduled check (a case still broken is counted again by the next check), and keying record failures. Alert on any increase.",
		}),
		timelineBroken: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "timeline_broken_cases",
			Help: "Cases whose timeline failed verification in the last scheduled check.",
		}),
		timelineLastCheck: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "timeline_last_check_timestamp_seconds",
			Help: "When the scheduled timeline check last completed (Unix time).",
		}),
	}
	if reg != nil {
		if err := s.m.register(reg); err != nil {
			return nil, err
		}
	}
	life, err := lifecycle.New("casework", lifecycle.Options{Log: s.log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("casework: %w", err)
	}
	s.life = life
	if s.smp, err = newSampleState(reg); err != nil {
		return nil, err
	}
	return s, nil
}

// register registers the metrics on reg; when a Service registered them on
// reg before (a second Service in one process), it shares those.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []any{&m.opened, &m.credits, &m.transitions, &m.messages, &m.sla, &m.refused, &m.sweep,
		&m.timelineBreaks, &m.timelineBroken, &m.timelineLastCheck} {
		var err error
		switch p := c.(type) {
		case **prometheus.CounterVec:
			*p, err = registerOrReuse(reg, *p)
		case *prometheus.Histogram:
			*p, err = registerOrReuse(reg, *p)
		case *prometheus.Counter:
			*p, err = registerOrReuse(reg, *p)
		case *prometheus.Gauge:
			*p, err = registerOrReuse(reg, *p)
		}
		if err != nil {
			return fmt.Errorf("casework: register metrics: %w", err)
		}
	}
	return nil
}

func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// orgLabel is org as a metric label: itself when configured, else OtherOrgLabel.
func (s *Service) orgLabel(org string) string {
	if s.liveConfig().knows(org) {
		return org
	}
	return OtherOrgLabel
}

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// row is a case with the columns only the store needs.
type row struct {
	Case
	responseTarget   time.Duration
	conclusionTarget time.Duration
	elapsed          time.Duration
	runningSince     *time.Time
	respWarned       *time.Time
	respBreached     *time.Time
	conclWarned      *time.Time
	conclBreached    *time.Time
	atRiskAt         *time.Time
	nextSLAAt        *time.Time
	timelineLen      int
	timelineHead     []byte
	legacyLen        int    // leading legacy (unkeyed) timeline entries
	timelineMAC      []byte // keyed MAC over the head; nil on unsealed legacy cases
	// committed runs after the transaction commits (metrics, logs).
	committed []func()
}

// onCommit defers fn until x's transaction has committed.
func (x *row) onCommit(fn func()) { x.committed = append(x.committed, fn) }

func (x *row) runCommitted() {
	for _, fn := range x.committed {
		fn()
	}
	x.committed = nil
}

const caseCols = `c.number, c.org, c.subject_kind, c.subject_id, c.subject_name, c.subject_link, c.subject_severity,
 c.category, c.question, c.priority, c.requester_platform, c.requester_workspace, c.requester_user, c.requester_name,
 c.contact, c.assignee_platform, c.assignee_workspace, c.assignee_user, c.assignee_name, c.status, c.summary,
 c.credit_used, c.created_at, c.updated_at, c.status_at, c.taken_at, c.first_response_at, c.concluded_at, c.closed_at,
 c.response_target_us, c.conclusion_target_us, c.sla_elapsed_us, c.sla_running_since,
 c.response_warned_at, c.response_breached_at, c.conclusion_warned_at, c.conclusion_breached_at,
 c.due_at, c.at_risk_at, c.next_sla_at, c.timeline_len, c.timeline_head, c.timeline_legacy_len, c.timeline_mac,
 c.origin_platform, c.origin_workspace, c.origin_channel,
 c.priority_by_platform, c.priority_by_workspace, c.priority_by_user, c.priority_by_name`

const caseFrom = ` FROM cases c`

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// scanRow reads caseCols, then extra columns into extra.
func (s *Service) scanRow(r pgx.Row, extra ...any) (*row, error) {
	var x row
	var respUS, conclUS, elapsedUS int64
	err := r.Scan(append([]any{&x.Number, &x.Org, &x.Subject.Kind, &x.Subject.ID, &x.Subject.Name, &x.Subject.Link, &x.Subject.Severity,
		&x.Category, &x.Question, &x.Priority, &x.Requester.Platform, &x.Requester.Workspace, &x.Requester.UserID, &x.Requester.DisplayName,
		&x.Contact, &x.Assignee.Platform, &x.Assignee.Workspace, &x.Assignee.UserID, &x.Assignee.DisplayName, &x.Status, &x.Summary,
		&x.CreditUsed, &x.CreatedAt, &x.UpdatedAt, &x.StatusAt, &x.TakenAt, &x.FirstResponseAt, &x.ConcludedAt, &x.ClosedAt,
		&respUS, &conclUS, &elapsedUS, &x.runningSince,
		&x.respWarned, &x.respBreached, &x.conclWarned, &x.conclBreached,
		&x.DueAt, &x.atRiskAt, &x.nextSLAAt, &x.timelineLen, &x.timelineHead, &x.legacyLen, &x.timelineMAC,
		&x.Origin.Platform, &x.Origin.Workspace, &x.Origin.Channel,
		&x.PriorityBy.Platform, &x.PriorityBy.Workspace, &x.PriorityBy.UserID, &x.PriorityBy.DisplayName}, extra...)...)
	if err != nil {
		return nil, err
	}
	x.Ref = FormatRef(x.Number)
	x.responseTarget = time.Duration(respUS) * time.Microsecond
	x.conclusionTarget = time.Duration(conclUS) * time.Microsecond
	x.elapsed = time.Duration(elapsedUS) * time.Microsecond
	x.CreatedAt, x.UpdatedAt, x.StatusAt = x.CreatedAt.UTC(), x.UpdatedAt.UTC(), x.StatusAt.UTC()
	for _, p := range []**time.Time{&x.TakenAt, &x.FirstResponseAt, &x.ConcludedAt, &x.ClosedAt, &x.runningSince,
		&x.respWarned, &x.respBreached, &x.conclWarned, &x.conclBreached, &x.DueAt, &x.atRiskAt, &x.nextSLAAt} {
		*p = utcPtr(*p)
	}
	s.flags(&x, s.cfg.now())
	return &x, nil
}

// flags sets the derived booleans of the public Case.
func (s *Service) flags(x *row, now time.Time) {
	x.Breached = x.respBreached != nil || x.conclBreached != nil
	x.AtRisk = x.atRiskAt != nil && !x.atRiskAt.After(now)
	if x.runningSince != nil {
		// Breached as soon as a running clock is past due, even before the
		// sweep has recorded it.
		for _, k := range x.pendingClocks() {
			if x.elapsedAt(now) >= k.target {
				x.Breached = true
			}
		}
	}
}

func (s *Service) publicCase(x *row) *Case {
	c := x.Case
	return &c
}

// viewerClause returns the tenancy condition for argument $n.
func viewerClause(v Viewer, args *[]any) string {
	if v.all {
		return "TRUE"
	}
	*args = append(*args, v.org)
	return fmt.Sprintf("c.org = $%d", len(*args))
}

// load reads one case visible to v; forUpdate locks the cases row, FOR NO
// KEY UPDATE (as every case lock here): nothing changes a case's number, and
// the weaker lock does not wait for the key-share lock a sample's row takes
// on its case (a foreign key) while its upload streams in.
func (s *Service) load(ctx context.Context, q pgxQuerier, v Viewer, number int64, forUpdate bool) (*row, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	args := []any{number}
	sql := "SELECT " + caseCols + caseFrom + " WHERE c.number = $1 AND " + viewerClause(v, &args)
	if forUpdate {
		sql += " FOR NO KEY UPDATE OF c"
	}
	x, err := s.scanRow(q.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", FormatRef(number), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", FormatRef(number), err)
	}
	return x, nil
}

type pgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Service) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// change loads the case named by ref for update, as seen by actor, and runs
// fn on it in one transaction; fn's changes are saved with the SLA columns
// derived again.
func (s *Service) change(ctx context.Context, what, ref string, actor Actor, fn func(tx pgx.Tx, x *row, now time.Time) error) (*Case, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var out *Case
	var changed *row
	err = s.inTx(ctx, what+" "+FormatRef(number), func(tx pgx.Tx) error {
		x, err := s.load(ctx, tx, actor.Viewer(), number, true)
		if err != nil {
			return err
		}
		changed = x
		now := s.cfg.now()
		if now.Before(x.UpdatedAt) {
			// Never let the clock run backwards within a case's history.
			now = x.UpdatedAt
		}
		owed, err := s.owedBreaches(ctx, tx, x, now)
		if err != nil {
			return err
		}
		before := x.timelineLen
		if err := fn(tx, x, now); err != nil {
			return err
		}
		if x.timelineLen == before && owed == 0 {
			// Nothing happened (a repeated take, a redelivered message):
			// every change records at least one timeline entry.
			out = s.publicCase(x)
			return nil
		}
		if err := s.save(ctx, tx, x, now); err != nil {
			return err
		}
		s.flags(x, now)
		out = s.publicCase(x)
		return nil
	})
	if err != nil {
		s.countRefusal(err)
		return nil, err
	}
	changed.runCommitted()
	return out, nil
}

func (s *Service) countRefusal(err error) {
	var te *TransitionError
	var at *AlreadyTakenError
	var nc *NoCreditsError
	switch {
	case errors.As(err, &te):
		s.m.refused.WithLabelValues("transition").Inc()
	case errors.As(err, &at):
		s.m.refused.WithLabelValues("taken").Inc()
	case errors.As(err, &nc):
		s.m.refused.WithLabelValues("credits").Inc()
	}
}

// save writes every mutable column of x, with the SLA columns derived again
// and the chain head's MAC made anew.
func (s *Service) save(ctx context.Context, tx pgx.Tx, x *row, now time.Time) error {
	x.UpdatedAt = now
	s.derive(x)
	x.timelineMAC = s.headMAC(x)
	_, err := tx.Exec(ctx, `UPDATE cases SET
 assignee_platform = $2, assignee_workspace = $3, assignee_user = $4, assignee_name = $5,
 status = $6, summary = $7, credit_used = $8, updated_at = $9, status_at = $10,
 taken_at = $11, first_response_at = $12, concluded_at = $13, closed_at = $14,
 sla_elapsed_us = $15, sla_running_since = $16,
 response_warned_at = $17, response_breached_at = $18, conclusion_warned_at = $19, conclusion_breached_at = $20,
 due_at = $21, at_risk_at = $22, next_sla_at = $23, timeline_len = $24, timeline_head = $25, timeline_mac = $26
 WHERE number = $1`,
		x.Number, x.Assignee.Platform, x.Assignee.Workspace, x.Assignee.UserID, x.Assignee.DisplayName,
		x.Status, x.Summary, x.CreditUsed, x.UpdatedAt, x.StatusAt,
		x.TakenAt, x.FirstResponseAt, x.ConcludedAt, x.ClosedAt,
		x.elapsed.Microseconds(), x.runningSince,
		x.respWarned, x.respBreached, x.conclWarned, x.conclBreached,
		x.DueAt, x.atRiskAt, x.nextSLAAt, x.timelineLen, x.timelineHead, x.timelineMAC)
	if err != nil {
		return fmt.Errorf("save %s: %w", x.Ref, err)
	}
	return nil
}

// setStatus moves x to `to` at now: closes the current status period, opens
// the next, and stops, pauses or resumes the SLA clock.
func (s *Service) setStatus(ctx context.Context, tx pgx.Tx, x *row, to Status, now time.Time) error {
	// One statement: end the current period, start the next.
	if _, err := tx.Exec(ctx, `WITH ended AS (
 UPDATE case_status_periods SET ended_at = $3 WHERE case_number = $1 AND ended_at IS NULL RETURNING seq)
 INSERT INTO case_status_periods (case_number, seq, status, started_at)
 SELECT $1, coalesce((SELECT max(seq) FROM ended), 0) + 1, $2, $3`,
		x.Number, to, now); err != nil {
		return fmt.Errorf("record status %s of %s: %w", to, x.Ref, err)
	}
	if x.runningSince != nil {
		x.elapsed += now.Sub(*x.runningSince)
		x.runningSince = nil
	}
	if to.clockRuns() {
		t := now
		x.runningSince = &t
	}
	x.Status = to
	x.StatusAt = now
	t := now
	switch to {
	case StatusConcluded:
		x.ConcludedAt = &t
		x.ClosedAt = nil
	case StatusClosed, StatusWithdrawn:
		x.ClosedAt = &t
	case StatusInProgress:
		if x.TakenAt == nil {
			x.TakenAt = &t
		}
	}
	x.onCommit(func() { s.m.transitions.WithLabelValues(string(to)).Inc() })
	return nil
}

// OpenRequest asks for a new case.
type OpenRequest struct {
	// Key makes Open idempotent per org: the same key returns the case it
	// opened the first time (a retried slash command, a double click).
	Key string
	// Org is the requester's org; it pays the credit.
	Org string
	// Subject is what the case is about (Kind none for a general question).
	Subject Subject
	// Category is optional; by default it follows the subject (CategoryFor).
	Category Category
	// Question is the requester's question (required).
	Question string
	// Priority is optional; by default it is derived (see DerivePriority).
	Priority Priority
	// PriorityBy is who chose Priority (the requester, in the ask form);
	// zero when Priority is derived. It is stored with the case and shown
	// on its desk card.
	PriorityBy Person
	// ApprovedBy, when set, is a manager who approved this case although
	// the org may have no credits left: with a balance of zero the case
	// opens without using a credit, and the approval is on its timeline
	// (OpenedEvent.ApprovedBy). With credits left it uses one as usual.
	ApprovedBy *Actor
	// Requester is who asks (platform and user id required).
	Requester Person
	// Contact is an optional way to reach the requester outside chat.
	Contact string
	// Origin is the chat channel the requester asked in, where the receipt
	// goes. It is stored in the transaction that opens the case, so that no
	// step after the commit can fail. Optional (zero: unknown).
	Origin Place
}

// DerivePriority is the default priority of a case: a subject of high or
// critical severity, or a possible device compromise, is high; informational
// or low severity is low; anything else is medium.
func DerivePriority(sub Subject, cat Category) Priority {
	switch strings.ToLower(sub.Severity) {
	case "high", "critical":
		return PriorityHigh
	}
	if cat == CategoryDeviceCompromise {
		return PriorityHigh
	}
	switch strings.ToLower(sub.Severity) {
	case "low", "informational":
		return PriorityLow
	}
	return PriorityMedium
}

func checkText(field, text string, required bool) error {
	if required && strings.TrimSpace(text) == "" {
		return fmt.Errorf("%s is empty: %w", field, ErrInvalid)
	}
	if n := utf8.RuneCountInString(text); n > MaxTextRunes {
		return fmt.Errorf("%s is %d characters long; the limit is %d: %w", field, n, MaxTextRunes, ErrInvalid)
	}
	return nil
}

func (r *OpenRequest) normalize() error {
	if r.Key == "" {
		return fmt.Errorf("open: an idempotency key is required: %w", ErrInvalid)
	}
	if r.Org == "" {
		return fmt.Errorf("open: the org is required: %w", ErrInvalid)
	}
	if r.Subject.Kind == "" {
		r.Subject.Kind = SubjectNone
	}
	if !r.Subject.Kind.Valid() {
		return fmt.Errorf("open: subject kind %q is not one of none, alert, device, file, incident, ip, url, actor: %w", r.Subject.Kind, ErrInvalid)
	}
	if r.Subject.Kind != SubjectNone && r.Subject.ID == "" {
		return fmt.Errorf("open: a %s subject needs its id: %w", r.Subject.Kind, ErrInvalid)
	}
	if r.Category == "" {
		r.Category = CategoryFor(r.Subject.Kind)
	}
	if !r.Category.Valid() {
		return fmt.Errorf("open: category %q is unknown: %w", r.Category, ErrInvalid)
	}
	if r.Priority == "" {
		r.Priority = DerivePriority(r.Subject, r.Category)
		r.PriorityBy = Person{}
	}
	if a := r.ApprovedBy; a != nil {
		if a.Role != RoleManager {
			return fmt.Errorf("open: only a manager approves a case beyond the org's credits, not %s: %w", article(string(a.Role)), ErrInvalid)
		}
		if err := a.validate(); err != nil {
			return fmt.Errorf("open: the approving manager: %w", err)
		}
	}
	if !r.Priority.Valid() {
		return fmt.Errorf("open: priority %q is not high, medium or low: %w", r.Priority, ErrInvalid)
	}
	if r.Requester.UserID == "" || r.Requester.Platform == "" {
		return fmt.Errorf("open: the requester's platform and user id are required: %w", ErrInvalid)
	}
	if !r.Origin.IsZero() && r.Origin.Platform == "" {
		return fmt.Errorf("open: the origin channel %q needs its platform: %w", r.Origin.Channel, ErrInvalid)
	}
	return checkText("open: the question", r.Question, true)
}

// Open opens a case and uses one of the org's credits, in one transaction
// that also records EventOpened and EventCreditsChanged. With the same
// (Org, Key) as an earlier call it returns that case and created = false,
// and changes nothing. With no credits left it returns a *NoCreditsError.
func (s *Service) Open(ctx context.Context, req OpenRequest) (c *Case, created bool, err error) {
	if err := req.normalize(); err != nil {
		return nil, false, err
	}
	var opened *row
	err = s.inTx(ctx, "open case for "+req.Org, func(tx pgx.Tx) error {
		now := s.cfg.now()
		// The credit row lock serialises opens per org, so the key lookup
		// below cannot race with another open of the same key.
		bal, err := s.lockCredits(ctx, tx, req.Org, now)
		if err != nil {
			return err
		}
		var existing int64
		err = tx.QueryRow(ctx, `SELECT number FROM cases WHERE org = $1 AND open_key = $2`, req.Org, req.Key).Scan(&existing)
		switch {
		case err == nil:
			x, err := s.load(ctx, tx, OrgViewer(req.Org), existing, false)
			if err != nil {
				return err
			}
			c = s.publicCase(x)
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("look up open key: %w", err)
		}
		useCredit := true
		if bal <= 0 {
			if req.ApprovedBy == nil {
				next := nextQuarter(s.quarterStart(now))
				return &NoCreditsError{Org: req.Org, Balance: bal, ResetsAt: next,
					NextBalance: min(bal+s.liveConfig().perQuarter(req.Org), s.cfg.CreditsCap)}
			}
			useCredit = false // approved by a manager beyond the credits
		}
		if useCredit {
			bal--
			if err := s.storeCredits(ctx, tx, req.Org, bal, now); err != nil {
				return err
			}
		}
		t := s.liveConfig().SLA.Target(req.Priority)
		var number int64
		err = tx.QueryRow(ctx, `INSERT INTO cases (org, open_key, subject_kind, subject_id, subject_name, subject_link,
 subject_severity, category, question, priority, requester_platform, requester_workspace, requester_user, requester_name,
 contact, status, credit_used, created_at, updated_at, status_at, response_target_us, conclusion_target_us,
 origin_platform, origin_workspace, origin_channel,
 priority_by_platform, priority_by_workspace, priority_by_user, priority_by_name)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'new', $26, $16, $16, $16, $17, $18, $19, $20, $21,
 $22, $23, $24, $25)
 RETURNING number`,
			req.Org, req.Key, req.Subject.Kind, req.Subject.ID, req.Subject.Name, req.Subject.Link, req.Subject.Severity,
			req.Category, req.Question, req.Priority, req.Requester.Platform, req.Requester.Workspace, req.Requester.UserID,
			req.Requester.DisplayName, req.Contact, now, t.FirstResponse.Microseconds(), t.Conclusion.Microseconds(),
			req.Origin.Platform, req.Origin.Workspace, req.Origin.Channel,
			req.PriorityBy.Platform, req.PriorityBy.Workspace, req.PriorityBy.UserID, req.PriorityBy.DisplayName, useCredit).Scan(&number)
		if err != nil {
			return fmt.Errorf("insert case: %w", err)
		}
		x, err := s.load(ctx, tx, OrgViewer(req.Org), number, true)
		if err != nil {
			return err
		}
		if err := s.setStatus(ctx, tx, x, StatusNew, now); err != nil {
			return err
		}
		actor := Actor{Role: RoleRequester, Org: req.Org, Person: req.Requester}
		ev := OpenedEvent{
			Ref: x.Ref, Org: x.Org, Priority: x.Priority, Category: x.Category, Subject: x.Subject,
			Requester: x.Requester, Question: x.Question,
		}
		if !x.Origin.IsZero() {
			o := x.Origin
			ev.Origin = &o
		}
		if !x.PriorityBy.IsZero() {
			p := x.PriorityBy
			ev.PriorityBy = &p
		}
		if !useCredit {
			ev.ApprovedBy = req.ApprovedBy
		}
		if err := s.record(ctx, tx, x, now, actor, EventOpened, ev, true); err != nil {
			return err
		}
		if useCredit {
			if err := s.record(ctx, tx, x, now, actor, EventCreditsChanged, CreditsChangedEvent{
				Ref: x.Ref, Org: x.Org, Delta: -1, Balance: bal, Reason: "opened",
				ResetsAt: nextQuarter(s.quarterStart(now)),
			}, true); err != nil {
				return err
			}
		}
		if err := s.save(ctx, tx, x, now); err != nil {
			return err
		}
		s.flags(x, now)
		c, created, opened = s.publicCase(x), true, x
		return nil
	})
	if err != nil {
		s.countRefusal(err)
		return nil, false, err
	}
	if created {
		opened.runCommitted()
		s.m.opened.WithLabelValues(s.orgLabel(c.Org), string(c.Priority)).Inc()
		if c.CreditUsed {
			s.m.credits.WithLabelValues(s.orgLabel(c.Org), "used").Inc()
		}
		s.log.InfoContext(ctx, "case opened", "ref", c.Ref, "org", c.Org, "priority", c.Priority)
	}
	return c, created, nil
}

// OpenedBy returns the ref of org's case opened with key (Open's
// OpenRequest.Key), and whether there is one: a request worked again finds
// the case it opened.
func (s *Service) OpenedBy(ctx context.Context, org, key string) (string, bool, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT number FROM cases WHERE org = $1 AND open_key = $2`, org, key).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("look up the case opened with a key: %w", err)
	}
	return FormatRef(n), true, nil
}

// Get returns the case named by ref ("EOD-12", "eod-12", "12") as v sees it.
func (s *Service) Get(ctx context.Context, v Viewer, ref string) (*Case, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	x, err := s.load(ctx, s.pool, v, number, false)
	if err != nil {
		return nil, err
	}
	return s.publicCase(x), nil
}

// Take gives the case to the acting expert (or manager) and moves it to
// in_progress, recording EventAssigned and EventStatusChanged. When two take
// at once exactly one wins; the other gets an *AlreadyTakenError naming the
// holder. Taking a case one already holds returns it unchanged.
func (s *Service) Take(ctx context.Context, ref string, actor Actor) (*Case, error) {
	return s.TakeKeyed(ctx, ref, actor, "")
}

// TakeKeyed is Take with the request's key (an inbound event's) kept on
// the assignment, for TakenWith.
func (s *Service) TakeKeyed(ctx context.Context, ref string, actor Actor, key string) (*Case, error) {
	return s.change(ctx, "take", ref, actor, func(tx pgx.Tx, x *row, now time.Time) error {
		switch {
		case !x.Status.Open():
			return stopped(x, StatusInProgress, actor.Role)
		case x.Status == StatusNew:
			return s.assign(ctx, tx, x, actor, actor.Person, true, now, key)
		case x.Assignee.Same(actor.Person):
			return nil
		}
		return &AlreadyTakenError{Ref: x.Ref, Holder: x.Assignee}
	})
}

// TakenWith returns the open case expert took with key (TakeKeyed), if
// any: a take of "the most urgent new case" worked again after a crash
// finds the case it took the first time instead of taking another.
func (s *Service) TakenWith(ctx context.Context, expert Person, key string) (string, bool, error) {
	if key == "" {
		return "", false, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, `
SELECT c.number FROM cases c JOIN case_timeline t ON t.case_number = c.number
WHERE c.assignee_platform = $1 AND c.assignee_workspace = $2 AND c.assignee_user = $3
  AND t.kind = $4 AND t.detail::jsonb->>'key' = $5
LIMIT 1`, expert.Platform, expert.Workspace, expert.UserID, EventAssigned, key).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("look up the case taken with %s: %w", key, err)
	}
	return FormatRef(n), true, nil
}

// stopped refuses an action on a concluded, closed or withdrawn case.
func stopped(x *row, to Status, role Role) error {
	e := &TransitionError{Ref: x.Ref, From: x.Status, To: to, Role: role}
	switch x.Status {
	case StatusConcluded:
		e.Reason = x.Ref + " is already concluded; use Reopen"
	case StatusClosed:
		e.Reason = x.Ref + " is closed; use Reopen"
	default:
		e.Reason = x.Ref + " was withdrawn and cannot change any more"
	}
	return e
}

// Assign gives the case to assignee (an expert), taking it out of new or
// handing it over while it is worked. Only experts and managers may assign.
func (s *Service) Assign(ctx context.Context, ref string, actor Actor, assignee Person) (*Case, error) {
	if assignee.IsZero() || assignee.Platform == "" {
		return nil, fmt.Errorf("assign %s: the assignee's platform and user id are required: %w", ref, ErrInvalid)
	}
	return s.change(ctx, "assign", ref, actor, func(tx pgx.Tx, x *row, now time.Time) error {
		if actor.Role != RoleExpert && actor.Role != RoleManager {
			return &TransitionError{Ref: x.Ref, From: x.Status, To: x.Status, Role: actor.Role,
				Reason: fmt.Sprintf("%s cannot assign %s; only an expert or a manager can", article(string(actor.Role)), x.Ref)}
		}
		if !x.Status.Open() {
			return stopped(x, x.Status, actor.Role)
		}
		if x.Assignee.Same(assignee) {
			return nil
		}
		return s.assign(ctx, tx, x, actor, assignee, actor.Person.Same(assignee), now, "")
	})
}

func (s *Service) assign(ctx context.Context, tx pgx.Tx, x *row, actor Actor, to Person, taken bool, now time.Time, key string) error {
	ev := AssignedEvent{Ref: x.Ref, Assignee: to, By: actor, Taken: taken, Key: key}
	if !x.Assignee.IsZero() {
		prev := x.Assignee
		ev.Previous = &prev
	}
	from := x.Status
	if from == StatusNew {
		if err := s.checkTransition(&x.Case, StatusInProgress, actor, now); err != nil {
			return err
		}
	}
	x.Assignee = to
	if err := s.record(ctx, tx, x, now, actor, EventAssigned, ev, true); err != nil {
		return err
	}
	if from == StatusNew {
		if err := s.setStatus(ctx, tx, x, StatusInProgress, now); err != nil {
			return err
		}
		return s.record(ctx, tx, x, now, actor, EventStatusChanged, StatusChangedEvent{
			Ref: x.Ref, From: from, To: StatusInProgress, By: actor,
		}, true)
	}
	return nil
}

// TransitionRequest asks for a status change.
type TransitionRequest struct {
	// Ref names the case; To is the status asked for; Actor who asks.
	Ref   string
	To    Status
	Actor Actor
	// Summary is the expert's conclusion; required when To is concluded.
	Summary string
	// Note is an optional reason shown with the change ("need the process tree").
	Note string
	// Key, when set, is the request's own (an inbound event's): a change
	// recorded with it already is not made again, so a request worked
	// again after a crash between its commit and its settling changes
	// nothing (the case is returned as it is).
	Key string
}

// Transition changes a case's status if the table of allowed transitions
// lets the actor's role do it; otherwise it returns a *TransitionError whose
// message is one sentence. Concluding needs a summary; reopening
// (concluded/closed -> in_progress) must happen within the reopen window;
// withdrawing a case nobody has taken gives its credit back.
func (s *Service) Transition(ctx context.Context, req TransitionRequest) (*Case, error) {
	if !req.To.Valid() {
		return nil, fmt.Errorf("transition %s: status %q is unknown: %w", req.Ref, req.To, ErrInvalid)
	}
	if err := checkText("transition: the summary", req.Summary, req.To == StatusConcluded); err != nil {
		return nil, fmt.Errorf("%w (a conclusion needs the expert's summary)", err)
	}
	if err := checkText("transition: the note", req.Note, false); err != nil {
		return nil, err
	}
	return s.change(ctx, "transition", req.Ref, req.Actor, func(tx pgx.Tx, x *row, now time.Time) error {
		if req.Key != "" {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM case_timeline WHERE case_number = $1 AND kind = $2 AND detail::jsonb->>'key' = $3)`,
				x.Number, EventStatusChanged, req.Key).Scan(&done); err != nil {
				return fmt.Errorf("look up transition %s: %w", req.Key, err)
			}
			if done {
				return nil // made already: nothing happens
			}
		}
		from := x.Status
		if from == StatusNew && req.To == StatusInProgress && Allowed(from, req.To, req.Actor.Role) {
			return s.assign(ctx, tx, x, req.Actor, req.Actor.Person, true, now, req.Key)
		}
		if err := s.checkTransition(&x.Case, req.To, req.Actor, now); err != nil {
			return err
		}
		return s.transition(ctx, tx, x, req, now, false)
	})
}

func (s *Service) transition(ctx context.Context, tx pgx.Tx, x *row, req TransitionRequest, now time.Time, resumed bool) error {
	from := x.Status
	if err := s.setStatus(ctx, tx, x, req.To, now); err != nil {
		return err
	}
	if req.To == StatusConcluded {
		x.Summary = req.Summary
	}
	if isExpertSide(req.Actor.Role) && x.FirstResponseAt == nil && answers(req.To) {
		// Asking for information, asking for time or concluding answers the requester.
		t := now
		x.FirstResponseAt = &t
	}
	if err := s.record(ctx, tx, x, now, req.Actor, EventStatusChanged, StatusChangedEvent{
		Ref: x.Ref, From: from, To: req.To, By: req.Actor, Summary: x.summaryIf(req.To), Note: req.Note,
		Reopened: isReopen(from, req.To), Resumed: resumed, Key: req.Key,
	}, true); err != nil {
		return err
	}
	if req.To == StatusWithdrawn && from == StatusNew && x.CreditUsed {
		return s.refund(ctx, tx, x, req.Actor, now)
	}
	return nil
}

func (x *row) summaryIf(to Status) string {
	if to == StatusConcluded {
		return x.Summary
	}
	return ""
}

func isExpertSide(r Role) bool { return r == RoleExpert || r == RoleManager }

// answers reports whether an expert moving a case to `to` answers the
// requester (and so counts as the first response).
func answers(to Status) bool {
	switch to {
	case StatusMoreInfoNeeded, StatusFileSampleNeeded, StatusNeedsMoreTime, StatusConcluded:
		return true
	}
	return false
}

// MessageRequest adds a message to a case's conversation.
type MessageRequest struct {
	// Ref names the case; Actor is the author.
	Ref   string
	Actor Actor
	// Side defaults to the actor's: requester for requesters, expert for
	// experts and managers. A requester can only write on the requester side.
	Side Side
	// Text is the message (required).
	Text string
	// Internal marks an expert-only note: stored, on the timeline, never relayed.
	Internal bool
	// Chat is the chat message this came from; a second call with the same
	// Chat stores nothing and returns the first message (redelivery).
	Chat ChatRef
}

// AddMessage stores a message and records EventMessageAdded for the bot to
// relay to the other side (not for internal notes). A requester's message
// while the case waits on the requester resumes it (back to in_progress,
// clock running). The first expert-side message that is not internal is
// the case's first response. Messages on closed or withdrawn cases are refused.
func (s *Service) AddMessage(ctx context.Context, req MessageRequest) (*Message, error) {
	if err := checkText("message", req.Text, true); err != nil {
		return nil, err
	}
	if req.Side == "" {
		req.Side = SideExpert
		if req.Actor.Role == RoleRequester {
			req.Side = SideRequester
		}
	}
	if req.Side != SideRequester && req.Side != SideExpert {
		return nil, fmt.Errorf("message: side %q is not requester or expert: %w", req.Side, ErrInvalid)
	}
	if req.Actor.Role == RoleRequester && req.Side != SideRequester {
		return nil, fmt.Errorf("message: a requester writes on the requester side: %w", ErrInvalid)
	}
	if req.Internal && req.Side != SideExpert {
		return nil, fmt.Errorf("message: only experts write internal notes: %w", ErrInvalid)
	}
	var msg *Message
	_, err := s.change(ctx, "add message to", req.Ref, req.Actor, func(tx pgx.Tx, x *row, now time.Time) error {
		if x.Status == StatusClosed || x.Status == StatusWithdrawn {
			if m, err := s.messageByChat(ctx, tx, x, req.Chat); err != nil || m != nil {
				msg = m // a redelivery of a message stored before the case closed
				return err
			}
			reason := fmt.Sprintf("%s was withdrawn and takes no more messages", x.Ref)
			if x.Status == StatusClosed {
				reason = fmt.Sprintf("%s is closed; its requester or a manager can reopen it to continue the conversation", x.Ref)
			}
			return &TransitionError{Ref: x.Ref, From: x.Status, Role: req.Actor.Role, Reason: reason}
		}
		m := &Message{Ref: x.Ref, Side: req.Side, Author: req.Actor.Person, Text: req.Text, Internal: req.Internal,
			Chat: req.Chat, CreatedAt: now}
		err := tx.QueryRow(ctx, `INSERT INTO case_messages (case_number, side, internal, author_platform, author_workspace,
 author_user, author_name, body, chat_platform, chat_workspace, chat_channel, chat_message, created_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
 ON CONFLICT (case_number, chat_platform, chat_channel, chat_message) WHERE chat_message <> '' DO NOTHING
 RETURNING id`,
			x.Number, m.Side, m.Internal, m.Author.Platform, m.Author.Workspace, m.Author.UserID, m.Author.DisplayName,
			m.Text, m.Chat.Platform, m.Chat.Workspace, m.Chat.Channel, m.Chat.Message, now).Scan(&m.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			// Redelivered: the chat message is stored already.
			msg, err = s.messageByChat(ctx, tx, x, req.Chat)
			return err
		}
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		ev := MessageAddedEvent{Ref: x.Ref, MessageID: m.ID, Side: m.Side, Author: m.Author, Text: m.Text, Internal: m.Internal}
		if !m.Chat.IsZero() {
			src := m.Chat
			ev.Source = &src
		}
		if err := s.record(ctx, tx, x, now, req.Actor, EventMessageAdded, ev, !m.Internal); err != nil {
			return err
		}
		label := string(m.Side)
		if m.Internal {
			label = "internal"
		}
		x.onCommit(func() { s.m.messages.WithLabelValues(label).Inc() })
		if m.Side == SideExpert && !m.Internal && x.FirstResponseAt == nil {
			t := now
			x.FirstResponseAt = &t
		}
		if m.Side == SideRequester && x.Status.WaitingOnRequester() {
			by := req.Actor
			if !Allowed(x.Status, StatusInProgress, by.Role) {
				by = System()
			}
			if err := s.transition(ctx, tx, x, TransitionRequest{Ref: x.Ref, To: StatusInProgress, Actor: by}, now, true); err != nil {
				return err
			}
		}
		msg = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msg, nil
}

func (s *Service) messageByChat(ctx context.Context, q pgxQuerier, x *row, ref ChatRef) (*Message, error) {
	if ref.IsZero() {
		return nil, nil
	}
	rows, err := q.Query(ctx, messageSelect+` WHERE case_number = $1 AND chat_platform = $2 AND chat_channel = $3 AND chat_message = $4`,
		x.Number, ref.Platform, ref.Channel, ref.Message)
	if err != nil {
		return nil, fmt.Errorf("look up message by chat reference: %w", err)
	}
	ms, err := collectMessages(rows, x.Ref)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return &ms[0], nil
}

const messageSelect = `SELECT id, side, internal, author_platform, author_workspace, author_user, author_name, body,
 chat_platform, chat_workspace, chat_channel, chat_message, created_at FROM case_messages`

func collectMessages(rows pgx.Rows, ref string) ([]Message, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		m := Message{Ref: ref}
		err := r.Scan(&m.ID, &m.Side, &m.Internal, &m.Author.Platform, &m.Author.Workspace, &m.Author.UserID,
			&m.Author.DisplayName, &m.Text, &m.Chat.Platform, &m.Chat.Workspace, &m.Chat.Channel, &m.Chat.Message, &m.CreatedAt)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read messages of %s: %w", ref, err)
	}
	return out, nil
}

// Messages returns a case's conversation in order, internal notes included
// only when the viewer sees all orgs (experts and managers).
func (s *Service) Messages(ctx context.Context, v Viewer, ref string) ([]Message, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	x, err := s.load(ctx, s.pool, v, number, false)
	if err != nil {
		return nil, err
	}
	sql := messageSelect + ` WHERE case_number = $1`
	if !v.all {
		sql += ` AND NOT internal`
	}
	rows, err := s.pool.Query(ctx, sql+` ORDER BY id`, x.Number)
	if err != nil {
		return nil, fmt.Errorf("read messages of %s: %w", x.Ref, err)
	}
	return collectMessages(rows, x.Ref)
}
