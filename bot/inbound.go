package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// Durable inbound work (migrations/0010_inbound.sql, table bot_inbound).
//
// Every inbound event with work to do (a command, a button press, a form
// submission, a reply in a case thread) becomes one row, inserted before the
// platform is acknowledged, in the statement that also deduplicates it: the
// delivery key is the primary key, so a redelivery or a double click finds the
// row and does nothing. The inserting replica claims the row in that same
// statement (a lease) and starts on it at once with the live Responder; when
// the work fails it is retried from the table with backoff, on any replica,
// and a replica that dies leaves a lease that runs out. Answers after a
// restart go through a Responder the adapter rebuilds from the state stored
// with the row (Resumable, Resumer). A row that keeps failing ends dead: the
// person is told, an operator reads last_error.
//
// When the insert fails (the database is unreachable) nothing is
// acknowledged as done: commands and buttons are answered at once that
// threatdesk cannot reach its database, forms keep their text with that
// error, and HandleReply returns the error so that the adapter does not
// acknowledge the event (Slack redelivers it) or keeps it until it can be
// stored (Discord).

// Inbound tunes the durable inbound queue; zero values get defaults.
type Inbound struct {
	// Workers is how many rows are retried at once per replica (default 2).
	// New rows do not wait for them: the replica that stores a row starts on
	// it at once.
	Workers int
	// Lease is how long a claimed row stays with its replica before another
	// may take it (default 1m); it must exceed Timeout.
	Lease time.Duration
	// Timeout bounds one attempt at a row's work (default 30s).
	Timeout time.Duration
	// FileTimeout bounds one attempt at a reply whose files are fetched
	// into samples (default 10m); its lease is kept meanwhile.
	FileTimeout time.Duration
	// StoreTimeout bounds the insert made before an acknowledgement
	// (default 2s, inside the platforms' 3 s: a loaded database gets the time
	// it needs, and the answer still arrives in time).
	StoreTimeout time.Duration
	// StoreConns is how many database connections are kept apart for those
	// inserts (default 4), so that acknowledgements never queue behind the
	// work for a connection of the shared pool.
	StoreConns int
	// Poll is the fallback wake-up when no NOTIFY arrives (default 2s).
	Poll time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential backoff
	// between attempts (defaults 1s and 1m).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAttempts marks a row dead after this many attempts (default 10,
	// about three minutes of retries: longer than a database fail-over).
	MaxAttempts int
	// Retention is how long settled keys are kept to recognise redeliveries
	// (default 48h; Slack retries for about an hour).
	Retention time.Duration
}

func (c Inbound) withDefaults() Inbound {
	c.Workers = cmp.Or(c.Workers, 2)
	c.Lease = cmp.Or(c.Lease, time.Minute)
	c.Timeout = cmp.Or(c.Timeout, 30*time.Second)
	c.FileTimeout = cmp.Or(c.FileTimeout, 10*time.Minute)
	c.StoreTimeout = cmp.Or(c.StoreTimeout, 2*time.Second)
	c.StoreConns = cmp.Or(c.StoreConns, 4)
	c.Poll = cmp.Or(c.Poll, 2*time.Second)
	c.BackoffBase = cmp.Or(c.BackoffBase, time.Second)
	c.BackoffMax = cmp.Or(c.BackoffMax, time.Minute)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 10)
	c.Retention = cmp.Or(c.Retention, 48*time.Hour)
	return c
}

func (c Inbound) validate() error {
	if c.Workers < 0 || c.Lease < 0 || c.Timeout < 0 || c.StoreTimeout < 0 || c.StoreConns < 0 || c.Poll < 0 ||
		c.BackoffBase < 0 || c.BackoffMax < 0 || c.MaxAttempts < 0 || c.Retention < 0 || c.FileTimeout < 0 {
		return errors.New("inbound: workers, lease, timeout, file timeout, store timeout, store connections, poll, backoff, max attempts and retention must not be negative")
	}
	d := c.withDefaults()
	if d.Lease <= d.Timeout {
		return fmt.Errorf("inbound.lease %s must exceed inbound.timeout %s, or another replica takes a row still being worked on", d.Lease, d.Timeout)
	}
	if d.StoreTimeout >= 3*time.Second {
		return fmt.Errorf("inbound.store_timeout %s: the platforms must be acknowledged within 3s; use 1s (default)", d.StoreTimeout)
	}
	return nil
}

