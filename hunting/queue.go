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
// "queued". Rejections are decided then, as for any request. Correlation
// follows: drain takes the oldest rows, up to queueChunk alerts, and in one
// transaction deletes them and stores, correlates and scores their alerts
// exactly as a request answered synchronously would, so a crash leaves
// every row either still queued or correlated, never both and never
// neither. Every replica drains (rows are taken with SKIP LOCKED, each org
// under its advisory lock); a replica's own intake wakes its drain at once,
// and rows another replica queued are found within queuePoll.
//
// A synchronous request stays serialised behind its org's transactions
// (group commit, groupcommit.go); a queued one costs the decoding and one
// COPY, so a burst is taken in at the speed the database stores rows and
// correlated at the speed correlation runs.

const (
	// queueChunk caps the alerts of one drain transaction.
	queueChunk = groupMaxItems
	// queuePoll is how often a replica looks for rows others queued.
	queuePoll = time.Second
	// queueMaxAttempts: a row that failed alone this often is left in the
	// queue for an operator (its last_error says why).
	queueMaxAttempts = 3
	// QueueMax caps the alerts waiting in the queue: beyond it a queued
	// request is answered 503, and the sender retries later.
	QueueMax = 1_000_000
)

// RetryAfterQueueFull is the Retry-After (seconds) of a 503 answered while
// the queue is full.
const RetryAfterQueueFull = 30

// StatusQueued: stored in the intake queue, to be correlated shortly.
const StatusQueued ItemStatus = "queued"

