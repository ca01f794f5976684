package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/outbox"
)

// part is one chat operation an outbox event renders to. Parts run in order;
// each one sent is recorded (bot_delivery) before the next, so a retried
// event resumes after the last part that went out. Before a post is sent
// the attempt is recorded (bot_attempt), so that a retry after a lost answer
// looks for the message (Adapter.FindPosted) instead of posting it twice.
type part struct {
	key string
	// Exactly one of dest, thread or update says where the message goes.
	dest   Dest   // post here
	thread string // post into the thread of this stream's anchor for target
	update string // edit this stream's anchor for target
	msg    Message
	// anchor, on a post, makes the posted message the stream's anchor for
	// this target (bot_anchor, the one record of which message is a case's
	// receipt or desk card, or an incident's notification).
	anchor string
	// relayOf, on a relayed thread message, is where it came from: its
	// edits and deletion follow it (bot_relay, edits.go).
	relayOf *relaySource
	// dm, instead of a place, sends msg to one person by direct message
	// (direct.go); link adds a line linking linkLabel to this stream's
	// anchor for that target when the part is sent.
	dm        *recipient
	link      string
	linkLabel string
	// pin, on a post, pins the posted message (reload.go).
	pin bool
	// org, on a part for an org's side (a case's receipt, an incident's
	// notification: posted, threaded under or edited), is that org: a
	// channel a reload gave to another org gets none of it (stillTheirs).
	org string
}

// ownedBy marks the parts of ps that go to org's side of a case or
// incident as org's.
func ownedBy(ps []part, org string) {
	for i := range ps {
		switch targetReceipt {
		case ps[i].thread, ps[i].update, ps[i].anchor:
			ps[i].org = org
		}
		switch targetNotification {
		case ps[i].thread, ps[i].update, ps[i].anchor:
			ps[i].org = org
		}
	}
}

// stillTheirs refuses, for good, a part of an org's side going to a
// channel the config now gives to another org, and a part of the desk's
// side (a desk card, its thread, a sightings or approval message: every
// org's cases, and what experts see across orgs) going to a channel the
// config now gives to any org: a reload that moved a channel must not
// carry them into an org's view. Whose a channel is does not depend on
// the workspace: a channel shared by Slack Connect has one id in all of
// them. A channel no org lists any more still gets them (its threads are
// the org's own, or the desk's).
func (b *Bot) stillTheirs(p part, where Ref) error {
	owner := p.org
	if owner == "" && deskSide(p) {
		owner = "the expert desk"
	}
	if owner == "" {
		return nil
	}
	o, ok := b.cfg.channelOwner(where.Platform, where.Channel)
	if !ok || o.ID == p.org {
		return nil
	}
	again := "list the channel under " + owner + " again to resume"
	if p.org == "" {
		again = "make it the desk's channel again to resume"
	}
	return &rowError{kind: Permanent, platform: where.Platform, err: fmt.Errorf(
		"part %s of %s goes to channel %s, which the config now gives to org %s: not sent there (%s)",
		p.key, owner, where.Channel, o.ID, again)}
}

// deskSide reports whether p goes to (or under, or edits) a message of
// the expert desk's.
func deskSide(p part) bool {
	for _, t := range [...]string{p.update, p.thread, p.anchor} {
		switch t {
		case targetDesk, targetSightings, targetApproval:
			return true
		}
	}
	return false
}