// Resumable is a Responder that can be rebuilt after a restart, on any
// replica: ResumeState returns what its adapter needs for that (a response
// URL, an interaction token, where to post), stored with the event until the
// event is settled. Adapters' Responders implement it.
type Resumable interface {
	Responder
	ResumeState() (json.RawMessage, error)
}

// Resumer is implemented by adapters whose Responders are Resumable: Resume
// rebuilds one from its state.
type Resumer interface {
	Resume(state json.RawMessage) (Responder, error)
}

// Inbound kinds (bot_inbound.kind).
const (
	kindCommand = "command"
	kindAction  = "action"
	kindSubmit  = "submit"
	kindReply   = "reply"
	kindForm    = "form"
	kindReplay  = "replay"
)

// inboundChannel wakes the inbound workers of every replica when a row is
// given back.
const inboundChannel = "threatdesk_inbound"

// inboundEvent is a row's payload: the event as the adapter handed it over,
// without its Responder.
type inboundEvent struct {
	Command    *Command    `json:"command,omitempty"`
	Action     *Action     `json:"action,omitempty"`
	Submission *Submission `json:"submission,omitempty"`
	Reply      *Reply      `json:"reply,omitempty"`
}

// inboundRow is a claimed row.
type inboundRow struct {
	key       string
	platform  Platform
	kind      string
	event     inboundEvent
	responder json.RawMessage
	attempts  int
	received  time.Time
}

// stored is the outcome of storing an inbound event.
type stored int

const (
	storedNew stored = iota
	storedDuplicate
	storedUnavailable
	// storedUncertain: the insert failed in a way that may have committed
	// (its answer lost), and the row could not be taken out again: it may
	// be worked once its lease runs out.
	storedUncertain
)

// Words for the person when an event cannot be stored or keeps failing.
const (
	msgUnavailable = "threatdesk cannot reach its database right now, so nothing was done or changed. Try again in a minute."
	msgUncertain   = "threatdesk could not confirm it took this in (its database answered too slowly), so it may still be done within a few minutes. Check before trying again."
	msgGaveUp      = "threatdesk could not finish this after several tries. Try again in a few minutes; if it keeps failing, tell your threatdesk admin."
	msgReplyGaveUp = "Your reply could not be passed on to the other side of the case after several tries. Post it again in a few minutes; if it keeps failing, tell your threatdesk admin."
	msgBroke       = "Something went wrong in threatdesk while doing this, so it may not be done. Check before trying again; if it keeps failing, tell your threatdesk admin."
	msgReplyBroke  = "Something went wrong in threatdesk, so your reply may not have reached the other side of the case. If it keeps failing, tell your threatdesk admin."
)

type inboundMetrics struct {
	events  *prometheus.CounterVec
	pending prometheus.Gauge
	dead    prometheus.Gauge
}

func newInboundMetrics(reg prometheus.Registerer) (*inboundMetrics, error) {
	m := &inboundMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "threatdesk", Subsystem: "inbound",
			Name: "events_total", Help: "Inbound events by kind and result: stored, duplicate, unavailable (not stored: the database was unreachable), done, retry, dead."},
			[]string{"kind", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "inbound",
			Name: "pending", Help: "Acknowledged inbound events whose work is not finished."}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "threatdesk", Subsystem: "inbound",
			Name: "dead", Help: "Inbound events given up on (kept for a week): the person was told; last_error says why."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.pending, m.dead} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bot: register inbound metrics: %w", err)
		}
	}
	return m, nil
}

// liveResponders keeps the Responders of rows this process stored, so that
// their work, and its retries here, answer through the adapter's live object.
type liveResponders struct {
	mu sync.Mutex
	m  map[string]liveResponder
}

type liveResponder struct {
	rs Responder
	at time.Time
}

func (l *liveResponders) put(key string, rs Responder) {
	if rs == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]liveResponder{}
	}
	l.m[key] = liveResponder{rs: rs, at: time.Now()}
}

func (l *liveResponders) get(key string) (Responder, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.m[key]
	return r.rs, ok
}

func (l *liveResponders) drop(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// forget drops entries older than d (rows another replica finished).
func (l *liveResponders) forget(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, r := range l.m {
		if time.Since(r.at) > d {
			delete(l.m, k)
		}
	}
}

// responderState is what rebuilds rs after a restart, or nil.
func (b *Bot) responderState(rs Responder) json.RawMessage {
	r, ok := rs.(Resumable)
	if !ok {
		return nil
	}
	st, err := r.ResumeState()
	if err != nil {
		b.log.Warn("an answer could not be made durable: after a restart it would not reach the person", "err", err)
		return nil
	}
	return st
}

// accept stores ev as a new row of kind, claimed by this process, and starts
// on it; it reports whether the row is new, a duplicate, or could not be
// stored. For a reply, anchor is the thread's parent: the row is stored only
// when that message anchors a case (one statement still).
func (b *Bot) accept(ctx context.Context, p Platform, kind, key string, ev inboundEvent, rs Responder, anchor *Ref) stored {
	received := time.Now()
	if c := ev.Command; c != nil && !c.Received.IsZero() {
		received = c.Received
	}
	if key == "" {
		key = randomKey() // no delivery key: cannot be deduplicated, but is still made durable
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		b.log.Error("inbound event not storable", "kind", kind, "err", err)
		b.im.events.WithLabelValues(kind, "unavailable").Inc()
		return storedUnavailable
	}
	var state any
	if st := b.responderState(rs); st != nil {
		state = []byte(st)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Inbound.StoreTimeout)
	defer cancel()
	var tag pgconn.CommandTag
	if anchor == nil {
		tag, err = b.storeExec(ctx, `
INSERT INTO bot_inbound (key, platform, kind, payload, responder, locked_until, attempts)
VALUES ($1, $2, $3, $4, $5, now() + $6::interval, 1)
ON CONFLICT (key) DO NOTHING`, key, string(p), kind, payload, state, b.cfg.Inbound.Lease)
	} else {
		// Only replies in a case's thread are work; the rest of a channel's
		// threads are not stored at all.
		tag, err = b.storeExec(ctx, `
INSERT INTO bot_inbound (key, platform, kind, payload, responder, locked_until, attempts)
SELECT $1, $2, $3, $4, $5, now() + $6::interval, 1
WHERE EXISTS (SELECT 1 FROM bot_anchor WHERE platform = $7 AND channel = $8 AND message = $9 AND stream LIKE 'case:%')
ON CONFLICT (key) DO NOTHING`, key, string(p), kind, payload, state, b.cfg.Inbound.Lease,
			string(anchor.Platform), anchor.Channel, anchor.Message)
	}
	if err != nil {
		if anchor == nil && !unsent(err) && !b.takeBack(ctx, key, p, kind) {
			// The person is told it failed only if it cannot be done later.
			b.im.events.WithLabelValues(kind, "uncertain").Inc()
			b.log.Warn("inbound event may have been stored; its sender is told to check before trying again", "kind", kind, "err", err)
			return storedUncertain
		}
		return b.unavailable(kind, err)
	}
	if tag.RowsAffected() == 0 {
		if anchor == nil { // (a reply may also be outside any case's thread)
			b.im.events.WithLabelValues(kind, "duplicate").Inc()
		}
		return storedDuplicate
	}
	b.im.events.WithLabelValues(kind, "stored").Inc()
	if b.holdInbound.Load() {
		return storedNew // tests: as if the process died right after the acknowledgement
	}
	b.live.put(key, rs)
	row := inboundRow{key: key, platform: p, kind: kind, event: ev, attempts: 1, received: received}
	if !b.goBackground("inbound "+kind, b.backgroundTimeout(row), func(ctx context.Context) { b.process(ctx, row) }) {
		// Stopped: the row is stored and acknowledged, and given back at
		// once for whichever replica is up (its lease if that fails).
		b.live.drop(key)
		b.release(ctx, row, errors.New("stored while this replica was stopping"))
		b.log.Info("inbound event stored while stopping; another replica works it", "kind", kind)
	}
	return storedNew
}

// unsent reports whether err surely came before the statement reached the
// server (no connection, or one that failed before sending).
func unsent(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

// takeBack settles key as done with no work if an insert whose answer was
// lost (a deadline reached while the server committed) stored it, so that
// what the person is told, nothing was done, stays true: a worker would
// otherwise do it once its lease ran out, after they had tried again. The
// insert of the same key waits for that insert to end (a key conflict),
// so it cannot miss a row still committing, as a DELETE could. It reports
// whether the event is surely not to be worked.
func (b *Bot) takeBack(ctx context.Context, key string, p Platform, kind string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Inbound.StoreTimeout)
	defer cancel()
	tag, err := b.storeExec(ctx, `
INSERT INTO bot_inbound (key, platform, kind, attempts, done_at, last_error)
VALUES ($1, $2, $3, 1, now(), $4)
ON CONFLICT (key) DO UPDATE SET done_at = now(), locked_until = NULL, last_error = EXCLUDED.last_error
WHERE bot_inbound.attempts = 1 AND bot_inbound.done_at IS NULL AND bot_inbound.dead_at IS NULL`,
		key, string(p), kind, "taken back: its sender was told nothing was done")
	return err == nil && tag.RowsAffected() == 1
}

// storeExec runs one of the inserts made before an acknowledgement, on the
// connections kept for them (see execFresh), within ctx's deadline.
func (b *Bot) storeExec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return execFresh(ctx, b.storeDB, sql, args...)
}

