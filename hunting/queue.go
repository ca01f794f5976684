package hunting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Queued intake. A sender that asks for it with "Prefer: respond-async"
// (RFC 7240) is answered 202 as soon as its alerts are checked and stored
// in hunting_intake_queue, on disk: each admitted item's result is
// "queued". Rejections are decided then, as for any request, as of the time
// the alert was received (the drain admits it again as of that time).
//
// Correlation follows: drain goes round the orgs with queued rows, and for
// each takes the org's lock for a step (a session lock on one connection,
// the key of the ingest transactions' own lock, so the org's synchronous
// requests, its sweep and every other replica's drain wait meanwhile, and
// a drain that cannot have it within queueLockWait goes on to the next
// org). A step reads the org's oldest rows (up to queueChunk alerts and
// queueChunkBytes), sets aside at once those that can never be correlated
// (they no longer decode or pass admission, or their tenant left the org
// long enough ago), and in one transaction deletes the others and stores,
// correlates and scores their alerts exactly as a synchronous request
// would. So a crash leaves every row either still queued or correlated,
// never both and never neither, and an org's queued alerts are correlated
// in the order they were queued, whichever replica drains them.
//
// A chunk is recorded (hunting_intake_chunks) before its transaction and
// the record deleted by it. A record left over (a crash), or a chunk that
// failed, has its rows tried one at a time, each try counted before it
// starts and tried again at once, so that a row the service cannot
// correlate, even one that brings the process down, is set aside
// (hunting_intake_set_aside) after queueMaxAttempts tries rather than
// holding its org's queue for ever.
//
// A synchronous request stays serialised behind its org's transactions
// (group commit, groupcommit.go); a queued one costs the decoding and one
// COPY, so a burst is taken in at the speed the database stores rows and
// correlated at the speed correlation runs.

const (
	// queueChunk and queueChunkBytes cap one drain transaction (it always
	// takes one row, whatever its size).
	queueChunk      = groupMaxItems
	queueChunkBytes = 32 << 20
	// queueItemMax caps one queued item: a larger one is rejected (sent
	// without respond-async it is taken in as ever).
	queueItemMax = 1 << 20
	// queuePoll is how often a replica looks for rows others queued.
	queuePoll = time.Second
	// queueLockWait is how long a drain waits for an org's lock before it
	// goes on to the next org.
	queueLockWait = 2 * time.Second
	// queueConfigGrace is how long a row whose tenant is not the org's in
	// this replica's config waits (another replica may have reloaded the
	// config first) before it is set aside.
	queueConfigGrace = 10 * time.Minute
	// queueMaxAttempts: a row tried alone this often without success is
	// set aside for an operator.
	queueMaxAttempts = 3
	// QueueMax caps the alerts of one org waiting in the queue: beyond it a
	// queued request is answered 503, and the sender retries later.
	QueueMax = 1_000_000
)

// RetryAfterQueueFull is the Retry-After (seconds) of a 503 answered while
// the queue is full.
const RetryAfterQueueFull = 30

// StatusQueued: stored in the intake queue, to be correlated shortly.
const StatusQueued ItemStatus = "queued"

// QueueFullError is a queued request refused because its org's queue
// holds QueueMax alerts or more.
type QueueFullError struct {
	Org   string
	Depth int64
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("the intake queue holds about %d alerts of org %s not yet correlated (the limit is %d): nothing was stored; retry after %d seconds",
		e.Depth, e.Org, QueueMax, RetryAfterQueueFull)
}

