package casework

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/cronlock"
)

// The SLA model. Both clocks count the time a case spends in a running
// status (new, in_progress, needs_more_time). They pause while the case waits
// on the requester (more_info_needed, file_sample_needed) and stop when it is
// concluded, closed or withdrawn; a reopened case resumes with the time
// already counted. The first-response clock is met by the first expert-side
// answer (a relayed message or a status change by an expert); the conclusion
// clock by concluding. Each clock warns at WarnAt of its target and breaches
// at the target, each notice at most once per case.

// clock is one pending SLA clock of a row.
type clock struct {
	name     Clock
	target   time.Duration
	warned   **time.Time
	breached **time.Time
	col      string // column prefix: response_ or conclusion_
}

// pendingClocks are the clocks not yet met on an open case.
func (x *row) pendingClocks() []clock {
	if !x.Status.Open() {
		return nil
	}
	var out []clock
	if x.FirstResponseAt == nil {
		out = append(out, clock{ClockFirstResponse, x.responseTarget, &x.respWarned, &x.respBreached, "response_"})
	}
	return append(out, clock{ClockConclusion, x.conclusionTarget, &x.conclWarned, &x.conclBreached, "conclusion_"})
}

// elapsedAt is the running time counted at now.
func (x *row) elapsedAt(now time.Time) time.Duration {
	e := x.elapsed
	if x.runningSince != nil && now.After(*x.runningSince) {
		e += now.Sub(*x.runningSince)
	}
	return e
}

func (s *Service) warnAfter(target time.Duration) time.Duration {
	return time.Duration(float64(target) * s.liveConfig().SLA.WarnAt)
}

func earliest(cur *time.Time, t time.Time) *time.Time {
	if cur == nil || t.Before(*cur) {
		return &t
	}
	return cur
}

// derive recomputes due_at, at_risk_at and next_sla_at from the clock state.
func (s *Service) derive(x *row) {
	x.DueAt, x.atRiskAt, x.nextSLAAt = nil, nil, nil
	for _, k := range x.pendingClocks() {
		warn := s.warnAfter(k.target)
		if x.runningSince != nil {
			start := x.runningSince.Add(-x.elapsed) // when the clock would have started, had it never paused
			due, warnAt := start.Add(k.target), start.Add(warn)
			x.DueAt = earliest(x.DueAt, due)
			x.atRiskAt = earliest(x.atRiskAt, warnAt)
			if *k.warned == nil && *k.breached == nil {
				x.nextSLAAt = earliest(x.nextSLAAt, warnAt)
			}
			if *k.breached == nil {
				x.nextSLAAt = earliest(x.nextSLAAt, due)
			}
			continue
		}
		// Paused: the case stays at risk if it already was, and a notice
		// that fell due just before the pause is still owed.
		if x.elapsed >= warn {
			x.atRiskAt = earliest(x.atRiskAt, x.StatusAt)
			if *k.warned == nil || (x.elapsed >= k.target && *k.breached == nil) {
				x.nextSLAAt = earliest(x.nextSLAAt, x.StatusAt)
			}
		}
	}
}

// ClockState is one SLA clock of a case.
type ClockState struct {
	// Clock names it; Target is its allowance (copied from the config when
	// the case was opened).
	Clock  Clock
	Target time.Duration
	// Elapsed is the running time counted against the target (pauses excluded).
	Elapsed time.Duration
	// Left is Target - Elapsed; negative when overdue.
	Left time.Duration
	// Running is true while the clock counts; Paused while the case waits on
	// the requester.
	Running bool
	Paused  bool
	// Met is true once the clock's goal was reached (at MetAt).
	Met   bool
	MetAt *time.Time
	// Due is when the target is reached if the clock keeps running; nil when
	// met, paused or stopped.
	Due *time.Time
	// Warned and Breached say whether the warning point and the target were
	// passed; WarnedAt and BreachedAt are when the sweep emitted the notices.
	Warned     bool
	Breached   bool
	WarnedAt   *time.Time
	BreachedAt *time.Time
}