// execFresh runs sql, and again on another connection (while ctx allows,
// at most once per connection the pool may hold) when the connection the
// pool handed out was dead before the statement could run. After a restart
// or fail-over of the server the pool may hand out connections the server
// has closed (it pings only those idle for over a second): the statement
// then fails unsent, or with the server's goodbye (SQLSTATE 57P...) read in
// place of its answer, and the pool drops that connection. Only keyed
// inserts and idempotent updates go through here: should a statement whose
// session the server ended have committed after all, running it again
// changes nothing (an insert finds its key: a duplicate).
func execFresh(ctx context.Context, db *pgxpool.Pool, sql string, args ...any) (pgconn.CommandTag, error) {
	for try := 1; ; try++ {
		tag, err := db.Exec(ctx, sql, args...)
		if err == nil || ctx.Err() != nil || !staleSession(err) || try > int(db.Stat().MaxConns()) {
			return tag, err
		}
	}
}

// staleSession reports whether err says the connection was dead before the
// statement could run.
func staleSession(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "57P") // operator intervention: the session was ended
}

func (b *Bot) unavailable(kind string, err error) stored {
	b.im.events.WithLabelValues(kind, "unavailable").Inc()
	b.log.Warn("inbound event not stored, so not acknowledged as done: the database is unreachable", "kind", kind, "err", err)
	return storedUnavailable
}

// recordSeen stores key as settled (a form opened, a replayed signature)
// and reports whether it was there before.
func (b *Bot) recordSeen(ctx context.Context, p Platform, kind, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Inbound.StoreTimeout)
	defer cancel()
	tag, err := b.storeExec(ctx, `
INSERT INTO bot_inbound (key, platform, kind, done_at) VALUES ($1, $2, $3, now())
ON CONFLICT (key) DO NOTHING`, key, string(p), kind)
	if err != nil {
		return false, fmt.Errorf("record inbound key: %w", err)
	}
	return tag.RowsAffected() == 0, nil
}

