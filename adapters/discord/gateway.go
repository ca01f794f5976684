package discord

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/bot"
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.holdGateway(gctx)
	}()
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
		s := a.newSession()
		s.ShouldReconnectOnError = true
		evctx := context.WithoutCancel(ctx)
		s.AddHandler(func(_ *discordgo.Session, e *discordgo.Event) { a.onEvent(evctx, e) })
		s.AddHandler(func(*discordgo.Session, *discordgo.Connect) { a.m.connected.Set(1) })
		s.AddHandler(func(*discordgo.Session, *discordgo.Disconnect) { a.m.connected.Set(0) })
		if err := s.Open(); err != nil {
			a.log.Warn("gateway connection failed; retrying", "err", a.redact(err.Error()), "in", wait)
			_ = s.Close()
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

// onEvent handles gateway dispatches from their raw JSON.
func (a *Adapter) onEvent(ctx context.Context, e *discordgo.Event) {
	// discordgo runs handlers in bare goroutines: a panic would end the process.
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("panic while handling a gateway event", "event", e.Type, "panic", fmt.Sprint(p))
		}
	}()
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
		}
	case "THREAD_CREATE", "CHANNEL_CREATE", "THREAD_UPDATE", "CHANNEL_UPDATE":
		var c channelInfo
		if json.Unmarshal(e.RawData, &c) == nil {
			a.rememberChannel(c)
		}
	case "INTERACTION_CREATE":
		a.onGatewayInteraction(ctx, e.RawData)
	case "MESSAGE_CREATE":
		a.onMessage(ctx, e.RawData)
	}
}

// onMessage hands a human's message in a thread to the bot as a Reply whose
// Parent is the thread's anchor (thread id = anchor message id) in the
// thread's parent channel. Our own and every bot's or webhook's messages
// are ignored, as are system messages and messages outside threads.
func (a *Adapter) onMessage(ctx context.Context, raw []byte) {
	var m discordgo.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		a.log.Warn("bad MESSAGE_CREATE", "err", err)
		return
	}
	if m.Author == nil || m.Author.Bot || m.Author.System || m.WebhookID != "" || m.Author.ID == a.self() || m.GuildID == "" {
		return
	}
	if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
		return
	}
	c, err := a.channel(ctx, m.ChannelID)
	if err != nil {
		a.log.Warn("cannot tell whether a message is in a thread", "channel", m.ChannelID, "err", err)
		return
	}
	if !c.isThread() || c.ParentID == "" {
		return
	}
	text := m.Content
	for _, at := range m.Attachments {
		text += "\n" + at.Filename + ": " + at.URL
	}
	name := m.Author.GlobalName
	if m.Member != nil && m.Member.Nick != "" {
		name = m.Member.Nick
	}
	a.m.replies.Inc()
	a.h.HandleReply(ctx, bot.Reply{
		Parent:  bot.Ref{Platform: bot.Discord, Workspace: m.GuildID, Channel: c.ParentID, Message: m.ChannelID},
		Message: bot.Ref{Platform: bot.Discord, Workspace: m.GuildID, Channel: m.ChannelID, Message: m.ID},
		Author:  bot.User{Platform: bot.Discord, Workspace: m.GuildID, ID: m.Author.ID, DisplayName: cmp.Or(name, m.Author.Username)},
		Text:    strings.TrimSpace(text),
		Key:     "discord:msg:" + m.ID,
	})
}
