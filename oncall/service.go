package oncall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// ErrNoRotation is returned by Current, Take and PageTargets when no
// rotation is configured.
var ErrNoRotation = errors.New("no on-call rotation is configured: an admin sets oncall.handover and oncall.rotation in the config file")

// NotInRotationError refuses a take by someone who is not on the rotation.
type NotInRotationError struct {
	Member Member
}

// Error returns the sentence to show.
func (e *NotInRotationError) Error() string {
	return fmt.Sprintf("%s is not on the on-call rotation, so cannot take the pager: an admin adds experts to oncall.rotation in the config file", e.Member)
}

// AlreadyOnCallError refuses a take by the expert who already holds the
// pager (a repeated command writes nothing and announces nothing).
type AlreadyOnCallError struct {
	Member Member
	// Until is when their shift (or take) ends.
	Until time.Time
}

// Error returns the sentence to show.
func (e *AlreadyOnCallError) Error() string {
	return fmt.Sprintf("%s already holds the pager until %s", e.Member, e.Until.Format("Mon 2 Jan 15:04 MST"))
}

// Service answers who is on call and records takes.
type Service struct {
	pool  *pgxpool.Pool
	cfg   Config
	sched Schedule
	log   *slog.Logger
}

// New returns a Service for cfg, whose hand-overs happen in loc (the config
// file's top-level timezone; nil means UTC). cfg gets its defaults and is
// validated here. The schedule's epoch is Reference(loc).
func New(pool *pgxpool.Pool, cfg Config, loc *time.Location, log *slog.Logger) (*Service, error) {
	if pool == nil {
		return nil, errors.New("oncall: New needs a database pool")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("oncall config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	loc = orUTC(loc)
	return &Service{
		pool:  pool,
		cfg:   cfg,
		sched: Schedule{Rotation: append([]Member(nil), cfg.Rotation...), Handover: cfg.Handover, Location: loc},
		log:   log.With("component", "oncall"),
	}, nil
}

// Schedule returns the rotation laid out in time (no takes).
func (s *Service) Schedule() Schedule { return s.sched }

// PageAfter is how long a high-priority case may stay new before PageTargets
// are paged.
func (s *Service) PageAfter() time.Duration { return s.cfg.PageAfter }

// InRotation reports whether m is on the current rotation: only they can
// take the pager, and only they are ever paged or mentioned.
func (s *Service) InRotation(m Member) bool { return s.sched.Has(m) }

// Take is one recorded take of the pager.
type Take struct {
	// ID is the oncall_take row.
	ID int64
	// Member holds the pager from TakenAt until Until (the hand-over after
	// TakenAt, or an earlier one if the hand-over setting has changed since).
	Member         Member
	TakenAt, Until time.Time
	// Displaced held the pager when Member took it: the scheduled expert, or
	// (DisplacedTake) whoever had taken it before.
	Displaced     Member
	DisplacedTake bool
}

// OnCall is who holds the pager at a time, with takes applied.
type OnCall struct {
	// Member holds the pager from Since until Until.
	Member       Member
	Since, Until time.Time
	// Next holds the pager from Until.
	Next Member
	// Scheduled is who the schedule puts on call now; Member too unless
	// someone took the pager.
	Scheduled Member
	// Take is the take in force, nil when the schedule applies.
	Take *Take
}

// Current returns who is on call at now: the latest take in force whose
// member is still on the rotation (an earlier take stands when a later
// one's member has left), else the schedule. A take is in force
// from its time until its Until or the schedule's first hand-over after it,
// whichever comes first (they differ only when the hand-over setting has
// changed since); a take by someone who has left the rotation is ignored (the
// schedule applies), so they are never mentioned or paged again.
func (s *Service) Current(ctx context.Context, now time.Time) (OnCall, error) {
	return s.current(ctx, s.pool, now)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// maxTakesInForce bounds the takes read back at once: the takes of one
// shift, newest first (a take displaces the one before it, and each is
// refused to whoever already holds the pager, so a shift has few).
const maxTakesInForce = 100

func (s *Service) current(ctx context.Context, q querier, now time.Time) (OnCall, error) {
	if !s.cfg.Enabled() {
		return OnCall{}, ErrNoRotation
	}
	now = dbTime(now)
	sh := s.sched.At(now)
	cur := OnCall{Member: sh.OnCall, Since: sh.Since, Until: sh.Until, Next: sh.Next, Scheduled: sh.OnCall}
	rows, err := q.Query(ctx, `
SELECT id, platform, user_id, taken_at, until_at, displaced_platform, displaced_user_id, displaced_take
FROM oncall_take
WHERE taken_at <= $1 AND until_at > $1
ORDER BY id DESC LIMIT $2`, now, maxTakesInForce)
	if err != nil {
		return OnCall{}, fmt.Errorf("oncall: read the takes in force: %w", err)
	}
	takes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Take, error) {
		var t Take
		err := row.Scan(&t.ID, &t.Member.Platform, &t.Member.UserID, &t.TakenAt, &t.Until,
			&t.Displaced.Platform, &t.Displaced.UserID, &t.DisplacedTake)
		return t, err
	})
	if err != nil {
		return OnCall{}, fmt.Errorf("oncall: read the takes in force: %w", err)
	}
	loc := s.sched.loc()
	for _, t := range takes {
		t.TakenAt, t.Until = t.TakenAt.In(loc), t.Until.In(loc)
		// A take lasts until the hand-over after it. That is the stored
		// Until, unless the hand-over setting has changed since to an
		// earlier one.
		until := t.Until
		if h := s.sched.At(t.TakenAt).Until; h.Before(until) {
			until = h
		}
		if !s.sched.Has(t.Member) || !now.Before(until) {
			// Left the rotation, or the take ended at a changed
			// hand-over: the take before it stands, if any, else the
			// schedule.
			continue
		}
		return OnCall{
			Member: t.Member, Since: t.TakenAt, Until: until,
			Next:      s.sched.At(until).OnCall,
			Scheduled: sh.OnCall,
			Take:      &t,
		}, nil
	}
	return cur, nil
}

// Take records that m holds the pager from now until the next hand-over,
// and writes EventTaken to the outbox in the same transaction (so it is
// announced once, whichever replica delivers it). It returns the new on-call
// state. A member not on the rotation gets *NotInRotationError; the expert
// who already holds the pager gets *AlreadyOnCallError; neither writes
// anything. Concurrent takes are serialised: each displaces the one before.
func (s *Service) Take(ctx context.Context, m Member, now time.Time) (OnCall, error) {
	if !s.cfg.Enabled() {
		return OnCall{}, ErrNoRotation
	}
	if !s.sched.Has(m) {
		return OnCall{}, &NotInRotationError{Member: m}
	}
	now = dbTime(now)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return OnCall{}, fmt.Errorf("oncall: take: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	// Takes are rare; locking the table (reads still go on) makes "who is
	// displaced" exact when two experts take at once on two replicas.
	if _, err := tx.Exec(ctx, `LOCK TABLE oncall_take IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return OnCall{}, fmt.Errorf("oncall: take: lock: %w", err)
	}
	before, err := s.current(ctx, tx, now)
	if err != nil {
		return OnCall{}, err
	}
	if before.Member == m {
		return OnCall{}, &AlreadyOnCallError{Member: m, Until: before.Until}
	}
	sh := s.sched.At(now)
	t := Take{Member: m, TakenAt: now.In(s.sched.loc()), Until: sh.Until, Displaced: before.Member, DisplacedTake: before.Take != nil}
	err = tx.QueryRow(ctx, `
INSERT INTO oncall_take (platform, user_id, taken_at, until_at, displaced_platform, displaced_user_id, displaced_take)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		m.Platform, m.UserID, now, sh.Until, t.Displaced.Platform, t.Displaced.UserID, t.DisplacedTake).Scan(&t.ID)
	if err != nil {
		return OnCall{}, fmt.Errorf("oncall: record the take by %s: %w", m, err)
	}
	_, err = outbox.Append(ctx, tx, outbox.Event{Kind: EventTaken, Stream: Stream, Payload: TakenEvent{
		TakeID: t.ID, Member: m, TakenAt: now.UTC(), Until: sh.Until.UTC(),
		Displaced: t.Displaced, DisplacedTake: t.DisplacedTake,
		Next: sh.Next, Timezone: s.sched.loc().String(),
	}})
	if err != nil {
		return OnCall{}, fmt.Errorf("oncall: take: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return OnCall{}, fmt.Errorf("oncall: take: commit: %w", err)
	}
	s.log.Info("pager taken", "member", m.String(), "until", sh.Until, "displaced", t.Displaced.String())
	return OnCall{Member: m, Since: t.TakenAt, Until: sh.Until, Next: sh.Next, Scheduled: sh.OnCall, Take: &t}, nil
}

// PageTargets is who to page about a high-priority case nobody took (the
// managers come from the config, not from here).
type PageTargets struct {
	// OnCall holds the pager (they were told when the case opened).
	OnCall Member
	// Next is the next expert on the rotation after OnCall (NextAfter);
	// zero when the rotation has nobody else.
	Next Member
}

// PageTargets returns the effective on-call at now (Current) and the next
// expert on the rotation after them (Schedule.NextAfter). Both are on the
// current rotation.
func (s *Service) PageTargets(ctx context.Context, now time.Time) (PageTargets, error) {
	cur, err := s.Current(ctx, now)
	if err != nil {
		return PageTargets{}, err
	}
	next, _ := s.sched.NextAfter(now, cur.Member)
	return PageTargets{OnCall: cur.Member, Next: next}, nil
}

// Page is whom to page about a high-priority case nobody took.
type Page struct {
	// Member is who is paged; zero when there is nobody.
	Member Member
	// Holder: Member holds the pager now, and someone else held it when
	// the case opened (they were never told of it). Otherwise Member is
	// the next expert after the holder, who was told.
	Holder bool
}

// PageFor returns whom to page at now about a case opened at opened that
// nobody took. The case's card and direct message went to whoever held
// the pager when it opened; when the pager has changed hands since, its
// holder now is paged (the next expert after them would skip them, and
// could be the one who was told); otherwise the next expert after the
// holder (PageTargets.Next).
func (s *Service) PageFor(ctx context.Context, opened, now time.Time) (Page, error) {
	t, err := s.PageTargets(ctx, now)
	if err != nil {
		return Page{}, err
	}
	told, err := s.Current(ctx, opened)
	if err != nil {
		return Page{}, err
	}
	if !t.OnCall.IsZero() && told.Member != t.OnCall {
		return Page{Member: t.OnCall, Holder: true}, nil
	}
	return Page{Member: t.Next}, nil
}

// dbTime is t as PostgreSQL stores it (microseconds).
func dbTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }
