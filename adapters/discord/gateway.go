package discord

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// lockKey is the advisory lock that elects the gateway leader: one per
// application, so replicas of one bot share it.
func lockKey(appID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("threatdesk/discord-gateway/" + appID))
	return int64(h.Sum64())
}

// leaderLoop keeps trying to become the leader; the leader holds the
// gateway session for as long as its lock connection lives. The lock is a
// session advisory lock on a connection taken out of the pool for the
// purpose, so it dies with the process or the connection: another replica
// then takes over within LeaderCheck + LeaderGrace.
func (a *Adapter) leaderLoop(ctx context.Context) {
	var conn *pgx.Conn
	closeConn := func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = conn.Close(cctx)
			cancel()
			conn = nil
		}
	}
	defer closeConn()
	for ctx.Err() == nil {
		if conn == nil {
			pc, err := a.cfg.Pool.Acquire(ctx)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("leader election: no database connection", "err", err)
				}
				sleep(ctx, a.cfg.LeaderCheck)
				continue
			}
			conn = pc.Hijack()
		}
		var got bool
		qctx, cancel := context.WithTimeout(ctx, a.cfg.LeaderCheck+time.Second)
		err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", a.lockKey).Scan(&got)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("leader election: lock query failed", "err", err)
			}
			closeConn()
			sleep(ctx, a.cfg.LeaderCheck)
			continue
		}
		if !got {
			sleep(ctx, a.cfg.LeaderCheck)
			continue
		}
		a.lead(ctx, conn)
		// Closing the connection releases the lock, after the session closed.
		closeConn()
	}
}

// lead holds the gateway while the lock connection answers.
func (a *Adapter) lead(ctx context.Context, conn *pgx.Conn) {
	a.m.leader.Set(1)
	a.leading.Store(true)
	defer func() {
		a.m.leader.Set(0)
		a.leading.Store(false)
	}()
	a.log.Info("elected gateway leader; connecting after the grace period", "grace", a.cfg.LeaderGrace)
	alive := func() bool {
		qctx, cancel := context.WithTimeout(ctx, a.cfg.LeaderCheck)
		defer cancel()
		_, err := conn.Exec(qctx, "SELECT 1")
		return err == nil
	}
	// A previous leader cut off from the database notices within
	// 2*LeaderCheck and closes its session: do not overlap with it.
	deadline := time.Now().Add(a.cfg.LeaderGrace)
	for time.Now().Before(deadline) {
		if !sleep(ctx, min(a.cfg.LeaderCheck, time.Until(deadline))) || !alive() {
			return
		}
	}
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	if !a.life.Go("gateway session", func(context.Context) error {
		defer close(done)
		a.holdGateway(gctx)
		return nil
	}) {
		return // stopping
	}
	t := time.NewTicker(a.cfg.LeaderCheck)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-done:
			break loop
		case <-t.C:
			if !alive() {
				if ctx.Err() == nil {
					a.log.Warn("lost the leadership lock connection; closing the gateway session")
				}
				break loop
			}
		}
	}
	cancel()
	<-done
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// holdGateway opens a gateway session and keeps it until ctx ends; the
// session is closed before it returns. discordgo reconnects by itself.
func (a *Adapter) holdGateway(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		if left, reset, err := a.sessionStarts(ctx); err == nil && left == 0 {
			// Discord resets a bot's token past its session starts of the
			// day: none is tried before they are given again.
			a.log.Error("Discord allows this bot no more gateway session starts until the limit resets (session_start_limit); waiting",
				"in", reset)
			if !sleep(ctx, reset) {
				return
			}
			continue
		}
		s := a.newSession()
		s.ShouldReconnectOnError = true
		// Handlers run in the order the gateway sent the events (discordgo
		// otherwise starts a goroutine per event, and a disconnect could be
		// handled after the next session's READY and catch-up); dispatch
		// hands the slow ones to goroutines of their own.
		s.SyncEvents = true
		evctx := context.WithoutCancel(ctx)
		s.AddHandler(func(_ *discordgo.Session, e *discordgo.Event) { a.onEvent(evctx, e) })
		s.AddHandler(func(*discordgo.Session, *discordgo.Connect) { a.m.connected.Set(1) })
		s.AddHandler(func(*discordgo.Session, *discordgo.Disconnect) { a.m.connected.Set(0); a.sessionPaused() })
		if err := s.Open(); err != nil {
			_ = s.Close()
			if why, refused := gatewayRefused(err); refused {
				// Trying again at once would not change Discord's answer,
				// and Discord resets a bot's token after 1,000 IDENTIFYs
				// in a day: wait long, so that a fix in the Developer
				// Portal is still picked up without a restart.
				a.log.Error("Discord refused the gateway session: "+why+"; trying again later",
					"err", a.redact(err.Error()), "in", a.cfg.RefusedWait)
				if !sleep(ctx, a.cfg.RefusedWait) {
					return
				}
				continue
			}
			a.log.Warn("gateway connection failed; retrying", "err", a.redact(err.Error()), "in", wait)
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		a.log.Info("gateway session open")
		a.mu.Lock()
		a.gw = s
		a.mu.Unlock()
		<-ctx.Done()
		a.mu.Lock()
		a.gw = nil
		a.mu.Unlock()
		if err := s.Close(); err != nil {
			a.log.Debug("closing gateway session", "err", a.redact(err.Error()))
		}
		a.m.connected.Set(0)
		a.log.Info("gateway session closed")
		return
	}
}