// Seen is the replay cache adapters use for signed HTTP requests: it records
// key (the adapter's, e.g. "slack:sig:" and the signature's hex) and reports
// whether it was recorded before, on any replica. Replay keys are kept for
// ten minutes, twice the age a signed request may have.
func (b *Bot) Seen(ctx context.Context, key string) (bool, error) {
	p, _, _ := strings.Cut(key, ":")
	return b.recordSeen(ctx, Platform(p), kindReplay, key)
}

// formAck records a command or button answered with f, so that a redelivery
// does not open it twice, and finds out now, before the person types into it,
// whether the database can take the submission.
func (b *Bot) formAck(ctx context.Context, p Platform, key string, f Form) Ack {
	if key == "" {
		return Ack{Form: &f}
	}
	dup, err := b.recordSeen(ctx, p, kindForm, key)
	switch {
	case err != nil:
		b.unavailable(kindForm, err)
		return Ack{Message: ptr(textMessage(msgUnavailable)), Private: true}
	case dup:
		b.im.events.WithLabelValues(kindForm, "duplicate").Inc()
		return Ack{Private: true}
	}
	return Ack{Form: &f}
}

// acceptAck stores ev and says what to acknowledge.
func (b *Bot) acceptAck(ctx context.Context, p Platform, kind, key string, ev inboundEvent, rs Responder) Ack {
	switch b.accept(ctx, p, kind, key, ev, rs, nil) {
	case storedUnavailable:
		return Ack{Message: ptr(textMessage(msgUnavailable)), Private: true}
	case storedUncertain:
		return Ack{Message: ptr(textMessage(msgUncertain)), Private: true}
	}
	return Ack{Private: true}
}

// startInbound runs the inbound listener, workers and housekeeping.
func (b *Bot) startInbound() {
	b.life.Go("inbound listener", func(ctx context.Context) error {
		b.listenInbound(ctx)
		return nil
	})
	b.life.Go("inbound housekeeping", func(ctx context.Context) error {
		b.inboundHousekeeping(ctx)
		return nil
	})
	for i := range b.cfg.Inbound.Workers {
		b.life.Go(fmt.Sprintf("inbound worker %d", i), func(ctx context.Context) error {
			b.inboundWorker(ctx)
			return nil
		})
	}
}

// kickInbound wakes a worker; it drains every due row before it sleeps.
func (b *Bot) kickInbound() {
	select {
	case b.inboundKick <- struct{}{}:
	default:
	}
}

// listenInbound wakes the workers on every NOTIFY of inboundChannel; when
// its connection fails it retries, and polling covers the gap.
func (b *Bot) listenInbound(ctx context.Context) {
	for ctx.Err() == nil {
		err := b.listenInboundOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("inbound listener lost its connection; polling until it is back", "err", err)
		if !sleepCtx(ctx, b.cfg.Inbound.Poll) {
			return
		}
	}
}

func (b *Bot) listenInboundOnce(ctx context.Context) error {
	conn, err := b.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire inbound listen connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+inboundChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer func() {
		if ctx.Err() == nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+inboundChannel)
		}
	}()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		b.kickInbound()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// inboundWorker claims rows that are due (retries, and rows whose replica
// died) one at a time and works on them. A row in hand is finished even
// until Stop's grace runs out; then it is given back.
func (b *Bot) inboundWorker(ctx context.Context) {
	poll := time.NewTimer(0)
	defer poll.Stop()
	failing := false // say so once per outage, not on every poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.inboundKick:
		case <-poll.C:
		}
		for ctx.Err() == nil && !b.holdInbound.Load() {
			row, ok, err := b.claimInbound(ctx)
			if err != nil {
				if ctx.Err() == nil && !failing {
					b.log.Warn("inbound claim failed; retrying at every poll", "err", err)
				}
				failing = true
				break
			}
			if failing {
				b.log.Info("inbound claims work again")
				failing = false
			}
			if !ok {
				break
			}
			b.process(b.life.WorkContext(), row)
		}
		poll.Reset(jitter(b.cfg.Inbound.Poll))
	}
}