// wantsQueue reports whether r asks to be answered before correlation
// (Prefer: respond-async).
func wantsQueue(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(p, ";")
			name, _, _ = strings.Cut(name, "=")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// queueAdmitted admits alerts (decoded from items[idx[j]] for alerts[j])
// and queues those admitted, setting each item's result in res.
func (s *Service) queueAdmitted(ctx context.Context, items []RawAlert, alerts []*Alert, idx []int, res *IngestResult) error {
	now := s.cfg.Now()
	raws := make([]RawAlert, 0, len(alerts))
	keep := make([]*Alert, 0, len(alerts))
	kept := make([]int, 0, len(alerts))
	for j, a := range alerts {
		it := &res.Items[idx[j]]
		reason := s.admit(a, now)
		if reason == "" && len(items[idx[j]]) > queueItemMax {
			reason = fmt.Sprintf("an item over %d bytes is not queued: send it without Prefer: respond-async", queueItemMax)
		}
		if reason != "" {
			it.Status, it.Reason = StatusRejected, reason
			continue
		}
		raws, keep, kept = append(raws, items[idx[j]]), append(keep, a), append(kept, idx[j])
	}
	if len(keep) == 0 {
		return nil
	}
	if err := s.enqueue(ctx, raws, keep); err != nil {
		return err
	}
	for _, i := range kept {
		res.Items[i].Status = StatusQueued
	}
	return nil
}

// queueDepthSQL is about how many rows of org $1 wait: the span of their
// sequence numbers (two index probes, never a count), which also counts
// other orgs' rows queued between them, so never less than there are.
const queueDepthSQL = `SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM hunting_intake_queue WHERE org = $1`

// syncBeginSQL begins a transaction whose commit waits for the disk,
// whatever the server's default.
const syncBeginSQL = `BEGIN; SET LOCAL synchronous_commit TO on`

// enqueue stores admitted alerts, each with the item it was decoded from
// (raws[i] for alerts[i]), in the queue, and returns once they are on disk.
func (s *Service) enqueue(ctx context.Context, raws []RawAlert, alerts []*Alert) error {
	perOrg := map[string]int64{}
	for _, a := range alerts {
		perOrg[a.Org]++
	}
	for org, n := range perOrg {
		var depth int64
		if err := s.pool.QueryRow(ctx, queueDepthSQL, org).Scan(&depth); err != nil {
			return fmt.Errorf("hunting: read the intake queue's depth for org %s: %w", org, err)
		}
		if depth+n > QueueMax {
			return &QueueFullError{Org: org, Depth: depth}
		}
	}
	now := s.cfg.Now().UTC()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: syncBeginSQL}, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"hunting_intake_queue"}, []string{"org", "tenant", "received_at", "alert"},
			pgx.CopyFromSlice(len(alerts), func(i int) ([]any, error) {
				return []any{alerts[i].Org, alerts[i].Tenant, now, []byte(raws[i])}, nil
			}))
		return err
	})
	if err != nil {
		return fmt.Errorf("hunting: queue %d alerts: %w", len(alerts), err)
	}
	for org, n := range perOrg {
		s.m.queue.WithLabelValues(s.liveConfig().orgLabel(org), "queued").Add(float64(n))
	}
	select {
	case s.queueWake <- struct{}{}:
	default:
	}
	return nil
}

// runQueue drains the queue whenever this replica queued alerts, and every
// queuePoll, until ctx ends. A failed drain (the database away) is tried
// again after a growing pause.
func (s *Service) runQueue(ctx context.Context) error {
	tick := time.NewTicker(queuePoll)
	defer tick.Stop()
	pause := queuePoll
	for {
		if _, err := s.drain(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("intake queue: correlating queued alerts failed; trying again", "in", pause, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, 30*time.Second)
			continue
		}
		pause = queuePoll
		select {
		case <-ctx.Done():
			return nil
		case <-s.queueWake:
		case <-tick.C:
		}
	}
}

// drain correlates queued alerts until a round over the orgs with queued
// rows correlates none, or the database fails, and returns how many it
// correlated. Each round takes one step per org, so one org's flood
// delays another's alerts by about one chunk a round. An org whose step
// fails otherwise is logged and the others go on.
func (s *Service) drain(ctx context.Context) (int, error) {
	total := 0
	for {
		heads, err := s.queuedOrgs(ctx)
		if err != nil {
			return total, err
		}
		var waited time.Duration
		for _, h := range heads {
			waited = max(waited, s.cfg.Now().Sub(h.received))
		}
		s.m.queueWait.Set(waited.Seconds())
		// Each round starts at another org, so that replicas spread over
		// the orgs and no org always comes last.
		start := 0
		if len(heads) > 1 {
			start = rand.IntN(len(heads))
		}
		round := 0
		var failed error
		for k := range heads {
			org := heads[(start+k)%len(heads)].org
			n, err := s.drainOrg(ctx, org)
			round += n
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return total + round, err
			default:
				// One org's failure is not the others': they go on.
				failed = cmp.Or(failed, err)
				s.log.Warn("intake queue: a step of an org's queue failed; the other orgs go on", "org", org, "err", err)
			}
		}
		total += round
		if round == 0 {
			return total, failed
		}
	}
}

