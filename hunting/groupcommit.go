package hunting

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/walflush"
)

// Group commit. An org's ingest takes the org's advisory lock (correlation
// reads, then writes, the org's incidents), so concurrent requests for one
// org used to queue on it, each waiting for the others' transactions and
// fsyncs. Instead, the requests of one org in flight on this replica are
// coalesced: the first becomes the leader and runs one transaction for
// every request queued meanwhile (up to groupMaxItems alerts); the others
// wait, decoded and ready, and each is answered with its own per-item
// results. When the group is done the next queued request leads the next
// group. Correlation is exactly as for one big request; across replicas
// the advisory lock still orders the groups.

// groupMaxItems caps the alerts of one group transaction.
const groupMaxItems = 4000

// groupTimeout bounds one group's transaction. It runs for several
// requests, so it does not end when the leader's client goes away; it ends
// at the earliest deadline of its requests (the intake's 40 s each), so that
// a database that does not answer still gets every sender its 503 in time.
const groupTimeout = 2 * time.Minute

// groupMinTime is the least time left that a request brings into a group
// with others: less would end the group, and the others' work, early.
const groupMinTime = time.Second

// groupCommits holds one queue per org.
type groupCommits struct {
	mu   sync.Mutex
	orgs map[string]*orgQueue
}

func newGroupCommits() *groupCommits { return &groupCommits{orgs: map[string]*orgQueue{}} }

// orgQueue is an org's requests waiting for a group, and whether a leader
// is running one.
type orgQueue struct {
	mu      sync.Mutex
	pending []*groupReq
	busy    bool
}

// groupReq is one request's part of a group.
type groupReq struct {
	alerts []*Alert
	idx    []int
	out    []ItemResult
	done   chan error    // its result, once
	lead   chan struct{} // it is to lead the next group
	// deadline is the request's own (its context's, else groupTimeout
	// from its arrival).
	deadline time.Time
}

// submit stores the request's alerts of org (alerts[idx], results in out)
// in a group transaction, and returns when they are committed (or failed).
func (g *groupCommits) submit(ctx context.Context, s *Service, org string, alerts []*Alert, idx []int, out []ItemResult) error {
	g.mu.Lock()
	q := g.orgs[org]
	if q == nil {
		q = &orgQueue{}
		g.orgs[org] = q
	}
	g.mu.Unlock()
	r := &groupReq{alerts: alerts, idx: idx, out: out, done: make(chan error, 1), lead: make(chan struct{}, 1),
		deadline: time.Now().Add(groupTimeout)}
	if dl, ok := ctx.Deadline(); ok && dl.Before(r.deadline) {
		r.deadline = dl
	}
	q.mu.Lock()
	q.pending = append(q.pending, r)
	lead := !q.busy
	q.busy = true
	q.mu.Unlock()
	if lead {
		s.leadGroup(ctx, org, q)
	}
	for {
		select {
		case err := <-r.done:
			return err
		case <-r.lead:
			if ctx.Err() != nil {
				// Out of time as the lead came: hand it on rather than run
				// a group past this sender's deadline.
				r.lead <- struct{}{}
				if q.leave(r) {
					return waitedOut(org, ctx.Err())
				}
				return <-r.done
			}
			s.leadGroup(ctx, org, q)
		case <-ctx.Done():
			if q.leave(r) {
				return waitedOut(org, ctx.Err())
			}
			// Already in a group: its answer comes.
			return <-r.done
		}
	}
}

// waitedOut is the error of a request whose time ran out (err) while it
// waited for its org's transactions before it.
func waitedOut(org string, err error) error {
	return fmt.Errorf("hunting: ingest of org %s: waited for the transactions before it: %w", org, err)
}

// leave takes r, not yet in a group, out of the queue, handing on the lead
// if it had just been given it, and reports whether it did; false means r
// is in a group, which answers it.
func (q *orgQueue) leave(r *groupReq) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.pending, r)
	if i < 0 {
		return false
	}
	q.pending = slices.Delete(q.pending, i, i+1)
	select {
	case <-r.lead:
		if len(q.pending) == 0 {
			q.busy = false
		} else {
			q.pending[0].lead <- struct{}{}
		}
	default:
	}
	return true
}

// leadGroup takes the queued requests (the leader's first), stores them
// in one transaction, answers each, and hands the lead to the next queued
// request, if any.
func (s *Service) leadGroup(ctx context.Context, org string, q *orgQueue) {
	q.mu.Lock()
	n, items := 0, 0
	for n < len(q.pending) && (n == 0 || items+len(q.pending[n].idx) <= groupMaxItems) {
		items += len(q.pending[n].idx)
		n++
	}
	taken := q.pending[:n:n]
	q.pending = q.pending[n:]
	q.mu.Unlock()

	// A request whose time ran out while it waited, or all but ran out, is
	// answered so, and does not cut the group's time short (unless every
	// request is that short of time: then they are tried as they are).
	now := time.Now()
	short := func(r *groupReq) bool { return r.deadline.Sub(now) < groupMinTime }
	allShort := !slices.ContainsFunc(taken, func(r *groupReq) bool { return !short(r) })
	var grp []*groupReq
	var deadline time.Time
	for _, r := range taken {
		if !now.Before(r.deadline) || short(r) && !allShort {
			r.done <- waitedOut(org, context.DeadlineExceeded)
			continue
		}
		if len(grp) == 0 || r.deadline.Before(deadline) {
			deadline = r.deadline
		}
		grp = append(grp, r)
	}
	if len(grp) == 0 {
		s.handOn(q)
		return
	}
	// The group runs for all its requests, not the leader's alone.
	commit := func(dl time.Time, g []*groupReq) ([]error, bool) {
		gctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl)
		defer cancel()
		errs := s.commitGroupOf(gctx, org, g)
		return errs, gctx.Err() != nil
	}
	errs, cut := commit(deadline, grp)
	// Cut short by its earliest deadline (the intake backed up): nothing
	// was stored, and the requests with time left are tried again without
	// the ones whose time is up, or one sender short of time would fail
	// every other sender of its group.
	for cut {
		now := time.Now()
		var rest []int
		var next time.Time
		for i, r := range grp {
			if errs[i] != nil && r.deadline.Sub(now) >= groupMinTime {
				rest = append(rest, i)
				if next.IsZero() || r.deadline.Before(next) {
					next = r.deadline
				}
			}
		}
		if len(rest) == 0 || !next.After(deadline) {
			break
		}
		deadline = next
		again := make([]*groupReq, len(rest))
		for j, i := range rest {
			again[j] = grp[i]
		}
		var errsAgain []error
		errsAgain, cut = commit(deadline, again)
		for j, err := range errsAgain {
			errs[rest[j]] = err
		}
	}

	// The next group goes on while this one's commit reaches the disk.
	s.handOn(q)
	if slices.Contains(errs, nil) {
		dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		if err := s.durable(dctx); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			// What the caches learned from these commits may have been
			// lost with the database: they start again from nothing (they
			// only spare writes).
			s.cache.forget()
		}
	}
	for i, r := range grp {
		r.done <- errs[i]
	}
}

