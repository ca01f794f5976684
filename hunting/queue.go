package hunting

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Queued intake. A sender that asks for it with "Prefer: respond-async"
// (RFC 7240) is answered 202 as soon as its alerts are checked and stored
// in hunting_intake_queue, on disk: each admitted item's result is
// "queued". Rejections are decided then, as for any request, at the time
// the alert was received (the drain admits it again at that time).
// Correlation follows: drain goes round the orgs with queued rows, and for
// each takes the org's advisory lock and, in the same transaction, deletes
// its oldest rows (up to queueChunk alerts and queueChunkBytes) and
// stores, correlates and scores their alerts exactly as a request answered
// synchronously would. So a crash leaves every row either still queued or
// correlated, never both and never neither, and an org's alerts are
// correlated in the order they were queued, whichever replica drains them.
// A replica's own intake wakes its drain at once; rows another replica
// queued are found within queuePoll.
//
// A chunk that fails, or that was begun and never finished (a crash, a
// stop: its oldest row's heads says so), is followed by its rows one at a
// time, each try counted before it starts, so that a row the service
// cannot correlate, even one that brings the process down, is set aside
// after queueMaxAttempts tries rather than holding its org's queue for
// ever.
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
	// queueMaxAttempts: a row tried alone this often without success is
	// left in the queue for an operator (its last_error says why).
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
// Rows set aside for an operator do not count.
const queueDepthSQL = `SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM hunting_intake_queue WHERE org = $1 AND attempts < $2`

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
		if err := s.pool.QueryRow(ctx, queueDepthSQL, org, queueMaxAttempts).Scan(&depth); err != nil {
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
	s.m.queue.WithLabelValues("queued").Add(float64(len(alerts)))
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
// rows correlates none, or an error stops it, and returns how many it
// correlated. Each round takes one step per org (a chunk, or a row alone),
// so one org's flood delays another's alerts by one chunk a round at most.
func (s *Service) drain(ctx context.Context) (int, error) {
	total := 0
	for {
		orgs, err := s.queuedOrgs(ctx)
		if err != nil {
			return total, err
		}
		round := 0
		var waited time.Duration
		for _, org := range orgs {
			n, w, err := s.drainOrg(ctx, org)
			round += n
			waited = max(waited, w)
			if err != nil {
				s.m.queueWait.Set(waited.Seconds())
				return total + round, err
			}
		}
		s.m.queueWait.Set(waited.Seconds())
		total += round
		if round == 0 {
			return total, nil
		}
	}
}

// queuedOrgsSQL lists the orgs with rows in the queue, one index probe
// each.
const queuedOrgsSQL = `
WITH RECURSIVE o(org) AS (
    (SELECT org FROM hunting_intake_queue ORDER BY org LIMIT 1)
    UNION ALL
    SELECT (SELECT q.org FROM hunting_intake_queue q WHERE q.org > o.org ORDER BY q.org LIMIT 1) FROM o WHERE o.org IS NOT NULL)
SELECT org FROM o WHERE org IS NOT NULL`

func (s *Service) queuedOrgs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, queuedOrgsSQL)
	if err != nil {
		return nil, fmt.Errorf("hunting: list the orgs with queued alerts: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("hunting: list the orgs with queued alerts: %w", err)
	}
	return orgs, nil
}

// markHeadSQL counts a drain step begun from org $1's oldest waiting row,
// and returns it.
const markHeadSQL = `
UPDATE hunting_intake_queue SET heads = heads + 1
WHERE org = $1 AND seq = (SELECT seq FROM hunting_intake_queue WHERE org = $1 AND attempts < $2 ORDER BY seq LIMIT 1)
RETURNING seq, heads, received_at`