// queueHead is an org with queued rows, and when its oldest was received.
type queueHead struct {
	org      string
	received time.Time
}

// queuedOrgsSQL lists the orgs with queued rows and the time their oldest
// was received, a few index probes each.
const queuedOrgsSQL = `
WITH RECURSIVE o(org) AS (
    (SELECT org FROM hunting_intake_queue ORDER BY org LIMIT 1)
    UNION ALL
    SELECT (SELECT q.org FROM hunting_intake_queue q WHERE q.org > o.org ORDER BY q.org LIMIT 1) FROM o WHERE o.org IS NOT NULL)
SELECT o.org, (SELECT q.received_at FROM hunting_intake_queue q WHERE q.org = o.org ORDER BY q.seq LIMIT 1)
FROM o WHERE o.org IS NOT NULL`

func (s *Service) queuedOrgs(ctx context.Context) ([]queueHead, error) {
	rows, err := s.pool.Query(ctx, queuedOrgsSQL)
	if err != nil {
		return nil, fmt.Errorf("hunting: list the orgs with queued alerts: %w", err)
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (queueHead, error) {
		var h queueHead
		var at *time.Time // the row may be gone since
		err := r.Scan(&h.org, &at)
		if at != nil {
			h.received = *at
		} else {
			h.received = s.cfg.Now()
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hunting: list the orgs with queued alerts: %w", err)
	}
	return heads, nil
}

// lockOrgSessionSQL and unlockOrgSessionSQL take and give back the org's
// lock for a connection's session: the key of lockOrgSQL, which the
// ingest transactions on that connection then hold as well.
const (
	lockOrgSessionSQL   = `SELECT pg_advisory_lock(hashtextextended('threatdesk/hunting/' || $1, 0))`
	unlockOrgSessionSQL = `SELECT pg_advisory_unlock(hashtextextended('threatdesk/hunting/' || $1, 0))`
)

// lockOrg takes a connection holding org's lock, waiting queueLockWait at
// most (then busy, and no connection). unlock gives both back; a lock it
// cannot give back ends the connection, and with it the session's lock.
func (s *Service) lockOrg(ctx context.Context, org string) (conn *pgxpool.Conn, unlock func(), busy bool, err error) {
	conn, err = s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("hunting: a connection to drain org %s: %w", org, err)
	}
	// lock_timeout bounds the wait on the server, so the connection stays
	// sound (a wait cut off by a context ends it).
	_, err = conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", s.queueLockWait.Milliseconds()))
	if err == nil {
		_, err = conn.Exec(ctx, lockOrgSessionSQL, org)
		if _, rerr := conn.Exec(ctx, `RESET lock_timeout`); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		var pe *pgconn.PgError
		busy = errors.As(err, &pe) && pe.Code == "55P03" // lock_not_available
		if !busy {
			// Unsure what the session holds: it ends.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			err = fmt.Errorf("hunting: lock org %s to drain it: %w", org, err)
		} else {
			err = nil
		}
		conn.Release()
		return nil, nil, busy, err
	}
	return conn, func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, unlockOrgSessionSQL, org); err != nil {
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, false, nil
}

// drainOrg takes one step of org's queue under the org's lock: a chunk
// left over by a crash row by row, or the oldest rows as a new chunk. It
// returns how many rows it moved on (correlated or set aside).
func (s *Service) drainOrg(ctx context.Context, org string) (int, error) {
	conn, unlock, busy, err := s.lockOrg(ctx, org)
	if busy || err != nil {
		return 0, err
	}
	defer unlock()
	var lo, hi int64
	switch err := conn.QueryRow(ctx, `SELECT first_seq, last_seq FROM hunting_intake_chunks WHERE org = $1`, org).Scan(&lo, &hi); {
	case err == nil:
		// Begun and never finished (a crash), or failed: row by row.
		rows, err := s.readQueued(ctx, conn, `SELECT seq, tenant, received_at, alert FROM hunting_intake_queue
WHERE org = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq`, org, lo, hi)
		if err != nil {
			return 0, err
		}
		return s.oneByOne(ctx, conn, org, rows, lo, hi)
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("hunting: read the unfinished chunk of org %s: %w", org, err)
	}
	rows, err := s.readQueued(ctx, conn, `SELECT seq, tenant, received_at, alert FROM hunting_intake_queue
WHERE org = $1 ORDER BY seq LIMIT $2`, org, queueChunk)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	// The oldest first: while it must wait, so does the rest.
	if s.judge(org, rows[:1]); rows[0].notYet {
		return 0, nil
	}
	s.judge(org, rows[1:])
	// The rows before the first that must wait go on now: those that can
	// never be correlated set aside, the others correlated.
	var bad, good []queuedRow
	for _, r := range rows {
		if r.notYet {
			break
		}
		if r.bad != nil {
			bad = append(bad, r)
		} else {
			good = append(good, r)
		}
	}
	moved, err := s.setAside(ctx, org, bad, 0)
	if err != nil || len(good) == 0 {
		return moved, err
	}
	lo, hi = good[0].seq, good[len(good)-1].seq
	if _, err := s.pool.Exec(ctx, `INSERT INTO hunting_intake_chunks (org, first_seq, last_seq) VALUES ($1, $2, $3)
ON CONFLICT (org) DO UPDATE SET first_seq = EXCLUDED.first_seq, last_seq = EXCLUDED.last_seq`, org, lo, hi); err != nil {
		return moved, fmt.Errorf("hunting: record the chunk of org %s: %w", org, err)
	}
	err = s.correlateRows(ctx, conn, org, good, true)
	switch {
	case err == nil:
		return moved + len(good), nil
	case ctx.Err() != nil:
		// Stopped, not a crash: the chunk is tried whole again.
		s.forgetChunk(ctx, org, lo, hi)
		return moved, err
	case conn.Conn().IsClosed():
		// The lock went with the connection: the chunk goes row by row
		// at the next step.
		return moved, err
	}
	s.log.Warn("intake queue: a chunk of queued alerts could not be correlated; trying each alone", "org", org, "alerts", len(good), "err", err)
	n, err := s.oneByOne(ctx, conn, org, good, lo, hi)
	return moved + n, err
}

// forgetChunk deletes org's chunk record lo..hi, on a connection of its
// own (this one may have ended with the step's context).
func (s *Service) forgetChunk(ctx context.Context, org string, lo, hi int64) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(fctx, `DELETE FROM hunting_intake_chunks WHERE org = $1 AND first_seq = $2 AND last_seq = $3`, org, lo, hi); err != nil {
		s.log.Warn("intake queue: could not forget a stopped chunk; its alerts go one at a time next", "org", org, "err", err)
	}
}