// SLAState is the SLA picture of a case, derived from its stored status
// history (case_status_periods).
type SLAState struct {
	// Ref, Priority and Status are the case's.
	Ref      string
	Priority Priority
	Status   Status
	// At is the moment the state was computed.
	At time.Time
	// Paused is true while the case waits on the requester.
	Paused bool
	// FirstResponse and Conclusion are the two clocks.
	FirstResponse ClockState
	Conclusion    ClockState
	// Breached is true when either clock missed its target.
	Breached bool
	// TimeInStatus is the total time spent in each status so far.
	TimeInStatus map[Status]time.Duration
}

type period struct {
	status     Status
	start, end time.Time
}

// runningUntil is the running time counted in periods up to cutoff.
func runningUntil(ps []period, cutoff time.Time) time.Duration {
	var d time.Duration
	for _, p := range ps {
		if !p.status.clockRuns() {
			continue
		}
		end := p.end
		if end.After(cutoff) {
			end = cutoff
		}
		if end.After(p.start) {
			d += end.Sub(p.start)
		}
	}
	return d
}

// SLA returns the SLA state of a case as v sees it.
func (s *Service) SLA(ctx context.Context, v Viewer, ref string) (*SLAState, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	x, err := s.load(ctx, s.pool, v, number, false)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT status, started_at, ended_at FROM case_status_periods WHERE case_number = $1 ORDER BY seq`, number)
	if err != nil {
		return nil, fmt.Errorf("read status history of %s: %w", x.Ref, err)
	}
	now := s.cfg.now()
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (period, error) {
		var p period
		var end *time.Time
		err := r.Scan(&p.status, &p.start, &end)
		p.start = p.start.UTC()
		p.end = now
		if end != nil {
			p.end = end.UTC()
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read status history of %s: %w", x.Ref, err)
	}
	return s.slaFrom(x, ps, now), nil
}

func (s *Service) slaFrom(x *row, ps []period, now time.Time) *SLAState {
	st := &SLAState{Ref: x.Ref, Priority: x.Priority, Status: x.Status, At: now,
		Paused: x.Status.WaitingOnRequester(), TimeInStatus: map[Status]time.Duration{}}
	for _, p := range ps {
		if p.end.After(p.start) {
			st.TimeInStatus[p.status] += p.end.Sub(p.start)
		}
	}
	running := x.Status.clockRuns()
	mk := func(name Clock, target time.Duration, metAt *time.Time, warnedAt, breachedAt *time.Time) ClockState {
		cutoff := now
		if metAt != nil {
			cutoff = *metAt
		}
		c := ClockState{Clock: name, Target: target, Elapsed: runningUntil(ps, cutoff), Met: metAt != nil, MetAt: metAt,
			WarnedAt: warnedAt, BreachedAt: breachedAt}
		c.Left = target - c.Elapsed
		open := x.Status.Open() && !c.Met
		c.Running = open && running
		c.Paused = open && st.Paused
		if c.Running {
			due := now.Add(c.Left)
			c.Due = &due
		}
		c.Breached = breachedAt != nil || c.Elapsed >= target
		c.Warned = warnedAt != nil || c.Elapsed >= s.warnAfter(target)
		return c
	}
	concludedAt := x.ConcludedAt
	if x.Status.Open() || x.Status == StatusWithdrawn {
		concludedAt = nil
	}
	st.FirstResponse = mk(ClockFirstResponse, x.responseTarget, x.FirstResponseAt, x.respWarned, x.respBreached)
	st.Conclusion = mk(ClockConclusion, x.conclusionTarget, concludedAt, x.conclWarned, x.conclBreached)
	st.Breached = st.FirstResponse.Breached || st.Conclusion.Breached
	return st
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	// Warnings and Breaches count the SLA notices emitted.
	Warnings int
	Breaches int
	// Closed counts concluded cases closed after AutoCloseAfter.
	Closed int
	// Paged counts high-priority cases paged because nobody took them
	// (EventPaged); Reminded the requesters reminded (EventReminded).
	Paged    int
	Reminded int
}

const sweepBatch = 200

// SweepSLA emits the SLA warnings and breaches that are due, pages and
// reminds what is due (escalate.go), and closes concluded cases left alone
// for AutoCloseAfter. Each notice is written
// exactly once: its flag is set by a conditional UPDATE in the same
// transaction as its outbox event, and each case is handled under a row lock
// (skipped if another sweeper holds it). Safe to run on several replicas at
// once, and again after a crash. When a sweep finds a clock already past its
// target with no warning sent (the sweep was down), it sends the breach only.
func (s *Service) SweepSLA(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	start := time.Now()
	defer func() { s.m.sweep.Observe(time.Since(start).Seconds()) }()
	now := s.cfg.now()
	seen := map[int64]bool{}
	// A case whose notice cannot be written is skipped, not the sweep: it
	// stays due (first in line each time), and every other case, the
	// pages and the auto-close go on.
	var failed []error
	for {
		rows, err := s.pool.Query(ctx, `SELECT number FROM cases WHERE next_sla_at <= $1 ORDER BY next_sla_at LIMIT $2`, now, sweepBatch)
		if err != nil {
			return res, fmt.Errorf("sla sweep: find due cases: %w", err)
		}
		numbers, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return res, fmt.Errorf("sla sweep: find due cases: %w", err)
		}
		fresh := 0
		for _, n := range numbers {
			if seen[n] {
				continue // held by another sweeper, or nothing left to emit
			}
			seen[n] = true
			fresh++
			w, b, err := s.sweepOne(ctx, n, now)
			if err != nil {
				if ctx.Err() != nil {
					return res, err
				}
				s.log.ErrorContext(ctx, "sla sweep: a case skipped; the others go on", "ref", FormatRef(n), "err", err)
				failed = append(failed, err)
				continue
			}
			res.Warnings += w
			res.Breaches += b
		}
		if len(numbers) < sweepBatch || fresh == 0 {
			break
		}
	}
	paged, reminded, err := s.sweepEscalations(ctx, now)
	res.Paged, res.Reminded = paged, reminded
	if err != nil {
		return res, errors.Join(append(failed, err)...)
	}
	if s.cfg.AutoCloseAfter > 0 {
		n, err := s.autoClose(ctx, now)
		res.Closed = n
		if err != nil {
			return res, errors.Join(append(failed, err)...)
		}
	}
	return res, errors.Join(failed...)
}

func (s *Service) sweepOne(ctx context.Context, number int64, now time.Time) (warnings, breaches int, err error) {
	var swept *row
	err = s.inTx(ctx, "sla sweep of "+FormatRef(number), func(tx pgx.Tx) error {
		x, err := s.scanRow(tx.QueryRow(ctx, "SELECT "+caseCols+caseFrom+
			" WHERE c.number = $1 AND c.next_sla_at <= $2 FOR NO KEY UPDATE OF c SKIP LOCKED", number, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // another replica has it, or it changed meanwhile
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", FormatRef(number), err)
		}
		swept = x
		elapsed := x.elapsedAt(now)
		for _, k := range x.pendingClocks() {
			var kind string
			switch {
			case elapsed >= k.target && *k.breached == nil:
				kind = EventSLABreach
			case elapsed >= s.warnAfter(k.target) && *k.warned == nil && *k.breached == nil:
				kind = EventSLAWarning
			default:
				continue
			}
			sent, err := s.slaNotice(ctx, tx, x, k, kind, elapsed, now)
			if err != nil {
				return err
			}
			switch {
			case !sent:
			case kind == EventSLABreach:
				breaches++
			default:
				warnings++
			}
		}
		keep := x.UpdatedAt
		if err := s.save(ctx, tx, x, now); err != nil {
			return err
		}
		// The sweep is not a change by anyone: keep updated_at as it was.
		if _, err := tx.Exec(ctx, `UPDATE cases SET updated_at = $2 WHERE number = $1`, x.Number, keep); err != nil {
			return fmt.Errorf("restore updated_at of %s: %w", x.Ref, err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if swept != nil {
		swept.runCommitted()
	}
	return warnings, breaches, nil
}

// slaNotice flags clock k of x as warned or breached (kind) and records
// the notice's event, in tx; false when it was already flagged.
func (s *Service) slaNotice(ctx context.Context, tx pgx.Tx, x *row, k clock, kind string, elapsed time.Duration, now time.Time) (bool, error) {
	sql := `UPDATE cases SET ` + k.col + `warned_at = $2 WHERE number = $1 AND ` + k.col + `warned_at IS NULL`
	if kind == EventSLABreach {
		sql = `UPDATE cases SET ` + k.col + `breached_at = $2, ` + k.col + `warned_at = coalesce(` + k.col + `warned_at, $2)
 WHERE number = $1 AND ` + k.col + `breached_at IS NULL`
	}
	tag, err := tx.Exec(ctx, sql, x.Number, now)
	if err != nil {
		return false, fmt.Errorf("flag %s %s of %s: %w", k.name, kind, x.Ref, err)
	}
	if tag.RowsAffected() != 1 {
		return false, nil // already emitted
	}
	t := now
	label := "warning"
	if kind == EventSLABreach {
		label = "breach"
		*k.breached = &t
		if *k.warned == nil {
			*k.warned = &t
		}
	} else {
		*k.warned = &t
	}
	ev := SLAEvent{Ref: x.Ref, Clock: k.name, Priority: x.Priority, TargetSeconds: int64(k.target / time.Second),
		ElapsedSeconds: int64(elapsed / time.Second), DueAt: now.Add(k.target - elapsed), Assignee: x.Assignee}
	if x.runningSince == nil {
		// Paused: the clock last ran until the pause began (StatusAt).
		ev.Paused, ev.DueAt = true, x.StatusAt.Add(k.target-elapsed)
	}
	if err := s.record(ctx, tx, x, now, System(), kind, ev, true); err != nil {
		return false, err
	}
	x.onCommit(func() {
		s.m.sla.WithLabelValues(s.orgLabel(x.Org), string(k.name), label).Inc()
		s.log.InfoContext(ctx, "sla "+label, "ref", x.Ref, "clock", k.name)
	})
	return true, nil
}

// owedBreaches records the breaches of x's clocks that passed their
// target since the last sweep, before a change meets or stops them: an
// answer or a conclusion a minute after the target, before the sweep came
// by, left the breach unsaid and the case shown as within its targets. It
// returns how many it recorded.
func (s *Service) owedBreaches(ctx context.Context, tx pgx.Tx, x *row, now time.Time) (int, error) {
	elapsed, n := x.elapsedAt(now), 0
	for _, k := range x.pendingClocks() {
		if elapsed < k.target || *k.breached != nil {
			continue
		}
		sent, err := s.slaNotice(ctx, tx, x, k, EventSLABreach, elapsed, now)
		if err != nil {
			return n, err
		}
		if sent {
			n++
		}
	}
	return n, nil
}

func (s *Service) autoClose(ctx context.Context, now time.Time) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT number FROM cases WHERE status = 'concluded' AND concluded_at <= $1 ORDER BY concluded_at LIMIT $2`,
		now.Add(-s.cfg.AutoCloseAfter), sweepBatch)
	if err != nil {
		return 0, fmt.Errorf("auto-close: find concluded cases: %w", err)
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("auto-close: find concluded cases: %w", err)
	}
	closed := 0
	var failed []error
	for _, n := range numbers {
		_, err := s.Transition(ctx, TransitionRequest{Ref: FormatRef(n), To: StatusClosed, Actor: System(),
			Note: "closed automatically " + humanDuration(s.cfg.AutoCloseAfter) + " after the conclusion"})
		var te *TransitionError
		switch {
		case errors.As(err, &te):
			continue // closed or reopened meanwhile
		case err != nil && ctx.Err() != nil:
			return closed, fmt.Errorf("auto-close %s: %w", FormatRef(n), err)
		case err != nil:
			// Skipped; the others are closed all the same.
			failed = append(failed, fmt.Errorf("auto-close %s: %w", FormatRef(n), err))
			continue
		}
		closed++
	}
	return closed, errors.Join(failed...)
}