// drainOrg takes one step of org's queue: its oldest rows as one chunk, or,
// when a chunk begun from the oldest row before did not finish, that row
// alone. It returns how many alerts it correlated and how long the oldest
// had waited. A chunk that fails is followed by its rows one at a time, up
// to the first that fails alone: the org's later rows wait for it (at most
// queueMaxAttempts tries), so that they never overtake it.
func (s *Service) drainOrg(ctx context.Context, org string) (int, time.Duration, error) {
	var head int64
	var heads int
	var received time.Time
	switch err := s.pool.QueryRow(ctx, markHeadSQL, org, queueMaxAttempts).Scan(&head, &heads, &received); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("hunting: mark the oldest queued alert of org %s: %w", org, err)
	}
	waited := max(0, s.cfg.Now().Sub(received))
	if heads > 1 {
		// Begun from this row before and never finished (a failure, a
		// stop, a crash): this row alone first.
		done, err := s.correlateAlone(ctx, org, head)
		return btoi(done), waited, err
	}
	rows, err := s.correlateQueued(ctx, org, takeChunk)
	switch {
	case err == nil:
		return len(rows), waited, nil
	case len(rows) == 0 || ctx.Err() != nil || storeUnavailable(err):
		return 0, waited, err
	}
	s.log.Warn("intake queue: a chunk of queued alerts could not be correlated; trying each alone", "org", org, "alerts", len(rows), "err", err)
	n := 0
	for _, r := range rows {
		done, err := s.correlateAlone(ctx, org, r.seq)
		if err != nil || !done {
			return n, waited, err
		}
		n++
	}
	return n, waited, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queuedRow is one row of the queue.
type queuedRow struct {
	seq      int64
	tenant   string
	received time.Time
	raw      []byte
}

// chunkSizesSQL reads the sizes of org $1's oldest waiting rows ($3 at
// most), in order: one range of its primary key.
const chunkSizesSQL = `SELECT seq, octet_length(alert) FROM hunting_intake_queue WHERE org = $1 AND attempts < $2 ORDER BY seq LIMIT $3`

// takeRangeSQL deletes and returns org $1's waiting rows from $2 to $3.
const takeRangeSQL = `DELETE FROM hunting_intake_queue WHERE org = $1 AND seq BETWEEN $2 AND $3 AND attempts < $4 RETURNING seq, tenant, received_at, alert`