// rowError is a failed delivery with what to do about it.
type rowError struct {
	kind  ErrorKind
	after time.Duration
	// until, on a rate limit, is the earliest time to try again (RetryAt).
	until    time.Time
	platform Platform
	err      error
	// dead counts the parts already known dead when a row none of whose
	// parts could be sent goes dead (0 counts as 1).
	dead int
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// anchorDeadError is a part that edits or threads under an anchor that
// failed for good: it can never be sent.
type anchorDeadError struct {
	stream, target string
	info           deadAnchorInfo
}

func (e *anchorDeadError) Error() string {
	return fmt.Sprintf("the %s of %s failed for good, so this part can never be sent: %s", anchorLabel(e.target), e.stream, e.info.reason)
}

// partKey is the idempotency key of part of row id (Dest.Key): the same row
// and part always carry the same key.
func partKey(id int64, part string) string {
	return "td" + strconv.FormatInt(id, 36) + "." + part
}

// startWorkers runs the listener, the workers and the stats refresher.
func (b *Bot) startWorkers() {
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
	b.life.Go("outbox listener", func(ctx context.Context) error {
		b.listen(ctx, wakeAll)
		return nil
	})
	b.life.Go("outbox stats", func(ctx context.Context) error {
		b.refreshStats(ctx)
		return nil
	})
	for i := range d.Workers {
		b.life.Go("delivery worker "+strconv.Itoa(i), func(ctx context.Context) error {
			b.work(ctx, i, wakes[i])
			return nil
		})
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
				if ctx.Err() == nil { // stopping cuts the claim short: no failure
					log.Error("outbox claim failed", "err", err)
				}
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
	for i, row := range rows {
		if ctx.Err() != nil {
			// Stopping: the rows not begun go back at once, or their lease
			// would hold them (and the rest of their streams) on every
			// rolling restart. The row in flight keeps its lease: its post
			// may still land, and a lookup after the lease sees it.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := outbox.Release(rctx, b.db, rows[i:]); err != nil {
				b.log.Warn("could not give back outbox rows while stopping; they wait for their lease", "rows", len(rows)-i, "err", err)
			}
			cancel()
			break
		}
		b.deliverRow(ctx, deadline, row)
	}
	return len(rows), nil
}

// deliverRow renders and sends one row, then settles it: delivered, retried
// later, or dead.
func (b *Bot) deliverRow(ctx context.Context, deadline time.Time, row outbox.Row) {
	b = b.current()
	defer b.afterRow()
	log := b.log.With("outbox_id", row.ID, "kind", row.Kind, "stream", row.Stream, "attempt", row.Attempts)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	var platform Platform
	err := b.guard("outbox row "+row.Kind, func() (err error) {
		platform, err = b.sendRow(rctx, row)
		return err
	})
	expired := rctx.Err() != nil
	cancel()
	if lifecycle.IsPanic(err) {
		// A bug, which another attempt would only repeat: dead, for an
		// operator (the stack is logged).
		err = &rowError{kind: Permanent, platform: platform, err: err}
	} else if ctx.Err() != nil {
		// Shutting down: the lease runs out and another worker resumes it.
		return
	}
	var re *rowError
	if err != nil && expired && !(errors.As(err, &re) && re.kind == RateLimited && !re.until.IsZero()) {
		// Out of lease time (pacing, a slow platform): give the row back;
		// the parts sent are recorded and will be skipped. A rate limit
		// keeps its own time.
		err = &rowError{kind: Temporary, after: time.Second, platform: platform, err: fmt.Errorf("out of lease time: %w", err)}
	}
	settle := context.WithoutCancel(ctx)
	if err == nil {
		if err := outbox.Delivered(settle, b.db, row); errors.Is(err, outbox.ErrClaimLost) {
			log.Warn("an outbox row was claimed again after this worker's lease ran out; its new claimer finishes it, skipping the parts sent", "err", err)
		} else if err != nil {
			log.Error("could not mark an outbox row delivered; it will be resumed and its sent parts skipped", "err", err)
		}
		b.m.deliveries.WithLabelValues(string(platform), "delivered").Inc()
		return
	}
	kind, after := Classify(err)
	until := RetryAt(err)
	dead := 1
	if errors.As(err, &re) {
		kind, after, until, platform = re.kind, re.after, re.until, re.platform
		dead = max(re.dead, 1)
	}
	d := b.cfg.Delivery
	switch {
	case kind == Permanent:
		b.markDead(settle, log, row, platform, dead, "permanent failure: "+err.Error())
	case row.Attempts >= d.MaxAttempts:
		b.markDead(settle, log, row, platform, dead, fmt.Sprintf("gave up after %d attempts: %v", row.Attempts, err))
	case kind == RateLimited:
		// The platform's wait counts from its answer's arrival (until);
		// the row is due again no earlier.
		wait := after
		if !until.IsZero() {
			wait = max(time.Until(until), 0)
		} else if wait <= 0 {
			wait = time.Second + RetryMargin // a 429 without Retry-After
		}
		b.retry(settle, log, row, wait, "rate limited: "+err.Error())
		b.m.deliveries.WithLabelValues(string(platform), "rate_limited").Inc()
		log.Warn("rate limited; retrying after the platform's wait", "retry_in", wait, "err", err)
	default:
		wait := backoff(d.BackoffBase, d.BackoffMax, row.Attempts)
		if after > 0 {
			wait = after
		}
		b.retry(settle, log, row, wait, err.Error())
		b.m.deliveries.WithLabelValues(string(platform), "retry").Inc()
		log.Warn("delivery failed; retrying with backoff", "retry_in", wait, "err", err)
	}
}

// retry settles a row to be tried again after wait.
func (b *Bot) retry(ctx context.Context, log *slog.Logger, row outbox.Row, wait time.Duration, reason string) {
	if e := outbox.Retry(ctx, b.db, row, wait, reason); errors.Is(e, outbox.ErrClaimLost) {
		log.Warn("an outbox row was claimed again after this worker's lease ran out; its new claimer settles it", "err", e)
	} else if e != nil {
		log.Error("could not reschedule an outbox row", "err", e)
	}
}

// markDead settles a row as dead, counting parts dead parts.
func (b *Bot) markDead(ctx context.Context, log *slog.Logger, row outbox.Row, platform Platform, parts int, reason string) {
	if e := outbox.Dead(ctx, b.db, row, reason); errors.Is(e, outbox.ErrClaimLost) {
		log.Warn("an outbox row was claimed again after this worker's lease ran out; its new claimer settles it", "err", e)
		return
	} else if e != nil {
		log.Error("could not mark an outbox row dead", "err", e)
	}
	b.m.deliveries.WithLabelValues(string(platform), "dead").Add(float64(parts))
	log.Error("outbox row is dead: an operator must act", "reason", reason)
}

// rowSend is one attempt at a row, with what earlier attempts left.
type rowSend struct {
	row outbox.Row
	// done are the parts recorded as sent.
	done map[string]Ref
	// tried are the parts whose post started and has no recorded outcome,
	// with when the first such attempt started.
	tried map[string]time.Time
	// last is set on the row's last attempt: what still fails is dead.
	last bool
}

// sendRow renders row and sends the parts not yet sent. A part that can
// never be sent is dead (counted and logged) and does not hold up the
// others; when it is an anchor, or needs an anchor that failed for good, the
// other side of the case is told once.
func (b *Bot) sendRow(ctx context.Context, row outbox.Row) (Platform, error) {
	parts, err := b.render(ctx, row)
	if err != nil {
		return "", err
	}
	st := &rowSend{row: row, done: map[string]Ref{}, tried: map[string]time.Time{}, last: row.Attempts >= b.cfg.Delivery.MaxAttempts}
	if row.Attempts > 1 {
		// Only a row claimed before can have parts already sent or tried.
		if st.done, err = b.delivered(ctx, row.ID); err != nil {
			return "", err
		}
		if st.tried, err = b.attempts(ctx, row.ID); err != nil {
			return "", err
		}
	}
	var last Platform
	var failed []partFailure
	deadSides := map[string]deadAnchorInfo{}
	sent := 0
	// send sends one part; a non-nil error stops the row to be resumed later.
	send := func(p part) error {
		if _, ok := st.done[p.key]; ok {
			// Sent before a crash or a failed later part: never twice. Its
			// anchor was recorded with it, in one transaction.
			return nil
		}
		plat, err := b.sendPart(ctx, st, p)
		if plat != "" {
			last = plat
		}
		if err == nil {
			sent++
			b.directSent(p)
			return nil
		}
		if p.dm != nil && isUnreachable(err) {
			// One person cannot be reached: skipped, the rest goes on.
			return b.skipDirect(ctx, st, p, err)
		}
		// A part that can never be sent (the org's receipt deleted, the
		// bot removed from one channel, its card never posted) must not
		// starve the others: the desk still hears about the case, and the
		// other way round. Anything that may succeed later stops here and
		// is resumed.
		f, err := b.failPart(ctx, st, p, plat, err)
		if err != nil {
			return err
		}
		failed = append(failed, f)
		if f.side != "" {
			deadSides[f.side] = f.info
		}
		return nil
	}
	for _, p := range parts {
		if err := send(p); err != nil {
			return last, err
		}
	}
	if err := b.recoverTried(ctx, st, parts); err != nil {
		return last, err
	}
	for _, target := range slices.Sorted(maps.Keys(deadSides)) {
		n, ok, err := b.notice(ctx, st, target, deadSides[target])
		if err != nil {
			return last, err
		}
		if ok {
			if err := send(n); err != nil {
				return last, err
			}
		}
	}
	if len(failed) > 0 && sent == 0 && len(st.done) == 0 {
		// Nothing went out: the whole row is dead.
		return last, &rowError{kind: Permanent, platform: failed[0].platform, dead: len(failed),
			err: fmt.Errorf("no part could be sent: %w", failed[0].err)}
	}
	for _, f := range failed {
		b.m.deliveries.WithLabelValues(string(f.platform), "dead").Inc()
		b.log.Error("a message part is dead; the rest of the event was delivered: an operator must act",
			"outbox_id", row.ID, "kind", row.Kind, "stream", row.Stream, "part", f.key, "reason", f.err)
	}
	return last, nil
}

// recoverTried looks for the parts an earlier attempt posted without the
// answer coming back which this attempt did not render at all (a part
// that depends on a lookup, left off when the lookup fails): found, each is
// recorded all the same, or its stream would post it again on its next
// event.
func (b *Bot) recoverTried(ctx context.Context, st *rowSend, parts []part) error {
	for _, key := range slices.Sorted(maps.Keys(st.tried)) {
		if _, ok := st.done[key]; ok || slices.ContainsFunc(parts, func(p part) bool { return p.key == key }) {
			continue
		}
		p, ok := b.leftOffPart(key)
		if !ok {
			continue
		}
		a, ok := b.adapter(p.dest.Platform)
		if !ok {
			return &rowError{kind: Temporary, platform: p.dest.Platform, err: fmt.Errorf("no %s adapter registered", p.dest.Platform)}
		}
		dest := p.dest
		dest.Key = partKey(st.row.ID, key)
		ref, found, err := b.findPosted(ctx, a, dest, st.tried[key])
		if err != nil {
			// Best effort: the row's own parts went out, and a search that
			// failed must not hold them back. The attempt mark stays for
			// the next attempt of this row, if there is one.
			b.log.Warn("could not look for a part an earlier attempt may have posted", "outbox_id", st.row.ID, "part", key, "err", err)
			continue
		}
		if found {
			b.log.Info("an earlier attempt had posted a part this attempt left off; recorded it",
				"outbox_id", st.row.ID, "part", key, "channel", dest.Channel, "message", ref.Message)
			if err := b.posted(ctx, st.row, p, dest, ref, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// leftOffPart is, for the key of a part an attempt may leave off, where
// that part is posted and the anchor it becomes.
func (b *Bot) leftOffPart(key string) (part, bool) {
	if key == sightingsPartKey {
		return part{key: key, dest: b.cfg.Desk.DeskDest(), anchor: targetSightings}, true
	}
	return part{}, false
}

// partFailure is a part of a row that can never be sent.
type partFailure struct {
	platform Platform
	key      string
	err      error
	// side is the anchor target that failed for good with it, if any.
	side string
	info deadAnchorInfo
}

// failPart decides what a part's failure means: the part is dead (a
// partFailure), or the error stops the row, which is retried.
func (b *Bot) failPart(ctx context.Context, st *rowSend, p part, plat Platform, err error) (partFailure, error) {
	if ad, ok := errors.AsType[*anchorDeadError](err); ok {
		return partFailure{platform: plat, key: p.key, err: err, side: ad.target, info: ad.info}, nil
	}
	kind, _ := partKind(err)
	_, fromPlatform := errors.AsType[*rowError](err)
	switch {
	case kind == Permanent:
	case st.last && fromPlatform:
		err = fmt.Errorf("gave up after %d attempts: %w", st.row.Attempts, err)
	default:
		return partFailure{}, err
	}
	f := partFailure{platform: plat, key: p.key, err: err}
	if p.anchor != "" {
		info := deadAnchorInfo{reason: err.Error()}
		if de, ok := errors.AsType[*DeliveryError](err); ok {
			info.code = de.Code
		}
		info, e := b.recordDeadAnchor(ctx, st.row.Stream, p.anchor, st.row.ID, info)
		if e != nil {
			return partFailure{}, e
		}
		f.side, f.info = p.anchor, info
	}
	return f, nil
}

// partKind classifies a part's failure as settle does.
func partKind(err error) (ErrorKind, time.Duration) {
	var re *rowError
	if errors.As(err, &re) {
		return re.kind, re.after
	}
	return Classify(err)
}

// anchorFor returns the anchor of row's stream for target. When it is
// missing, the part waits for it (a Temporary error) while an earlier event
// of the stream may still post it, and is dead (anchorDeadError) once it
// failed for good.
func (b *Bot) anchorFor(ctx context.Context, row outbox.Row, target string) (Ref, error) {
	ref, ok, err := b.anchorOf(ctx, row.Stream, target)
	if err != nil || ok {
		return ref, err
	}
	info, dead, err := b.anchorFate(ctx, row, target)
	if err != nil {
		return Ref{}, err
	}
	if !dead {
		return Ref{}, &rowError{kind: Temporary, err: fmt.Errorf("the %s of %s is not posted yet: waiting for it", anchorLabel(target), row.Stream)}
	}
	return Ref{}, &anchorDeadError{stream: row.Stream, target: target, info: info}
}

// anchorFate tells a missing anchor that may still come from one that
// never will. Anchors are posted by earlier events of the same stream: when
// it is not recorded dead and an earlier event is still pending it may come;
// when every earlier event is settled it never will, and is recorded dead.
func (b *Bot) anchorFate(ctx context.Context, row outbox.Row, target string) (deadAnchorInfo, bool, error) {
	if info, ok, err := b.deadAnchor(ctx, row.Stream, target); err != nil || ok {
		return info, ok, err
	}
	pending, deadReason, err := b.earlierRows(ctx, row)
	if err != nil || pending {
		return deadAnchorInfo{}, false, err
	}
	info := deadAnchorInfo{reason: "it was never posted"}
	if deadReason != "" {
		info.reason = "its event went dead: " + deadReason
	}
	info, err = b.recordDeadAnchor(ctx, row.Stream, target, row.ID, info)
	return info, err == nil, err
}

// anchorLabel names an anchor target for people.
func anchorLabel(target string) string {
	switch target {
	case targetDesk:
		return "desk card"
	case targetReceipt:
		return "receipt"
	case targetNotification:
		return "notification card"
	}
	return target + " card"
}

// otherSide returns the anchor on the other side of a case from target,
// and who reads target's side; ok is false where there is no other side
// (an incident's notification).
func otherSide(target string) (other, reader string, ok bool) {
	switch target {
	case targetDesk:
		return targetReceipt, "the desk", true
	case targetReceipt:
		return targetDesk, "the requester", true
	}
	return "", "", false
}

// notice returns the part that tells the other side of a case that target's
// side failed for good, when this row is the one to carry it (once per dead
// anchor).
func (b *Bot) notice(ctx context.Context, st *rowSend, target string, info deadAnchorInfo) (part, bool, error) {
	other, reader, ok := otherSide(target)
	if !ok {
		return part{}, false, nil
	}
	claimed, err := b.claimNotice(ctx, st.row.Stream, target, st.row.ID)
	if err != nil || !claimed {
		return part{}, false, err
	}
	line := Line{B("A message could not be delivered to " + reader + ": "), T("the case's card could not be posted there")}
	if info.code != "" {
		line = append(line, T(" ("), U(info.code), T(")"))
	}
	line = append(line, T(". Later messages in this thread cannot reach "+reader+" either; an operator has been alerted."))
	return part{key: "notice." + target, thread: other, msg: note(line...)}, true, nil
}

func (b *Bot) sendPart(ctx context.Context, st *rowSend, p part) (Platform, error) {
	d := b.cfg.Delivery
	row := st.row
	if p.dm != nil || p.link != "" {
		var err error
		if p, err = b.prepareDirect(ctx, st, p); err != nil {
			if p.dm != nil {
				return p.dm.platform, err
			}
			return "", err
		}
	}
	dest := p.dest
	switch {
	case p.update != "":
		ref, err := b.anchorFor(ctx, row, p.update)
		if err != nil {
			return "", err
		}
		if err := b.stillTheirs(p, ref); err != nil {
			return ref.Platform, err
		}
		a, ok := b.adapter(ref.Platform)
		if !ok {
			return ref.Platform, &rowError{kind: Temporary, platform: ref.Platform, err: fmt.Errorf("no %s adapter registered", ref.Platform)}
		}
		digest := shownDigest(p.msg)
		same, err := b.anchorShows(ctx, row.Stream, p.update, digest)
		if err != nil {
			return ref.Platform, err
		}
		if same {
			// It shows this already: an edit would change nothing but
			// Discord's "(edited)" mark and the channel's rate limit.
			return ref.Platform, b.recordSent(ctx, row.ID, p.key, ref, "", "")
		}
		// Unknown from here until the edit is answered: an edit applied
		// whose answer is lost must not leave the older digest standing.
		if err := b.setAnchorShown(ctx, row.Stream, p.update, nil); err != nil {
			return ref.Platform, err
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
		// What it shows first, then the delivery: a crash in between finds
		// the edit made and records it without another call.
		if err := b.setAnchorShown(context.WithoutCancel(ctx), row.Stream, p.update, digest); err != nil {
			return ref.Platform, err
		}
		return ref.Platform, b.recordSent(ctx, row.ID, p.key, ref, "", "")
	case p.thread != "":
		ref, err := b.anchorFor(ctx, row, p.thread)
		if err != nil {
			return "", err
		}
		dest = Dest{Platform: ref.Platform, Workspace: ref.Workspace, Channel: ref.Channel, Thread: &ref}
	}
	if err := b.stillTheirs(p, Ref{Platform: dest.Platform, Workspace: dest.Workspace, Channel: dest.Channel}); err != nil {
		return dest.Platform, err
	}
	if dest.Channel == "" {
		return dest.Platform, &rowError{kind: Permanent, platform: dest.Platform,
			err: fmt.Errorf("part %s has no channel: check the org's and the desk's channels in the config", p.key)}
	}
	a, ok := b.adapter(dest.Platform)
	if !ok {
		return dest.Platform, &rowError{kind: Temporary, platform: dest.Platform, err: fmt.Errorf("no %s adapter registered", dest.Platform)}
	}
	dest.Key = partKey(row.ID, p.key)
	if since, ok := st.tried[p.key]; ok {
		// An earlier attempt may have reached the platform without its
		// answer coming back: look before posting again.
		ref, found, err := b.findPosted(ctx, a, dest, since)
		if err != nil {
			return dest.Platform, err
		}
		if found {
			b.log.Info("an earlier attempt had posted this part without its answer coming back; recorded it instead of posting again",
				"outbox_id", row.ID, "part", p.key, "channel", dest.Channel, "message", ref.Message)
			return dest.Platform, b.posted(ctx, row, p, dest, ref, false)
		}
	}
	if err := b.pacer.wait(ctx, dest.Platform, dest.Channel); err != nil {
		return dest.Platform, err
	}
	// From here until its delivery is recorded the outcome is unknown: a
	// crash or a lost answer leaves this mark for the next attempt.
	if err := b.markAttempt(ctx, row.ID, p.key); err != nil {
		return dest.Platform, err
	}
	cctx, cancel := context.WithTimeout(ctx, d.CallTimeout)
	ref, err := a.Post(cctx, dest, p.msg)
	cancel()
	if err != nil {
		err = b.classify(dest.Platform, dest.Channel, fmt.Errorf("post %s to %s: %w", p.key, dest.Channel, err))
		if kind, _ := partKind(err); kind == RateLimited || kind == Permanent {
			// The platform answered with a refusal: nothing was posted.
			if e := b.clearAttempt(context.WithoutCancel(ctx), row.ID, p.key); e != nil {
				b.log.Warn("could not clear an attempt mark; the next attempt looks for the message first", "err", e)
			}
		}
		return dest.Platform, err
	}
	// Only a first attempt knows what the message shows: after an earlier
	// one, the platform may have answered with the message that attempt
	// posted (Discord's nonce), rendered from an older state.
	_, retried := st.tried[p.key]
	return dest.Platform, b.posted(ctx, row, p, dest, ref, !retried)
}

// posted settles a posted part, then pins it when it asks to be. shows
// says the message shows p.msg (it was posted by this attempt, the first);
// a message found again, or returned for an earlier attempt's, may show
// an older render.
func (b *Bot) posted(ctx context.Context, row outbox.Row, p part, dest Dest, ref Ref, shows bool) error {
	if err := b.settlePost(ctx, row, p, dest, ref, shows); err != nil {
		return err
	}
	b.pinPosted(ctx, p, ref)
	return nil
}

// findPosted asks the adapter for a part an earlier attempt may have posted.
// When the platform cannot be searched for good (a missing history scope),
// the part is posted again, at the risk of a duplicate, rather than never.
func (b *Bot) findPosted(ctx context.Context, a Adapter, dest Dest, since time.Time) (Ref, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	ref, found, err := a.FindPosted(cctx, dest, since)
	cancel()
	if err == nil {
		return ref, found, nil
	}
	err = b.classify(dest.Platform, dest.Channel, fmt.Errorf("look for %s in %s: %w", dest.Key, dest.Channel, err))
	if kind, _ := partKind(err); kind == Permanent {
		b.log.Warn("cannot look for a part an earlier attempt may have posted; posting it again, which may show it twice",
			"key", dest.Key, "channel", dest.Channel, "err", err)
		return Ref{}, false, nil
	}
	return Ref{}, false, err
}

// settlePost records a posted part (and the anchor it makes) before anything
// else can fail: this is the window that could otherwise duplicate it.
func (b *Bot) settlePost(ctx context.Context, row outbox.Row, p part, dest Dest, ref Ref, shows bool) error {
	if ref.Platform == "" {
		ref.Platform = dest.Platform
	}
	if ref.Channel == "" {
		ref.Channel = dest.Channel
	}
	if p.relayOf != nil {
		// Before the delivery record: a failure here retries the part,
		// which finds the post (FindPosted) and records both.
		if err := b.recordRelay(context.WithoutCancel(ctx), row.Stream, p.thread, *p.relayOf, ref); err != nil {
			return err
		}
	}
	if err := b.recordSent(context.WithoutCancel(ctx), row.ID, p.key, ref, row.Stream, p.anchor); err != nil {
		return err
	}
	if p.anchor != "" && shows {
		// Best effort: unknown, the next edit of it is simply sent.
		if err := b.setAnchorShown(context.WithoutCancel(ctx), row.Stream, p.anchor, shownDigest(p.msg)); err != nil {
			b.log.Warn("could not record what a posted message shows; its next edit is sent whatever it shows", "stream", row.Stream, "err", err)
		}
	}
	return nil
}

// classify wraps an adapter error with its kind; a 429 holds the channel
// back until RetryAt (the platform's wait from the answer's arrival, plus
// RetryMargin).
func (b *Bot) classify(p Platform, channel string, err error) error {
	kind, after := Classify(err)
	re := &rowError{kind: kind, after: after, platform: p, err: err}
	if kind == RateLimited {
		re.until = RetryAt(err)
		b.pacer.pauseUntil(p, channel, re.until)
	}
	return re
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
// channel) and holds a channel back after a 429 until its RetryAt. It is
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
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			// Held past this attempt's time: give the row back for then
			// rather than sleep through its lease.
			return &rowError{kind: RateLimited, until: until, platform: pl,
				err: fmt.Errorf("channel %s is rate limited for another %s", channel, d.Round(time.Millisecond))}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := l.Wait(ctx); err != nil {
		return fmt.Errorf("pace channel %s: %w", channel, err)
	}
	return nil
}

// pauseUntil holds a channel back until t.
func (p *pacer) pauseUntil(pl Platform, channel string, t time.Time) {
	key := string(pl) + "/" + channel
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.After(p.hold[key]) {
		p.hold[key] = t
	}
}