// claimInbound leases one due row. Concurrent claimers never get the same
// row (FOR UPDATE SKIP LOCKED).
func (b *Bot) claimInbound(ctx context.Context) (inboundRow, bool, error) {
	var r inboundRow
	var p string
	var payload []byte
	err := b.db.QueryRow(ctx, `
WITH c AS (
    SELECT key FROM bot_inbound
    WHERE done_at IS NULL AND dead_at IS NULL AND available_at <= now()
      AND (locked_until IS NULL OR locked_until < now())
    ORDER BY available_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
UPDATE bot_inbound i SET locked_until = now() + $1::interval, attempts = i.attempts + 1
FROM c WHERE i.key = c.key
RETURNING i.key, i.platform, i.kind, i.payload, i.responder, i.attempts, i.received_at`, b.cfg.Inbound.Lease).
		Scan(&r.key, &p, &r.kind, &payload, &r.responder, &r.attempts, &r.received)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("claim inbound row: %w", err)
	}
	r.platform = Platform(p)
	if err := json.Unmarshal(payload, &r.event); err != nil {
		// Not ours to fix by retrying: settle it dead at once.
		b.settleDead(context.WithoutCancel(ctx), r, fmt.Errorf("undecodable payload: %w", err))
		return r, false, nil
	}
	return r, true, nil
}

// process does one attempt at a row's work and settles it: done (answered),
// retried later with backoff, or dead (the person is told).
func (b *Bot) process(ctx context.Context, row inboundRow) {
	b = b.current()
	defer b.afterRow()
	c := b.cfg.Inbound
	log := b.log.With("inbound", row.kind, "attempt", row.attempts)
	stopLease := b.keepLease(row) // a reply's files may take longer than a lease to fetch
	actx, cancel := context.WithTimeout(ctx, b.workTimeout(row))
	var answer *Message
	err := b.guard("inbound "+row.kind, func() (err error) {
		answer, err = b.run(actx, row)
		return err
	})
	cancel()
	stopLease()
	// Settle even when stopping; answer within a bound of its own.
	settle := context.WithoutCancel(ctx)
	answerCtx, cancel := context.WithTimeout(settle, c.Timeout)
	defer cancel()
	switch {
	// Answer first, then settle: a crash in between answers twice rather
	// than never.
	case err == nil:
		if answer != nil {
			b.respond(answerCtx, b.responderOf(row), *answer, true)
		}
		b.settleDone(settle, row)
		b.m.handling.WithLabelValues(row.kind, row.name()).Observe(time.Since(row.received).Seconds())
	case isAnswer(err):
		b.respond(answerCtx, b.responderOf(row), keepWritten(b.errMessage(row.kind, err), row), true)
		b.settleDone(settle, row)
		b.m.handling.WithLabelValues(row.kind, row.name()).Observe(time.Since(row.received).Seconds())
	case lifecycle.IsPanic(err):
		// A bug (the stack is logged): another attempt would only repeat
		// it, so the row is dead and the person is told at once.
		log.Error("inbound event failed with a panic: the person is told; an operator should look", "key", row.key, "err", err)
		b.tellFailed(answerCtx, row, msgBroke, msgReplyBroke)
		b.settleDead(settle, row, err)
	case ctx.Err() != nil:
		// Stopping: give the row back to whichever replica is up.
		b.release(settle, row, err)
	case row.attempts >= c.MaxAttempts || isPermanent(err):
		log.Error("inbound event given up: the person is told; an operator should look", "key", row.key, "err", err)
		b.tellFailed(answerCtx, row, msgGaveUp, msgReplyGaveUp)
		b.settleDead(settle, row, err)
	default:
		wait := backoff(c.BackoffBase, c.BackoffMax, row.attempts)
		log.Warn("inbound event failed; retrying", "retry_in", wait, "err", err)
		b.settleRetry(settle, row, wait, err)
	}
}

// name labels a row's work for the handling histogram.
func (r inboundRow) name() string {
	switch {
	case r.event.Command != nil:
		return cmp.Or(r.event.Command.Name, "help")
	case r.event.Action != nil:
		return string(r.event.Action.Action)
	case r.event.Submission != nil:
		return r.event.Submission.FormID
	}
	return "relay"
}