// takeChunk deletes and returns org's oldest waiting rows: at most
// queueChunk, and as many as fit in queueChunkBytes (always the first).
// The org's lock is held, so no other drain takes them meanwhile; a row
// queued meanwhile with a number inside the range comes along.
func takeChunk(ctx context.Context, tx pgx.Tx, org string) (pgx.Rows, error) {
	rows, err := tx.Query(ctx, chunkSizesSQL, org, queueMaxAttempts, queueChunk)
	if err != nil {
		return nil, err
	}
	var first, last, seq, size, bytes int64
	for rows.Next() {
		if err := rows.Scan(&seq, &size); err != nil {
			rows.Close()
			return nil, err
		}
		if first != 0 && bytes+size > queueChunkBytes {
			break
		}
		if first == 0 {
			first = seq
		}
		last, bytes = seq, bytes+size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return tx.Query(ctx, takeRangeSQL, org, first, last, queueMaxAttempts)
}

// takeOne returns a take of org's row seq alone.
func takeOne(seq int64) func(ctx context.Context, tx pgx.Tx, org string) (pgx.Rows, error) {
	return func(ctx context.Context, tx pgx.Tx, org string) (pgx.Rows, error) {
		return tx.Query(ctx, `DELETE FROM hunting_intake_queue WHERE org = $1 AND seq = $2 RETURNING seq, tenant, received_at, alert`, org, seq)
	}
}

// correlateAlone tries org's row seq alone, its try counted first (so a
// row that brings the process down is counted too). It reports whether the
// row is done (correlated, or gone: taken by another replica or set
// aside); a row that failed is not, and the error is only for what stops
// the drain (the database away, ctx ended).
func (s *Service) correlateAlone(ctx context.Context, org string, seq int64) (bool, error) {
	var attempts int
	switch err := s.pool.QueryRow(ctx, `
UPDATE hunting_intake_queue SET attempts = attempts + 1 WHERE org = $1 AND seq = $2 AND attempts < $3 RETURNING attempts`,
		org, seq, queueMaxAttempts).Scan(&attempts); {
	case errors.Is(err, pgx.ErrNoRows):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("hunting: count a try of queued alert %d of org %s: %w", seq, org, err)
	}
	_, err := s.correlateQueued(ctx, org, takeOne(seq))
	if err == nil {
		return true, nil
	}
	if _, uerr := s.pool.Exec(ctx, `UPDATE hunting_intake_queue SET last_error = left($3, 1000) WHERE org = $1 AND seq = $2`,
		org, seq, err.Error()); uerr != nil && ctx.Err() == nil {
		s.log.Warn("intake queue: could not record why a queued alert failed", "org", org, "seq", seq, "err", uerr)
	}
	if attempts >= queueMaxAttempts {
		s.m.queue.WithLabelValues("failed").Inc()
		s.log.Error("intake queue: a queued alert could not be correlated; it is left in hunting_intake_queue for an operator",
			"org", org, "seq", seq, "attempts", attempts, "err", err)
	} else {
		s.log.Warn("intake queue: a queued alert could not be correlated; it will be tried again", "org", org, "seq", seq, "attempts", attempts, "err", err)
	}
	if ctx.Err() != nil || storeUnavailable(err) {
		return false, err
	}
	return false, nil
}

// correlateQueued takes org's lock, then rows with take, and in the same
// transaction stores and correlates their alerts. It returns the rows it took, also when it failed (then nothing
// changed). One transaction has groupTimeout at most.
func (s *Service) correlateQueued(ctx context.Context, org string, take func(context.Context, pgx.Tx, string) (pgx.Rows, error)) (rows []queuedRow, err error) {
	defer func() {
		// A panic on one hostile or unforeseen row must not end the drain
		// for good: it is that chunk's failure (its rows are tried alone).
		if p := recover(); p != nil {
			err = fmt.Errorf("hunting: correlating %d queued alerts of org %s panicked: %v", len(rows), org, p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	start := time.Now()
	var after *cacheUpdate
	clock := s.stageClock()
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: syncBeginSQL}, func(tx pgx.Tx) error {
		clock.lap(stageBegin)
		rows = rows[:0]
		if _, err := tx.Exec(ctx, lockOrgSQL, org); err != nil {
			return fmt.Errorf("lock org %s: %w", org, err)
		}
		q, err := take(ctx, tx, org)
		if err != nil {
			return fmt.Errorf("take queued alerts: %w", err)
		}
		for q.Next() {
			var r queuedRow
			if err := q.Scan(&r.seq, &r.tenant, &r.received, &r.raw); err != nil {
				q.Close()
				return fmt.Errorf("read queued alert: %w", err)
			}
			rows = append(rows, r)
		}
		if err := q.Err(); err != nil {
			return fmt.Errorf("take queued alerts: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].seq < rows[j].seq })
		alerts, err := s.decodeQueued(org, rows)
		if err != nil {
			return err
		}
		after = newCacheUpdate()
		out := make([]ItemResult, len(alerts))
		idx := make([]int, len(alerts))
		for i := range idx {
			idx[i] = i
		}
		_, err = s.ingestOrgs(ctx, tx, alerts, map[string][]int{org: idx}, out, after, clock)
		return err
	})
	if err != nil {
		return rows, fmt.Errorf("hunting: correlate %d queued alerts of org %s: %w", len(rows), org, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	clock.lap(stageCommit)
	s.cache.apply(after)
	clock.lap(stageApply)
	s.m.queue.WithLabelValues("correlated").Add(float64(len(rows)))
	s.m.batchDur.Observe(time.Since(start).Seconds())
	return rows, nil
}

// decodeQueued decodes rows into alerts of org, each admitted as it was
// when it was received.
func (s *Service) decodeQueued(org string, rows []queuedRow) ([]*Alert, error) {
	alerts := make([]*Alert, len(rows))
	errs := make([]error, len(rows))
	parallel(len(rows), func(i int) {
		r := rows[i]
		a, _, err := safeNormalize(r.raw, map[string]string{r.tenant: org})
		if err != nil {
			errs[i] = err
			return
		}
		a.Org = org
		alerts[i] = a
	})
	tenants := s.liveConfig().tenants
	for i, a := range alerts {
		switch r := rows[i]; {
		case errs[i] != nil:
		case tenants[r.tenant] != org:
			// A reload moved or removed the tenant since: the alert was
			// taken in for an org that no longer speaks for it.
			errs[i] = fmt.Errorf("tenant %s is no longer one of org %s's tenants (the config changed since the alert was queued)", r.tenant, org)
		default:
			if reason := s.admit(a, r.received); reason != "" {
				errs[i] = errors.New(reason)
			}
		}
		if errs[i] != nil {
			return nil, fmt.Errorf("queued alert %d of org %s: %w", rows[i].seq, org, errs[i])
		}
	}
	return alerts, nil
}
