package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// part is one chat operation an outbox event renders to. Parts run in order;
// each one sent is recorded (bot_delivery) before the next, so a retried
// event resumes after the last part that went out.
type part struct {
	key string
	// Exactly one of dest, thread or update says where the message goes.
	dest   Dest   // post here
	thread string // post into the thread of this stream's anchor for target
	update string // edit this stream's anchor for target
	msg    Message
	// anchor, on a post, makes the posted message the stream's anchor for
	// this target; side, when set, also tells casework (SetAnchor).
	anchor string
	side   Side
	ref    string // case reference for SetAnchor
}

// rowError is a failed delivery with what to do about it.
type rowError struct {
	kind     ErrorKind
	after    time.Duration
	platform Platform
	err      error
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// startWorkers runs the listener, the workers and the stats refresher.
func (b *Bot) startWorkers(ctx context.Context) {
	d := b.cfg.Delivery
	wakes := make([]chan struct{}, d.Workers)
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	wakeAll := func() {
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
	b.wg.Add(2 + d.Workers)
	go func() {
		defer b.wg.Done()
		b.listen(ctx, wakeAll)
	}()
	go func() {
		defer b.wg.Done()
		b.refreshStats(ctx)
	}()
	for i := range d.Workers {
		go func() {
			defer b.wg.Done()
			b.work(ctx, i, wakes[i])
		}()
	}
}

// listen wakes the workers on every NOTIFY of the outbox channel. When the
// connection fails it retries; the workers' polling covers the gap.
func (b *Bot) listen(ctx context.Context, wake func()) {
	delay := b.cfg.Delivery.Poll
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("outbox listener lost its connection; polling until it is back", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (b *Bot) listenOnce(ctx context.Context, wake func()) error {
	conn, err := b.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer func() {
		if ctx.Err() == nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+outbox.Channel)
		}
	}()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		wake()
	}
}

// work is one delivery worker: drain what is claimable, then sleep until a
// NOTIFY or the poll interval.
func (b *Bot) work(ctx context.Context, n int, wake <-chan struct{}) {
	log := b.log.With("worker", n)
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		}
		for ctx.Err() == nil {
			got, err := b.deliverBatch(ctx)
			if err != nil {
				log.Error("outbox claim failed", "err", err)
				break
			}
			if got == 0 {
				break
			}
		}
		poll.Reset(jitter(b.cfg.Delivery.Poll))
	}
}

// deliverBatch claims and delivers one batch; it returns how many rows it claimed.
func (b *Bot) deliverBatch(ctx context.Context) (int, error) {
	d := b.cfg.Delivery
	rows, err := outbox.Claim(ctx, b.db, d.Batch, d.Lease)
	if err != nil {
		return 0, err
	}
	// Finish (or give back) every row well inside its lease, so that no
	// other worker claims a row this one is still sending.
	deadline := time.Now().Add(d.Lease * 3 / 4)
	for _, row := range rows {
		b.deliverRow(ctx, deadline, row)
	}
	return len(rows), nil
}

// deliverRow renders and sends one row, then settles it: delivered, retried
// later, or dead.
func (b *Bot) deliverRow(ctx context.Context, deadline time.Time, row outbox.Row) {
	log := b.log.With("outbox_id", row.ID, "kind", row.Kind, "stream", row.Stream, "attempt", row.Attempts)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	platform, err := b.sendRow(rctx, row)
	expired := rctx.Err() != nil
	cancel()
	if ctx.Err() != nil {
		// Shutting down: the lease runs out and another worker resumes it.
		return
	}
	if err != nil && expired {
		// Out of lease time (pacing, a long Retry-After): give the row back;
		// the parts sent are recorded and will be skipped.
		err = &rowError{kind: Temporary, after: time.Second, platform: platform, err: fmt.Errorf("out of lease time: %w", err)}
	}
	settle := context.WithoutCancel(ctx)
	if err == nil {
		if err := outbox.Delivered(settle, b.db, row.ID); err != nil {
			log.Error("could not mark an outbox row delivered; it will be resumed and its sent parts skipped", "err", err)
		}
		b.m.deliveries.WithLabelValues(string(platform), "delivered").Inc()
		return
	}
	kind, after := Classify(err)
	var re *rowError
	if errors.As(err, &re) {
		kind, after, platform = re.kind, re.after, re.platform
	}
	d := b.cfg.Delivery
	switch {
	case kind == Permanent:
		reason := "permanent failure: " + err.Error()
		if e := outbox.Dead(settle, b.db, row.ID, reason); e != nil {
			log.Error("could not mark an outbox row dead", "err", e)
		}
		b.m.deliveries.WithLabelValues(string(platform), "dead").Inc()
		log.Error("outbox row is dead: an operator must act", "reason", reason)
	case row.Attempts >= d.MaxAttempts:
		reason := fmt.Sprintf("gave up after %d attempts: %v", row.Attempts, err)
		if e := outbox.Dead(settle, b.db, row.ID, reason); e != nil {
			log.Error("could not mark an outbox row dead", "err", e)
		}
		b.m.deliveries.WithLabelValues(string(platform), "dead").Inc()
		log.Error("outbox row is dead: an operator must act", "reason", reason)
	case kind == RateLimited:
		if after <= 0 {
			after = time.Second // a 429 without Retry-After
		}
		if e := outbox.Retry(settle, b.db, row.ID, after, "rate limited: "+err.Error()); e != nil {
			log.Error("could not reschedule an outbox row", "err", e)
		}
		b.m.deliveries.WithLabelValues(string(platform), "rate_limited").Inc()
		log.Warn("rate limited; retrying after the platform's wait", "retry_after", after, "err", err)
	default:
		wait := backoff(d.BackoffBase, d.BackoffMax, row.Attempts)
		if after > 0 {
			wait = after
		}
		if e := outbox.Retry(settle, b.db, row.ID, wait, err.Error()); e != nil {
			log.Error("could not reschedule an outbox row", "err", e)
		}
		b.m.deliveries.WithLabelValues(string(platform), "retry").Inc()
		log.Warn("delivery failed; retrying with backoff", "retry_in", wait, "err", err)
	}
}