// queuedRow is one row of the queue, and what judge made of it.
type queuedRow struct {
	seq      int64
	tenant   string
	received time.Time
	raw      []byte
	attempts int
	// a is the alert, admitted as of received; bad is why it never can be
	// correlated; notYet, that it cannot be on this replica yet (its
	// tenant is not the org's in this replica's config).
	a      *Alert
	bad    error
	notYet bool
}

// readQueued reads rows with sql (args its arguments), in order, and stops
// once they hold queueChunkBytes (always one row).
func (s *Service) readQueued(ctx context.Context, conn *pgxpool.Conn, sql string, args ...any) ([]queuedRow, error) {
	q, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("hunting: read queued alerts: %w", err)
	}
	defer q.Close()
	var rows []queuedRow
	size := 0
	for q.Next() {
		var r queuedRow
		if err := q.Scan(&r.seq, &r.tenant, &r.received, &r.raw); err != nil {
			return nil, fmt.Errorf("hunting: read a queued alert: %w", err)
		}
		if size += len(r.raw); len(rows) > 0 && size > queueChunkBytes {
			break
		}
		rows = append(rows, r)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("hunting: read queued alerts: %w", err)
	}
	return rows, nil
}

// judge decodes rows into alerts of org, each admitted as of when it was
// received, and marks those that can never be correlated, and those whose
// tenant is not org's in this replica's config (for queueConfigGrace
// after they were received: another replica may have reloaded first;
// after it, they never can be).
func (s *Service) judge(org string, rows []queuedRow) {
	tenants := s.liveConfig().tenants
	now := s.cfg.Now()
	parallel(len(rows), func(i int) {
		r := &rows[i]
		r.a, r.bad, r.notYet = nil, nil, false
		if tenants[r.tenant] != org {
			if now.Sub(r.received) < queueConfigGrace {
				r.notYet = true
				return
			}
			r.bad = fmt.Errorf("tenant %s is not one of org %s's tenants (the config changed since the alert was queued)", r.tenant, org)
			return
		}
		a, _, err := safeNormalize(r.raw, map[string]string{r.tenant: org})
		if err != nil {
			r.bad = err
			return
		}
		a.Org = org
		if reason := s.admit(a, r.received); reason != "" {
			r.bad = errors.New(reason)
			return
		}
		r.a = a
	})
}