// QueueFullError is a queued request refused because the queue holds
// QueueMax alerts or more.
type QueueFullError struct{ Depth int64 }

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("the intake queue holds %d alerts not yet correlated (the limit is %d): nothing was stored; retry after %d seconds",
		e.Depth, QueueMax, RetryAfterQueueFull)
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
		if reason := s.admit(a, now); reason != "" {
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

// queueDepthSQL is about how many rows wait (the span of their sequence
// numbers: two index probes, never a count). Rows left for an operator do
// not count.
const queueDepthSQL = `SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM hunting_intake_queue WHERE attempts < $1`

// syncBeginSQL begins a transaction whose commit waits for the disk,
// whatever the server's default.
const syncBeginSQL = `BEGIN; SET LOCAL synchronous_commit TO on`

// enqueue stores admitted alerts, each with the item it was decoded from
// (raws[i] for alerts[i]), in the queue, and returns once they are on disk.
func (s *Service) enqueue(ctx context.Context, raws []RawAlert, alerts []*Alert) error {
	var depth int64
	if err := s.pool.QueryRow(ctx, queueDepthSQL, queueMaxAttempts).Scan(&depth); err != nil {
		return fmt.Errorf("hunting: read the intake queue's depth: %w", err)
	}
	if depth+int64(len(alerts)) > QueueMax {
		return &QueueFullError{Depth: depth}
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

// drain correlates queued alerts, oldest first, until none is left or an
// error stops it, and returns how many it correlated.
func (s *Service) drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.drainChunk(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// queuedRow is one row of the queue.
type queuedRow struct {
	seq         int64
	org, tenant string
	received    time.Time
	raw         []byte
}

// takeOldestSQL deletes and returns the oldest rows ($2 at most) that no
// other transaction holds.
const takeOldestSQL = `
DELETE FROM hunting_intake_queue WHERE seq IN (
    SELECT seq FROM hunting_intake_queue WHERE attempts < $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING seq, org, tenant, received_at, alert`

// takeOneSQL deletes and returns the row $2.
const takeOneSQL = `DELETE FROM hunting_intake_queue WHERE attempts < $1 AND seq = $2 RETURNING seq, org, tenant, received_at, alert`

// drainChunk correlates the oldest rows, and returns how many alerts it
// correlated (0: the queue is empty). When they cannot be correlated
// together, each is tried alone, so that one the service cannot correlate
// does not hold the others back; it is counted a failed attempt.
func (s *Service) drainChunk(ctx context.Context) (int, error) {
	rows, err := s.correlateQueued(ctx, takeOldestSQL, queueMaxAttempts, queueChunk)
	switch {
	case err == nil:
		return len(rows), nil
	case len(rows) == 0 || ctx.Err() != nil || storeUnavailable(err):
		return 0, err
	}
	s.log.Warn("intake queue: a chunk of queued alerts could not be correlated; trying each alone", "alerts", len(rows), "err", err)
	n := 0
	for _, r := range rows {
		got, err := s.correlateQueued(ctx, takeOneSQL, queueMaxAttempts, r.seq)
		switch {
		case err == nil:
			n += len(got)
		case ctx.Err() != nil || storeUnavailable(err):
			return n, err
		default:
			if err := s.failedAttempt(ctx, r, err); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// correlateQueued takes rows with take (args its arguments) and, in the
// same transaction, stores and correlates their alerts. It returns the
// rows it took, also when it failed (then nothing changed).
func (s *Service) correlateQueued(ctx context.Context, take string, args ...any) (rows []queuedRow, err error) {
	defer func() {
		// A panic on one hostile or unforeseen row must not end the drain
		// for good: it is that chunk's failure (its rows are tried alone).
		if p := recover(); p != nil {
			err = fmt.Errorf("hunting: correlating %d queued alerts panicked: %v", len(rows), p)
		}
	}()
	start := time.Now()
	var after *cacheUpdate
	clock := s.stageClock()
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: syncBeginSQL}, func(tx pgx.Tx) error {
		clock.lap(stageBegin)
		rows = rows[:0]
		q, err := tx.Query(ctx, take, args...)
		if err != nil {
			return fmt.Errorf("take queued alerts: %w", err)
		}
		for q.Next() {
			var r queuedRow
			if err := q.Scan(&r.seq, &r.org, &r.tenant, &r.received, &r.raw); err != nil {
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
		alerts, byOrg, err := s.decodeQueued(rows)
		if err != nil {
			return err
		}
		after = newCacheUpdate()
		out := make([]ItemResult, len(alerts))
		_, err = s.ingestOrgs(ctx, tx, alerts, byOrg, out, after, clock)
		return err
	})
	if err != nil {
		return rows, fmt.Errorf("hunting: correlate %d queued alerts: %w", len(rows), err)
	}
	if len(rows) == 0 {
		s.m.queueWait.Set(0)
		return nil, nil
	}
	// rows are in order: the first waited longest.
	s.m.queueWait.Set(max(0, s.cfg.Now().Sub(rows[0].received).Seconds()))
	clock.lap(stageCommit)
	s.cache.apply(after)
	clock.lap(stageApply)
	s.m.queue.WithLabelValues("correlated").Add(float64(len(rows)))
	s.m.batchDur.Observe(time.Since(start).Seconds())
	return rows, nil
}

// decodeQueued decodes rows into alerts of the org each was queued for,
// checked as at intake, and groups them by org.
func (s *Service) decodeQueued(rows []queuedRow) ([]*Alert, map[string][]int, error) {
	alerts := make([]*Alert, len(rows))
	errs := make([]error, len(rows))
	parallel(len(rows), func(i int) {
		r := rows[i]
		a, _, err := safeNormalize(r.raw, map[string]string{r.tenant: r.org})
		if err != nil {
			errs[i] = err
			return
		}
		a.Org = r.org
		alerts[i] = a
	})
	now := s.cfg.Now()
	tenants := s.liveConfig().tenants
	byOrg := map[string][]int{}
	for i, a := range alerts {
		switch r := rows[i]; {
		case errs[i] != nil:
		case tenants[r.tenant] != r.org:
			// A reload moved or removed the tenant since: the alert was
			// taken in for an org that no longer speaks for it.
			errs[i] = fmt.Errorf("tenant %s is no longer one of org %s's tenants (the config changed since the alert was queued)", r.tenant, r.org)
		default:
			if reason := s.admit(a, now); reason != "" {
				errs[i] = errors.New(reason)
			}
		}
		if errs[i] != nil {
			return nil, nil, fmt.Errorf("queued alert %d (org %s): %w", rows[i].seq, rows[i].org, errs[i])
		}
		byOrg[a.Org] = append(byOrg[a.Org], i)
	}
	return alerts, byOrg, nil
}

// failedAttempt counts a failed correlation of r alone (cause), and says
// so when it is the last.
func (s *Service) failedAttempt(ctx context.Context, r queuedRow, cause error) error {
	var attempts int
	err := s.pool.QueryRow(ctx, `
UPDATE hunting_intake_queue SET attempts = attempts + 1, last_error = left($2, 1000)
WHERE seq = $1 RETURNING attempts`, r.seq, cause.Error()).Scan(&attempts)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil // another replica took it meanwhile
	case err != nil:
		return fmt.Errorf("hunting: count a failed correlation of queued alert %d: %w", r.seq, err)
	}
	if attempts >= queueMaxAttempts {
		s.m.queue.WithLabelValues("failed").Inc()
		s.log.Error("intake queue: a queued alert could not be correlated; it is left in hunting_intake_queue for an operator",
			"seq", r.seq, "org", r.org, "attempts", attempts, "err", cause)
	} else {
		s.log.Warn("intake queue: a queued alert could not be correlated; it will be tried again", "seq", r.seq, "org", r.org, "attempts", attempts, "err", cause)
	}
	return nil
}