// sendRow renders row and sends the parts not yet sent.
func (b *Bot) sendRow(ctx context.Context, row outbox.Row) (Platform, error) {
	parts, err := b.render(ctx, row)
	if err != nil {
		return "", err
	}
	done := map[string]Ref{}
	if row.Attempts > 1 {
		// Only a row claimed before can have parts already sent.
		if done, err = b.delivered(ctx, row.ID); err != nil {
			return "", err
		}
	}
	var last Platform
	var failed []partFailure
	sent := 0
	for _, p := range parts {
		if ref, ok := done[p.key]; ok {
			// Sent before a crash or a failed later part: never twice. The
			// casework anchor is written again (idempotent) in case that is
			// what failed.
			if p.side != "" {
				if err := b.cases.SetAnchor(ctx, p.ref, p.side, ref); err != nil {
					return ref.Platform, fmt.Errorf("set %s anchor of %s: %w", p.side, p.ref, err)
				}
			}
			continue
		}
		plat, err := b.sendPart(ctx, row, p)
		if plat != "" {
			last = plat
		}
		if err != nil {
			// A part that can never be sent (the org's receipt deleted, the
			// bot removed from one channel) must not starve the others: the
			// desk still hears about the case, and the other way round.
			// Anything that may succeed later stops here and is resumed.
			if kind, _ := partKind(err); kind == Permanent {
				failed = append(failed, partFailure{plat, p.key, err})
				continue
			}
			return last, err
		}
		sent++
	}
	if len(failed) > 0 && sent == 0 && len(done) == 0 {
		return last, failed[0].err // nothing went out: the whole row is dead
	}
	for _, f := range failed {
		b.m.deliveries.WithLabelValues(string(f.platform), "dead").Inc()
		b.log.Error("a message part failed for good; the rest of the event was delivered: an operator must act",
			"row", row.ID, "kind", row.Kind, "part", f.key, "err", f.err)
	}
	return last, nil
}

// partFailure is a part of a row that can never be sent.
type partFailure struct {
	platform Platform
	key      string
	err      error
}

// partKind classifies a part's failure as settle does.
func partKind(err error) (ErrorKind, time.Duration) {
	var re *rowError
	if errors.As(err, &re) {
		return re.kind, re.after
	}
	return Classify(err)
}