// SweepJobName names the SLA sweep's gocron job and its advisory lock.
const SweepJobName = "casework-sla-sweep"

// Start keys the timelines (the first start with the key seals the legacy
// ones; later starts check that the key is the one they were keyed with, and
// refuse to start with a *KeyingError otherwise), then runs SweepSLA every
// Config.SweepEvery and the timeline check (VerifyAll) every
// Config.TimelineCheckEvery on a gocron scheduler whose distributed locker
// is a PostgreSQL advisory lock, so one replica runs each job at a time
// (correctness does not rest on it: see SweepSLA). They run until Stop or
// until ctx ends. A second Start is an error (lifecycle.ErrStarted).
func (s *Service) Start(ctx context.Context) error {
	return s.life.Start(ctx, func(ctx context.Context) error {
		if _, err := s.sealLegacy(ctx); err != nil {
			return fmt.Errorf("casework: %w", err)
		}
		sched, err := gocron.NewScheduler(gocron.WithDistributedLocker(cronlock.New(s.pool, s.cfg.LockNamespace)))
		if err != nil {
			return fmt.Errorf("casework: create scheduler: %w", err)
		}
		jobs := []struct {
			name  string
			every time.Duration
			run   func(ctx context.Context)
		}{
			{SweepJobName, s.cfg.SweepEvery, s.sweepJob},
			{TimelineCheckJobName, s.cfg.TimelineCheckEvery, s.checkTimelines},
			{SampleSweepJobName, sampleSweepEvery, s.sampleSweepJob},
		}
		for _, j := range jobs {
			_, err = sched.NewJob(gocron.DurationJob(j.every),
				gocron.NewTask(func(ctx context.Context) {
					_ = s.life.Guard(j.name, func() error { j.run(ctx); return nil }) // a panic is logged and counted
				}),
				gocron.WithName(j.name),
				gocron.WithContext(ctx),
				gocron.WithSingletonMode(gocron.LimitModeReschedule),
				gocron.WithStartAt(gocron.WithStartImmediately()))
			if err != nil {
				_ = sched.Shutdown()
				return fmt.Errorf("casework: schedule %s: %w", j.name, err)
			}
		}
		sched.Start()
		s.life.Go("scheduler", func(ctx context.Context) error {
			<-ctx.Done()
			if err := sched.Shutdown(); err != nil { // waits for a job in progress
				return fmt.Errorf("casework: stop the scheduler: %w", err)
			}
			return nil
		})
		return nil
	})
}

// sweepJob is the scheduled SLA sweep.
func (s *Service) sweepJob(ctx context.Context) {
	res, err := s.SweepSLA(ctx)
	if err != nil {
		if ctx.Err() == nil { // not merely stopped
			s.log.ErrorContext(ctx, "sla sweep failed", "err", err)
		}
		return
	}
	if res != (SweepResult{}) {
		s.log.InfoContext(ctx, "sla sweep", "warnings", res.Warnings, "breaches", res.Breaches, "closed", res.Closed,
			"paged", res.Paged, "reminded", res.Reminded)
	}
}

// Stop cancels the jobs, waits for one in progress and stops the
// scheduler. It is safe before Start and more than once.
func (s *Service) Stop() error { return s.life.Stop() }