// isAnswer reports whether err is an outcome to tell the person (a refusal,
// a usage error, something not found) rather than a failure to retry.
func isAnswer(err error) bool {
	var ref *Refusal
	var ue *usageError
	return errors.As(err, &ref) || errors.As(err, &ue) || errors.Is(err, ErrNotFound)
}

// isPermanent reports whether a platform said a retry cannot help.
func isPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Kind == Permanent
}

// run does a row's work and returns the private answer, if any.
func (b *Bot) run(ctx context.Context, row inboundRow) (*Message, error) {
	ev := row.event
	switch {
	case ev.Command != nil:
		c := *ev.Command
		c.Respond = b.responderOf(row) // for work that answers with more than a message (export's files)
		return b.doCommand(ctx, c)
	case ev.Action != nil:
		return b.doAction(ctx, *ev.Action)
	case ev.Submission != nil:
		return b.doSubmit(ctx, *ev.Submission)
	case ev.Reply != nil:
		return nil, b.relay(ctx, *ev.Reply)
	}
	return nil, PermanentError("empty_event", "", errors.New("inbound row carries no event"))
}

// responderOf is the live Responder of a row stored here, or one its
// adapter rebuilds from the stored state; nil when neither exists.
func (b *Bot) responderOf(row inboundRow) Responder {
	if rs, ok := b.live.get(row.key); ok {
		return rs
	}
	if len(row.responder) == 0 {
		return nil
	}
	a, ok := b.adapter(row.platform)
	if !ok {
		b.log.Warn("no adapter to answer an inbound event", "platform", row.platform)
		return nil
	}
	r, ok := a.(Resumer)
	if !ok {
		return nil
	}
	rs, err := r.Resume(row.responder)
	if err != nil {
		b.log.Warn("the answer to an inbound event cannot be sent: its responder could not be rebuilt", "platform", row.platform, "err", err)
		return nil
	}
	return rs
}

// tellFailed tells the person behind a dead row that it failed: msg, or
// replyMsg for a thread reply that was not relayed.
func (b *Bot) tellFailed(ctx context.Context, row inboundRow, msg, replyMsg string) {
	if r := row.event.Reply; r != nil {
		if a, ok := b.adapter(r.Author.Platform); ok {
			dest := Dest{Platform: r.Parent.Platform, Workspace: r.Parent.Workspace, Channel: r.Parent.Channel, Thread: &r.Parent}
			if err := a.PostPrivate(ctx, dest, r.Author.ID, textMessage(replyMsg)); err != nil {
				b.log.Warn("could not tell the author that a reply was not relayed", "err", err)
			}
		}
		return
	}
	b.respond(ctx, b.responderOf(row), keepWritten(textMessage(msg), row), true)
}

func (b *Bot) settleDone(ctx context.Context, row inboundRow) {
	b.live.drop(row.key)
	b.im.events.WithLabelValues(row.kind, "done").Inc()
	if tag, err := execFresh(ctx, b.db, `UPDATE bot_inbound SET done_at = now(), locked_until = NULL, responder = NULL, last_error = NULL
WHERE key = $1 AND attempts = $2`, row.key, row.attempts); err == nil && tag.RowsAffected() == 0 {
		b.claimLost(row)
	} else if err != nil {
		b.log.Error("could not mark an inbound event done; its lease runs out and it is done again (the work is keyed, so nothing is duplicated but the answer)",
			"key", row.key, "err", err)
	}
}

func (b *Bot) settleDead(ctx context.Context, row inboundRow, cause error) {
	b.live.drop(row.key)
	b.im.events.WithLabelValues(row.kind, "dead").Inc()
	if tag, err := execFresh(ctx, b.db, `UPDATE bot_inbound SET dead_at = now(), locked_until = NULL, responder = NULL, last_error = $2
WHERE key = $1 AND attempts = $3`, row.key, cut(cause.Error(), 2000), row.attempts); err == nil && tag.RowsAffected() == 0 {
		b.claimLost(row)
	} else if err != nil {
		b.log.Error("could not mark an inbound event dead", "key", row.key, "err", err)
	}
}