func (b *Bot) sendPart(ctx context.Context, row outbox.Row, p part) (Platform, error) {
	d := b.cfg.Delivery
	dest := p.dest
	switch {
	case p.update != "":
		ref, ok, err := b.anchorOf(ctx, row.Stream, p.update)
		if err != nil {
			return "", err
		}
		if !ok {
			b.log.Warn("no card to update: it was never posted (dead row?)", "stream", row.Stream, "target", p.update)
			return "", nil
		}
		a, ok := b.adapter(ref.Platform)
		if !ok {
			return ref.Platform, &rowError{kind: Temporary, platform: ref.Platform, err: fmt.Errorf("no %s adapter registered", ref.Platform)}
		}
		if err := b.pacer.wait(ctx, ref.Platform, ref.Channel); err != nil {
			return ref.Platform, err
		}
		cctx, cancel := context.WithTimeout(ctx, d.CallTimeout)
		err = a.Update(cctx, ref, p.msg)
		cancel()
		if err != nil {
			return ref.Platform, b.classify(ref.Platform, ref.Channel, fmt.Errorf("update %s in %s: %w", p.update, ref.Channel, err))
		}
		return ref.Platform, b.recordSent(ctx, row.ID, p.key, ref, "", "")
	case p.thread != "":
		ref, ok, err := b.anchorOf(ctx, row.Stream, p.thread)
		if err != nil {
			return "", err
		}
		if !ok {
			b.log.Warn("no thread to post in: its card was never posted (dead row?)", "stream", row.Stream, "target", p.thread)
			return "", nil
		}
		dest = Dest{Platform: ref.Platform, Workspace: ref.Workspace, Channel: ref.Channel, Thread: &ref}
	}
	if dest.Channel == "" {
		return dest.Platform, &rowError{kind: Permanent, platform: dest.Platform,
			err: fmt.Errorf("part %s has no channel: check the org's and the desk's channels in the config", p.key)}
	}
	a, ok := b.adapter(dest.Platform)
	if !ok {
		return dest.Platform, &rowError{kind: Temporary, platform: dest.Platform, err: fmt.Errorf("no %s adapter registered", dest.Platform)}
	}
	dest.Key = "td" + strconv.FormatInt(row.ID, 36) + "." + p.key
	if err := b.pacer.wait(ctx, dest.Platform, dest.Channel); err != nil {
		return dest.Platform, err
	}
	cctx, cancel := context.WithTimeout(ctx, d.CallTimeout)
	ref, err := a.Post(cctx, dest, p.msg)
	cancel()
	if err != nil {
		return dest.Platform, b.classify(dest.Platform, dest.Channel, fmt.Errorf("post %s to %s: %w", p.key, dest.Channel, err))
	}
	// The window that can duplicate a message: the platform has it, this
	// record does not yet. Record before anything else can fail.
	if ref.Platform == "" {
		ref.Platform = dest.Platform
	}
	if ref.Channel == "" {
		ref.Channel = dest.Channel
	}
	if err := b.recordSent(context.WithoutCancel(ctx), row.ID, p.key, ref, row.Stream, p.anchor); err != nil {
		return dest.Platform, err
	}
	if p.side != "" {
		if err := b.cases.SetAnchor(ctx, p.ref, p.side, ref); err != nil {
			return dest.Platform, fmt.Errorf("set %s anchor of %s: %w", p.side, p.ref, err)
		}
	}
	return dest.Platform, nil
}

// classify wraps an adapter error with its kind, pausing the channel on a 429.
func (b *Bot) classify(p Platform, channel string, err error) error {
	kind, after := Classify(err)
	if kind == RateLimited {
		b.pacer.pause(p, channel, after)
	}
	return &rowError{kind: kind, after: after, platform: p, err: err}
}

// refreshStats keeps the outbox gauges current. (Inbound keys are pruned
// by inbound.go.)
func (b *Bot) refreshStats(ctx context.Context) {
	every := max(b.cfg.Delivery.Poll, time.Second)
	for {
		s, err := outbox.ReadStats(ctx, b.db)
		if err == nil {
			b.m.depth.Set(float64(s.Pending))
			b.m.oldest.Set(s.OldestAge.Seconds())
			b.m.dead.Set(float64(s.Dead))
		} else if ctx.Err() == nil {
			b.log.Warn("read outbox stats", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// backoff is exponential in attempts, capped, with full jitter.
func backoff(base, maxWait time.Duration, attempts int) time.Duration {
	d := base
	for i := 1; i < attempts && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// pacer spaces sends per channel (Slack: about one message per second per
// channel) and holds a channel back after a 429 for its Retry-After. It is
// per process: several replicas share the platform's limit, and a 429 that
// gets through is retried as the platform asks.
type pacer struct {
	pace map[Platform]Pace
	mu   sync.Mutex
	lim  map[string]*rate.Limiter
	hold map[string]time.Time
}

func newPacer(pace map[Platform]Pace) *pacer {
	return &pacer{pace: pace, lim: map[string]*rate.Limiter{}, hold: map[string]time.Time{}}
}

func (p *pacer) wait(ctx context.Context, pl Platform, channel string) error {
	key := string(pl) + "/" + channel
	p.mu.Lock()
	l, ok := p.lim[key]
	if !ok {
		pc := p.pace[pl]
		lim := rate.Inf
		if pc.Every > 0 {
			lim = rate.Every(pc.Every)
		}
		l = rate.NewLimiter(lim, max(pc.Burst, 1))
		p.lim[key] = l
	}
	until := p.hold[key]
	p.mu.Unlock()
	if d := time.Until(until); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	if err := l.Wait(ctx); err != nil {
		return fmt.Errorf("pace channel %s: %w", channel, err)
	}
	return nil
}

func (p *pacer) pause(pl Platform, channel string, d time.Duration) {
	key := string(pl) + "/" + channel
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := time.Now().Add(d); t.After(p.hold[key]) {
		p.hold[key] = t
	}
}