// correlateRows deletes rows (judged good) from the queue and, in the same
// transaction on conn (which holds org's lock), stores and correlates
// their alerts, and, when they are a chunk, deletes the org's chunk record
// (a row tried alone leaves it: the rest of its chunk still goes one at a
// time).
func (s *Service) correlateRows(ctx context.Context, conn *pgxpool.Conn, org string, rows []queuedRow, chunk bool) (err error) {
	defer func() {
		// A panic on one hostile or unforeseen row must not end the drain
		// for good: it is this try's failure.
		if p := recover(); p != nil {
			err = fmt.Errorf("hunting: correlating %d queued alerts of org %s panicked: %v", len(rows), org, p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	start := time.Now()
	seqs := make([]int64, len(rows))
	alerts := make([]*Alert, len(rows))
	idx := make([]int, len(rows))
	for i, r := range rows {
		seqs[i], alerts[i], idx[i] = r.seq, r.a, i
	}
	after := newCacheUpdate()
	clock := s.stageClock()
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{BeginQuery: syncBeginSQL}, func(tx pgx.Tx) error {
		clock.lap(stageBegin)
		tag, err := tx.Exec(ctx, `DELETE FROM hunting_intake_queue WHERE org = $1 AND seq = ANY($2)`, org, seqs)
		if err != nil {
			return fmt.Errorf("take queued alerts: %w", err)
		}
		if int(tag.RowsAffected()) != len(rows) {
			// Under the org's lock nobody else takes them: a sign of a
			// second drain without it. Nothing is done twice.
			return fmt.Errorf("took %d of %d queued alerts", tag.RowsAffected(), len(rows))
		}
		if _, err := s.ingestOrgs(ctx, tx, alerts, map[string][]int{org: idx}, make([]ItemResult, len(rows)), after, clock); err != nil {
			return err
		}
		if !chunk {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hunting_intake_chunks WHERE org = $1`, org); err != nil {
			return fmt.Errorf("finish the chunk: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hunting: correlate %d queued alerts of org %s: %w", len(rows), org, err)
	}
	clock.lap(stageCommit)
	s.cache.apply(after)
	clock.lap(stageApply)
	s.m.queue.WithLabelValues(s.liveConfig().orgLabel(org), "correlated").Add(float64(len(rows)))
	s.m.batchDur.Observe(time.Since(start).Seconds())
	return nil
}

// oneByOneFor bounds the work of one row-by-row step: the org's lock is
// held meanwhile.
const oneByOneFor = 2 * time.Second

// oneByOne tries rows of org (of the chunk lo..hi) one at a time, in
// order, each up to queueMaxAttempts times (every try counted before it
// starts), setting aside those that fail every try, and stops at a row
// that must wait, or after oneByOneFor (the next step goes on). Once it
// has been through them all, the chunk's record is done with. It returns
// how many rows it moved on.
func (s *Service) oneByOne(ctx context.Context, conn *pgxpool.Conn, org string, rows []queuedRow, lo, hi int64) (int, error) {
	until := time.Now().Add(oneByOneFor)
	n := 0
	for _, r := range rows {
		if time.Now().After(until) {
			return n, nil
		}
		moved, err := s.alone(ctx, conn, org, r)
		if err != nil {
			return n, err
		}
		if !moved {
			return n, nil // it waits, and the rows after it with it
		}
		n++
	}
	s.forgetChunk(ctx, org, lo, hi)
	return n, nil
}

// alone correlates row r of org by itself, and reports whether it moved on
// (correlated, set aside, or gone); false means it must wait. Each try is
// counted before it starts and taken back only when this replica was
// stopped; a try that fails otherwise (the database failing over
// included) counts, so that no row is tried for ever.
func (s *Service) alone(ctx context.Context, conn *pgxpool.Conn, org string, r queuedRow) (bool, error) {
	for {
		switch err := s.pool.QueryRow(ctx, `UPDATE hunting_intake_queue SET attempts = attempts + 1 WHERE org = $1 AND seq = $2 RETURNING attempts`,
			org, r.seq).Scan(&r.attempts); {
		case errors.Is(err, pgx.ErrNoRows):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("hunting: count a try of queued alert %d of org %s: %w", r.seq, org, err)
		}
		one := []queuedRow{r}
		if r.attempts > queueMaxAttempts {
			// Its last tries never ended, not even in failure: they
			// brought the process down.
			one[0].bad = fmt.Errorf("tried %d times, and no try ended: the process went down during each", r.attempts-1)
			_, err := s.setAside(ctx, org, one, r.attempts-1)
			return err == nil, err
		}
		s.judge(org, one)
		switch {
		case one[0].notYet:
			s.uncount(ctx, org, r.seq)
			return false, nil
		case one[0].bad != nil:
			_, err := s.setAside(ctx, org, one, 0)
			return err == nil, err
		}
		err := s.correlateRows(ctx, conn, org, one, false)
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil {
			s.uncount(ctx, org, r.seq) // stopped: not the row's failure
			return false, err
		}
		if r.attempts >= queueMaxAttempts {
			one[0].bad = err
			_, serr := s.setAside(ctx, org, one, r.attempts)
			return serr == nil, serr
		}
		s.log.Warn("intake queue: a queued alert could not be correlated; trying it again", "org", org, "seq", r.seq, "attempt", r.attempts, "err", err)
		if _, uerr := s.pool.Exec(ctx, `UPDATE hunting_intake_queue SET last_error = $3 WHERE org = $1 AND seq = $2`,
			org, r.seq, clip(err.Error(), 1000)); uerr != nil {
			return false, fmt.Errorf("hunting: record why queued alert %d of org %s failed: %w", r.seq, org, uerr)
		}
		if conn.Conn().IsClosed() {
			// The lock went with the connection: the next step goes on.
			return false, err
		}
	}
}

// uncount takes back a try of org's row seq that did not fail on its own
// account, on a connection of its own (best effort: a try counted too many
// only sets the row aside one try early).
func (s *Service) uncount(ctx context.Context, org string, seq int64) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = s.pool.Exec(uctx, `UPDATE hunting_intake_queue SET attempts = greatest(attempts - 1, 0) WHERE org = $1 AND seq = $2`, org, seq)
}

// setAside moves rows of org (each with why in bad) to
// hunting_intake_set_aside for an operator, in one statement, and returns
// how many it moved (a row another replica took meanwhile is not).
// attempts is what their tries came to (0: none was needed).
func (s *Service) setAside(ctx context.Context, org string, rows []queuedRow, attempts int) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	seqs := make([]int64, len(rows))
	why := make([]string, len(rows))
	for i, r := range rows {
		seqs[i], why[i] = r.seq, clip(r.bad.Error(), 1000)
	}
	tag, err := s.pool.Exec(ctx, `
WITH w AS (SELECT * FROM unnest($2::bigint[], $3::text[]) AS w(seq, why)),
d AS (DELETE FROM hunting_intake_queue q USING w WHERE q.org = $1 AND q.seq = w.seq RETURNING q.*, w.why)
INSERT INTO hunting_intake_set_aside (org, seq, tenant, received_at, set_aside_at, attempts, last_error, alert)
SELECT org, seq, tenant, received_at, $4, greatest(attempts, $5), why, alert FROM d`, org, seqs, why, s.cfg.Now().UTC(), attempts)
	if err != nil {
		return 0, fmt.Errorf("hunting: set aside %d queued alerts of org %s: %w", len(rows), org, err)
	}
	moved := int(tag.RowsAffected())
	s.m.queue.WithLabelValues(s.liveConfig().orgLabel(org), "failed").Add(float64(moved))
	for _, r := range rows {
		s.log.Error("intake queue: a queued alert cannot be correlated; it is set aside in hunting_intake_set_aside for an operator",
			"org", org, "seq", r.seq, "err", r.bad)
	}
	return moved, nil
}