func (b *Bot) settleRetry(ctx context.Context, row inboundRow, wait time.Duration, cause error) {
	b.im.events.WithLabelValues(row.kind, "retry").Inc()
	tag, err := execFresh(ctx, b.db, `UPDATE bot_inbound SET available_at = now() + $2::interval, locked_until = NULL, last_error = $3
WHERE key = $1 AND attempts = $4`, row.key, wait, cut(cause.Error(), 2000), row.attempts)
	if err != nil {
		// The lease runs out instead, and the row is claimed again then.
		b.log.Warn("could not schedule an inbound retry; it is taken up again when its lease runs out", "key", row.key, "err", err)
		return
	}
	if tag.RowsAffected() == 0 {
		b.claimLost(row)
		return
	}
	time.AfterFunc(wait, b.kickInbound)
}

// claimLost logs a settle of row that found it claimed again since (its
// lease ran out while this worker was at it): the new claimer settles it,
// and this one leaves its claim alone. (Settled by key alone, a stalled
// worker freed the new claim, and a third worker did the work beside the
// second.)
func (b *Bot) claimLost(row inboundRow) {
	b.log.Warn("an inbound event was claimed again after this worker's lease ran out; its new claimer settles it",
		"key", row.key, "attempt", row.attempts)
}

// release gives a row back at once, and wakes every replica's workers.
func (b *Bot) release(ctx context.Context, row inboundRow, cause error) {
	if _, err := execFresh(ctx, b.db, `UPDATE bot_inbound SET locked_until = NULL, last_error = $2 WHERE key = $1 AND attempts = $3 AND done_at IS NULL`,
		row.key, cut(cause.Error(), 2000), row.attempts); err != nil {
		b.log.Warn("could not give an inbound event back; it is taken up again when its lease runs out", "key", row.key, "err", err)
		return
	}
	_, _ = b.db.Exec(ctx, "SELECT pg_notify($1, '')", inboundChannel)
}

// inboundHousekeeping keeps the inbound gauges current and prunes old keys.
func (b *Bot) inboundHousekeeping(ctx context.Context) {
	every := max(b.cfg.Inbound.Poll, 5*time.Second)
	var lastPrune time.Time
	for {
		if time.Since(lastPrune) > 10*time.Minute {
			lastPrune = time.Now()
			b.pruneInbound(ctx)
			b.live.forget(b.cfg.Inbound.Lease + time.Hour)
		}
		var pending, dead int
		err := b.db.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL),
    (SELECT count(*) FROM bot_inbound WHERE dead_at IS NOT NULL)`).Scan(&pending, &dead)
		if err == nil {
			b.im.pending.Set(float64(pending))
			b.im.dead.Set(float64(dead))
		} else if ctx.Err() == nil {
			b.log.Warn("read inbound stats", "err", err)
		}
		if !sleepCtx(ctx, every) {
			return
		}
	}
}

// pruneInbound forgets replay keys after ten minutes, settled keys after
// Retention, dead rows after a week and thread marks after 90 quiet days.
func (b *Bot) pruneInbound(ctx context.Context) {
	tag, err := b.db.Exec(ctx, `
DELETE FROM bot_inbound
WHERE (kind = 'replay' AND received_at < now() - interval '10 minutes')
   OR (done_at IS NOT NULL AND received_at < now() - $1::interval)
   OR (dead_at IS NOT NULL AND received_at < now() - interval '7 days')`, b.cfg.Inbound.Retention)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("prune inbound keys", "err", err)
		}
		return
	}
	if n := tag.RowsAffected(); n > 0 {
		b.log.Debug("pruned inbound keys", "count", n)
	}
	// A thread quiet for 90 days is read from the inbound keys' reach if
	// it ever wakes (firstMark).
	if _, err := b.db.Exec(ctx, `DELETE FROM bot_thread_mark WHERE updated_at < now() - interval '90 days'`); err != nil && ctx.Err() == nil {
		b.log.Warn("prune thread marks", "err", err)
	}
}