// sessionStarts reads GET /gateway/bot's session_start_limit: how many
// IDENTIFYs are left, and when they are given again (at most a day; a
// minute at least, so that a wrong answer cannot spin).
func (a *Adapter) sessionStarts(ctx context.Context) (left int, reset time.Duration, err error) {
	body, err := a.do(ctx, "gateway session starts", http.MethodGet, discordgo.EndpointGatewayBot, discordgo.EndpointGatewayBot, nil)
	if err != nil {
		return 0, 0, err
	}
	var g struct {
		Limit struct {
			Remaining  int   `json:"remaining"`
			ResetAfter int64 `json:"reset_after"` // milliseconds
		} `json:"session_start_limit"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return 0, 0, fmt.Errorf("gateway session starts: decode: %w", err)
	}
	reset = min(max(time.Duration(g.Limit.ResetAfter)*time.Millisecond, time.Minute), 24*time.Hour)
	return g.Limit.Remaining, reset, nil
}

// gatewayRefused reports whether err is Discord closing the session for a
// reason that only a change of the bot's settings fixes, and says what.
func gatewayRefused(err error) (string, bool) {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return "", false
	}
	switch ce.Code {
	case 4004:
		return "authentication failed (4004): check DISCORD_BOT_TOKEN", true
	case 4013, 4014:
		return fmt.Sprintf("the intents were refused (%d): turn on the Message Content intent (Developer Portal, Bot, Privileged Gateway Intents)", ce.Code), true
	case 4010, 4011, 4012:
		return fmt.Sprintf("the session was refused (%d): see Discord's gateway close codes", ce.Code), true
	}
	return "", false
}

// onEvent handles gateway dispatches from their raw JSON, in the order
// they came (SyncEvents), inside the adapter's panic boundary: a panic in
// discordgo's goroutine would end the process.
func (a *Adapter) onEvent(ctx context.Context, e *discordgo.Event) {
	_ = a.toBot("gateway event "+e.Type, func() error {
		a.dispatch(ctx, e)
		return nil
	})
}

// async runs f (the work of event e) in a goroutine of its own, as work
// of the adapter (Stop waits for it), inside the panic boundary: what the
// session knows (READY, channels, the catch-up's marks) is kept in the
// events' order, and a slow interaction does not hold up the events after
// it. It reports false when the adapter has stopped.
func (a *Adapter) async(e *discordgo.Event, f func()) bool {
	return a.life.GoWork("gateway event "+e.Type, func(context.Context) error {
		_ = a.toBot("gateway event "+e.Type, func() error {
			f()
			return nil
		})
		return nil
	})
}

// inOrder runs f, the work of message event e, after the earlier message
// events of its channel, one at a time: a thread's messages, edits and
// deletions reach the bot in the order they came (goroutines of their own
// ran a later one first, which then moved the thread's mark), while other
// threads go on meanwhile.
func (a *Adapter) inOrder(e *discordgo.Event, f func()) {
	var head struct {
		ChannelID string `json:"channel_id"`
	}
	_ = json.Unmarshal(e.RawData, &head)
	ch := head.ChannelID
	a.qmu.Lock()
	q, draining := a.queues[ch]
	if !draining {
		if a.queues == nil {
			a.queues = map[string]*[]func(){}
		}
		q = &[]func(){}
		a.queues[ch] = q
	}
	*q = append(*q, f)
	a.qmu.Unlock()
	if draining {
		return
	}
	if !a.async(e, func() { a.drain(ch, q) }) {
		a.qmu.Lock()
		delete(a.queues, ch)
		a.qmu.Unlock()
	}
}

// drain runs the queued work of channel until none is left.
func (a *Adapter) drain(ch string, q *[]func()) {
	for {
		a.qmu.Lock()
		if len(*q) == 0 {
			delete(a.queues, ch)
			a.qmu.Unlock()
			return
		}
		f := (*q)[0]
		*q = (*q)[1:]
		a.qmu.Unlock()
		_ = a.toBot("gateway message event", func() error {
			f()
			return nil
		})
	}
}

// dispatch handles one gateway dispatch.
func (a *Adapter) dispatch(ctx context.Context, e *discordgo.Event) {
	switch e.Type {
	case "READY":
		var r struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		if json.Unmarshal(e.RawData, &r) == nil && r.User.ID != "" {
			a.setSelf(r.User.ID)
		}
		a.sessionStarted() // a new session: what it missed is not read yet
	case "RESUMED":
		a.sessionResumed() // Discord replayed what it missed
	case "GUILD_CREATE":
		var g struct {
			ID       string        `json:"id"`
			Channels []channelInfo `json:"channels"`
			Threads  []channelInfo `json:"threads"`
		}
		if json.Unmarshal(e.RawData, &g) == nil {
			for _, c := range append(g.Channels, g.Threads...) {
				c.GuildID = g.ID
				a.rememberChannel(c)
			}
			_ = a.async(e, func() { a.onGuildCreate(ctx, e.RawData) })
			a.catchUp(g.ID, g.Threads)
		}
	case "THREAD_CREATE", "CHANNEL_CREATE", "THREAD_UPDATE", "CHANNEL_UPDATE":
		var c channelInfo
		if json.Unmarshal(e.RawData, &c) == nil {
			a.rememberChannel(c)
		}
	case "INTERACTION_CREATE":
		_ = a.async(e, func() { a.onGatewayInteraction(ctx, e.RawData) })
	case "MESSAGE_CREATE":
		a.inOrder(e, func() { a.onMessage(ctx, e.RawData) })
	case "MESSAGE_UPDATE", "MESSAGE_DELETE":
		a.inOrder(e, func() { a.onChange(ctx, e.Type, e.RawData) })
	}
}

// onMessage hands a human's message in a thread to the bot as a Reply whose
// Parent is the thread's anchor (thread id = anchor message id) in the
// thread's parent channel. Our own and every bot's or webhook's messages
// are ignored, as are system messages and messages outside threads.
//
// The gateway never delivers an event twice, so a message that cannot be
// handed over now (its channel lookup was rate limited or failed, the bot
// could not store it) is kept and retried (retryReplies) rather than lost.
func (a *Adapter) onMessage(ctx context.Context, raw []byte) {
	var m discordgo.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		a.log.Warn("bad MESSAGE_CREATE", "err", err)
		return
	}
	if !a.human(&m) {
		return
	}
	a.handOverKept(ctx, &m)
}

// human reports whether m is a person's message in a guild: not ours, no
// other bot's or webhook's, no system message.
func (a *Adapter) human(m *discordgo.Message) bool {
	if m.Author == nil || m.Author.Bot || m.Author.System || m.WebhookID != "" || m.Author.ID == a.self() || m.GuildID == "" {
		return false
	}
	return m.Type == discordgo.MessageTypeDefault || m.Type == discordgo.MessageTypeReply
}

// forwarded is m's text and attachments; for a forwarded message, whose
// own content is empty, the forwarded message's (its snapshot: content,
// rich embeds' titles, descriptions and fields, attachments), marked as
// forwarded. A
// customer forwarding an alert into a case thread relayed nothing.
// https://discord.com/developers/docs/resources/message#message-snapshot-object
func forwarded(m *discordgo.Message) (string, []*discordgo.MessageAttachment) {
	text, atts := strings.TrimSpace(m.Content), m.Attachments
	if m.MessageReference == nil || m.MessageReference.Type != discordgo.MessageReferenceTypeForward {
		return text, atts
	}
	for _, snap := range m.MessageSnapshots {
		fw := snap.Message
		if fw == nil {
			continue
		}
		parts := []string{text, "(forwarded)", strings.TrimSpace(fw.Content)}
		for _, e := range fw.Embeds {
			// Rich embeds only (an alert bot's card): a link preview's words
			// are a web page's, not the message's.
			if e == nil || e.Type != "" && e.Type != discordgo.EmbedTypeRich {
				continue
			}
			parts = append(parts, strings.TrimSpace(e.Title), strings.TrimSpace(e.Description))
			for _, f := range e.Fields {
				if f != nil {
					parts = append(parts, strings.TrimSpace(f.Name+": "+f.Value))
				}
			}
		}
		text = strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "\n")
		atts = append(slices.Clip(atts), fw.Attachments...)
	}
	return text, atts
}

// handOver gives m to the bot when it is in a thread. An error is worth
// retrying unless bot.Classify says it is permanent.
func (a *Adapter) handOver(ctx context.Context, m *discordgo.Message) error {
	return a.handOverChange(ctx, m, "")
}

// handOverChange is handOver for a new message (change empty), an edit or
// a deletion (m then has its id, channel and guild only).
func (a *Adapter) handOverChange(ctx context.Context, m *discordgo.Message, change bot.ReplyChange) error {
	c, err := a.channel(ctx, m.ChannelID)
	if err != nil {
		return fmt.Errorf("cannot tell whether message %s is in a thread: %w", m.ID, err)
	}
	if !c.isThread() || c.ParentID == "" {
		return nil
	}
	var author bot.User
	if m.Author != nil {
		author = bot.User{Platform: bot.Discord, Workspace: m.GuildID, ID: m.Author.ID}
		// A message read back over REST (catchup.go) has no member: the bot
		// then asks UserName, which finds the server nickname.
		if m.Member != nil {
			author.DisplayName = cmp.Or(m.Member.Nick, m.Author.GlobalName, m.Author.Username)
		}
	}
	text, atts := forwarded(m)
	if err := a.toBot("thread reply", func() error {
		return a.h.HandleReply(ctx, bot.Reply{
			Parent:  bot.Ref{Platform: bot.Discord, Workspace: m.GuildID, Channel: c.ParentID, Message: m.ChannelID},
			Message: bot.Ref{Platform: bot.Discord, Workspace: m.GuildID, Channel: m.ChannelID, Message: m.ID},
			Author:  author,
			Text:    text,
			Key:     changeKey(m, change),
			Change:  change,
			// An older message of the thread still waiting here holds the
			// thread's mark back (catchup.go).
			HoldMark: change == "" && (a.waiting(m.ChannelID, m.ID, false) || !a.isReadThrough(m.ChannelID)),
			// Attachments become file samples; their CDN links are never relayed.
			Files: filesOf(atts),
		})
	}); err != nil {
		return fmt.Errorf("thread reply %s not taken by the bot: %w", m.ID, err)
	}
	a.m.replies.Inc()
	return nil
}

// Bounds of the replies kept for retrying: how many, and for how long.
const (
	maxPendingReplies  = 1000
	pendingReplyFor    = time.Hour
	pendingBackoffBase = 500 * time.Millisecond
	pendingBackoffMax  = 30 * time.Second
)

// pendingReply is a thread message not yet handed over.
type pendingReply struct {
	m        *discordgo.Message
	change   bot.ReplyChange
	since    time.Time
	next     time.Time
	attempts int
}

// keepReply queues m for retryReplies after err, or logs why it is dropped.
func (a *Adapter) keepReply(m *discordgo.Message, change bot.ReplyChange, err error) {
	if lifecycle.IsPanic(err) {
		// A bug (the stack is logged): retrying would only repeat it.
		a.m.lostReplies.Inc()
		a.log.Error("thread message dropped: handing it to the bot panicked", "message", m.ID, "channel", m.ChannelID, "err", err)
		return
	}
	kind, after := bot.Classify(err)
	if kind == bot.Permanent {
		a.m.lostReplies.Inc()
		a.log.Warn("thread message dropped: Discord says it cannot be read", "message", m.ID, "channel", m.ChannelID, "err", err)
		return
	}
	now := time.Now()
	a.mu.Lock()
	if len(a.pending) >= maxPendingReplies {
		old := a.pending[0]
		a.pending = a.pending[1:]
		delete(a.readThrough, old.m.ChannelID) // the next session reads it back
		a.m.lostReplies.Inc()
		a.log.Error("too many thread replies waiting to be handed to the bot: the oldest is dropped from memory, the next gateway session reads it back", "message", old.m.ID, "channel", old.m.ChannelID, "waiting", maxPendingReplies)
	}
	a.pending = append(a.pending, &pendingReply{m: m, change: change, since: now, next: now.Add(max(after, time.Second/4)), attempts: 1})
	n := len(a.pending)
	a.mu.Unlock()
	a.m.pendingReplies.Set(float64(n))
	a.log.Warn("thread reply kept to retry", "message", m.ID, "retry_in", max(after, time.Second/4), "err", err)
	select {
	case a.replyWake <- struct{}{}:
	default:
	}
}

// retryReplies hands kept replies to the bot until they are taken, waiting
// what a 429 asks or backing off, until ctx ends. A reply still not taken
// after pendingReplyFor is dropped, logged.
func (a *Adapter) retryReplies(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		a.mu.Lock()
		var due []*pendingReply
		next := time.Time{}
		now := time.Now()
		keep := a.pending[:0]
		for _, p := range a.pending {
			switch {
			case !p.next.After(now):
				due = append(due, p)
			default:
				keep = append(keep, p)
				if next.IsZero() || p.next.Before(next) {
					next = p.next
				}
			}
		}
		a.pending = keep
		a.retrying = append(a.retrying[:0], due...)
		a.mu.Unlock()
		for _, p := range due {
			if ctx.Err() != nil {
				a.requeue(p)
				continue
			}
			err := a.handOverChange(ctx, p.m, p.change)
			switch kind, after := bot.Classify(err); {
			case err == nil:
				a.retried()
			case lifecycle.IsPanic(err):
				a.retried()
				a.m.lostReplies.Inc()
				a.log.Error("thread message dropped: handing it to the bot panicked", "message", p.m.ID, "channel", p.m.ChannelID, "err", err)
			case kind == bot.Permanent:
				a.retried()
				a.m.lostReplies.Inc()
				a.log.Warn("thread message dropped: Discord says it cannot be read", "message", p.m.ID, "channel", p.m.ChannelID, "err", err)
			case time.Now().Sub(p.since) > pendingReplyFor:
				a.retried()
				a.unread(p.m.ChannelID) // the next session reads it back
				a.m.lostReplies.Inc()
				a.log.Error("thread reply not handed over after an hour of retries: the next gateway session reads it back", "message", p.m.ID, "channel", p.m.ChannelID, "attempts", p.attempts, "err", err)
			default:
				wait := min(pendingBackoffMax, pendingBackoffBase<<min(p.attempts-1, 6))
				if kind == bot.RateLimited && after > 0 {
					wait = after
				}
				p.attempts++
				p.next = time.Now().Add(wait)
				a.requeue(p)
			}
		}
		a.mu.Lock()
		n := len(a.pending)
		for _, p := range a.pending {
			if next.IsZero() || p.next.Before(next) {
				next = p.next
			}
		}
		a.mu.Unlock()
		a.m.pendingReplies.Set(float64(n))
		if ctx.Err() != nil {
			if n > 0 {
				a.log.Warn("stopping with thread replies not handed to the bot: the next gateway session reads them back", "count", n)
			}
			return
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(0, next.Sub(time.Now()))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
		case <-a.replyWake:
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// retried takes the first of the replies being retried off a.retrying:
// it was handed over or given up.
func (a *Adapter) retried() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.retrying) > 0 {
		a.retrying = a.retrying[1:]
	}
}

// track counts m as being handed over (waiting) until untrack: a newer
// message of its thread handed over meanwhile holds the thread's mark.
func (a *Adapter) track(m *discordgo.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = append(a.inflight, &pendingReply{m: m})
}

func (a *Adapter) untrack(m *discordgo.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = slices.DeleteFunc(a.inflight, func(p *pendingReply) bool { return p.m == m })
}

// handOverKept hands m over, keeping it to retry on failure; while it is
// handed over it holds newer messages' marks.
func (a *Adapter) handOverKept(ctx context.Context, m *discordgo.Message) {
	a.track(m)
	defer a.untrack(m) // after keepReply: it is in pending by then
	if err := a.handOver(ctx, m); err != nil {
		a.keepReply(m, "", err)
	}
}

// waiting reports whether a new message of channel (a thread) whose id is
// below upTo (at or below, with inclusive) is waiting to be handed to the
// bot, or being retried.
func (a *Adapter) waiting(channel, upTo string, inclusive bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range slices.Concat(a.pending, a.retrying, a.inflight) {
		if p.m.ChannelID != channel || p.change != "" {
			continue
		}
		if c := compareSnowflakes(p.m.ID, upTo); c < 0 || inclusive && c == 0 {
			return true
		}
	}
	return false
}

// requeue puts p, taken out to be retried, back to wait, in one step (so
// that it never looks handed over meanwhile).
func (a *Adapter) requeue(p *pendingReply) {
	a.mu.Lock()
	a.pending = append(a.pending, p)
	a.retrying = slices.DeleteFunc(a.retrying, func(r *pendingReply) bool { return r == p })
	a.mu.Unlock()
}