// handOn gives the lead to the next queued request, if any.
func (s *Service) handOn(q *orgQueue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.busy = false
	} else {
		q.pending[0].lead <- struct{}{}
	}
}

// commitGroupOf stores grp, and returns each request's result.
func (s *Service) commitGroupOf(ctx context.Context, org string, grp []*groupReq) []error {
	s.m.groups.Inc()
	s.m.groupRequests.Add(float64(len(grp)))
	errs := make([]error, len(grp))
	err := s.safeCommitGroup(ctx, org, grp)
	if err != nil && len(grp) > 1 && ctx.Err() == nil && !storeUnavailable(err) {
		// One request must not fail the others: each alone, then. (Not
		// when the database is out of reach or time is up: then it fails
		// them all alike, and each sender is told to retry.)
		for i, r := range grp {
			errs[i] = s.safeCommitGroup(ctx, org, []*groupReq{r})
		}
		return errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// durable returns once every transaction committed before it was called
// is on disk (walflush.Flush). An ingest transaction commits without
// waiting for its WAL to be flushed (synchronous_commit off, for itself
// only): the org's next transaction need not wait for this one's fsync to
// start. No request is answered before durable returns, and concurrent
// groups share one fsync. A delivery never acts on data not yet durable
// either: it records its attempt, a synchronous write, before it posts.
func (s *Service) durable(ctx context.Context) error {
	if err := walflush.Flush(ctx, s.pool); err != nil {
		return &notConfirmedError{err: fmt.Errorf("hunting: wait for the ingest to reach the disk: %w", err)}
	}
	return nil
}

// notConfirmedError is an ingest that committed but whose flush to disk
// was not confirmed: it may be stored, or lost with a crash of the
// database; the sender is told to send it again (stored items then come
// back unchanged).
type notConfirmedError struct{ err error }

func (e *notConfirmedError) Error() string { return e.err.Error() }
func (e *notConfirmedError) Unwrap() error { return e.err }

// asyncBeginSQL begins an ingest transaction whose commit does not wait
// for its WAL to be flushed (one round trip).
const asyncBeginSQL = `BEGIN; SET LOCAL synchronous_commit TO off`

// safeCommitGroup is commitGroup with a panic turned into an error, so
// that the org's queue always moves on.
func (s *Service) safeCommitGroup(ctx context.Context, org string, grp []*groupReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("hunting: ingest of org %s panicked: %v", org, p)
			s.log.Error("ingest panicked", "org", org, "panic", p)
		}
	}()
	return s.commitGroup(ctx, org, grp)
}

// commitGroup runs one transaction for the group's requests and copies
// each item's result back to its request; on error nothing was stored and
// the requests' results are left as they were.
func (s *Service) commitGroup(ctx context.Context, org string, grp []*groupReq) error {
	start := time.Now()
	var alerts []*Alert
	var idx, req []int
	var out []ItemResult
	for ri, r := range grp {
		for _, i := range r.idx {
			idx = append(idx, len(alerts))
			req = append(req, ri)
			alerts = append(alerts, r.alerts[i])
			out = append(out, r.out[i])
		}
	}
	if len(grp) == 1 {
		req = nil
	}
	var events int
	var after *cacheUpdate
	clock := s.stageClock()
	// The commit does not wait for the disk (durable does, before anyone
	// is answered).
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: asyncBeginSQL}, func(tx pgx.Tx) error {
		clock.lap(stageBegin)
		after = newCacheUpdate()
		n, err := s.ingestOrg(ctx, tx, org, alerts, idx, req, out, after, clock)
		if err != nil {
			return fmt.Errorf("hunting: ingest %d alerts of org %s (%d requests): %w", len(alerts), org, len(grp), err)
		}
		events = n
		return nil
	})
	if err != nil {
		return err
	}
	clock.lap(stageCommit)
	s.cache.apply(after)
	k := 0
	for _, r := range grp {
		for _, i := range r.idx {
			r.out[i] = out[k]
			k++
		}
	}
	clock.lap(stageApply)
	took := time.Since(start)
	s.m.batchDur.Observe(took.Seconds())
	s.log.Debug("ingested batch", "alerts", len(alerts), "requests", len(grp), "org", org, "events", events, "took", took)
	return nil
}
