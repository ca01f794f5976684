package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// Catching up on threads. The gateway replays what a session missed only
// when it resumes; a new session (after a restart, a crash, a reconnect
// that could not resume, a move of the gateway to another replica) starts
// from now, and a reply posted in a case thread meanwhile would never be
// relayed. Each new session's GUILD_CREATE lists the guild's active
// threads: for each that hangs off a case's receipt or desk card, the
// messages after the newest the bot took from it are read back
// (GET /channels/{thread}/messages?after=) and handed over, oldest first.
// One the bot already has is kept once by its inbound key and casework's
// chat key.

// replyMarker is what a catch-up needs from the bot (bot.Bot has it): whether
// a thread's replies are relayed, and after which message to read.
type replyMarker interface {
	ReplyMark(ctx context.Context, parent bot.Ref) (after string, ok bool, err error)
	MarkRead(ctx context.Context, parent bot.Ref, msg string)
}

const (
	// catchUpPage is Discord's most messages a read returns.
	catchUpPage = 100
	// catchUpPages bounds what one thread's catch-up reads (5,000
	// messages); a thread that busy is caught up again on the next session.
	catchUpPages = 50
	// catchUpTries bounds the calls of one read that is rate limited or
	// fails for a while.
	catchUpTries = 6
)

// catchUp reads back, in the background, what the active threads of guild
// received while no session was connected.
func (a *Adapter) catchUp(guild string, threads []channelInfo) {
	rm, ok := a.h.(replyMarker)
	if !ok || len(threads) == 0 {
		return
	}
	// A live reply in a thread not read through yet holds its mark; the
	// job reads for this session only.
	a.mu.Lock()
	gen := a.gen
	a.mu.Unlock()
	a.life.GoWork("thread catch-up", func(ctx context.Context) error {
		// One guild at a time (sessions come and go; guilds arrive
		// together), paced by the REST rate limits.
		a.catchUpMu.Lock()
		defer a.catchUpMu.Unlock()
		n := 0
		for _, t := range threads {
			if ctx.Err() != nil {
				break
			}
			if !t.isThread() || t.ParentID == "" {
				continue
			}
			k, err := a.catchUpThread(ctx, gen, rm, guild, t)
			n += k
			if err != nil && ctx.Err() == nil {
				// Not read through: its mark stays where it is until a
				// later session reads it.
				a.log.Warn("could not read back a thread's messages after a new gateway session", "thread", t.ID, "err", err)
			}
		}
		if n > 0 {
			a.log.Info("thread messages read back after a new gateway session", "guild", guild, "messages", n)
		}
		return nil
	})
}

// catchUpThread hands over the human messages of thread t after the bot's
// mark, and returns how many.
func (a *Adapter) catchUpThread(ctx context.Context, gen int, rm replyMarker, guild string, t channelInfo) (int, error) {
	parent := bot.Ref{Platform: bot.Discord, Workspace: guild, Channel: t.ParentID, Message: t.ID}
	var after string
	var ok bool
	err := a.toBot("thread catch-up", func() error {
		var err error
		after, ok, err = rm.ReplyMark(ctx, parent)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !ok {
		a.markReadThrough(gen, t.ID) // no case's: nothing to read back
		return 0, nil
	}
	n := 0
	for range catchUpPages {
		ms, err := a.messagesAfter(ctx, t.ID, after)
		if err != nil {
			return n, err
		}
		for _, m := range ms {
			m.GuildID = guild // not in REST messages
			after = m.ID
			if !a.human(m) {
				continue
			}
			n++
			a.m.caughtUp.Inc()
			a.handOverKept(ctx, m)
		}
		final := len(ms) < catchUpPage
		if final {
			// Read through: live replies move its mark again (one that
			// failed here holds it while it waits).
			a.markReadThrough(gen, t.ID)
		}
		// Read through the page: the next catch-up starts after it, past
		// what is not for the bot too, unless a message of the thread is
		// still waiting to be handed over.
		if len(ms) > 0 && !a.waiting(t.ID, after, true) {
			_ = a.toBot("thread catch-up", func() error { rm.MarkRead(ctx, parent, after); return nil })
		}
		if final {
			return n, nil
		}
	}
	return n, fmt.Errorf("more than %d messages to read back: the rest waits for the next session", catchUpPages*catchUpPage)
}

// messagesAfter reads up to catchUpPage messages of channel after the
// message after, oldest first, waiting out rate limits and brief failures.
func (a *Adapter) messagesAfter(ctx context.Context, channel, after string) ([]*discordgo.Message, error) {
	q := url.Values{"after": {after}, "limit": {strconv.Itoa(catchUpPage)}}
	ep := discordgo.EndpointChannelMessages(channel)
	var body []byte
	err := bot.Retry(ctx, catchUpTries, func() error {
		var err error
		// Its own bucket: reading a thread must not hold posts into it up.
		body, err = a.do(ctx, "read thread messages", http.MethodGet, ep+"?"+q.Encode(), http.MethodGet+" "+ep, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the messages of thread %s after %s: %w", channel, after, err)
	}
	var ms []*discordgo.Message
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("read the messages of thread %s: %w", channel, err)
	}
	// Discord lists them newest first; ids (snowflakes) grow with time.
	slices.SortFunc(ms, func(x, y *discordgo.Message) int { return compareSnowflakes(x.ID, y.ID) })
	return ms, nil
}

// compareSnowflakes orders two Discord ids by value (shorter is smaller).
func compareSnowflakes(x, y string) int {
	if len(x) != len(y) {
		return len(x) - len(y)
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// sessionPaused sets the threads read through aside while the gateway is
// disconnected: messages may come that the session has not seen. A
// catch-up still running reads for a session that is over (gen).
func (a *Adapter) sessionPaused() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	if len(a.readThrough) > 0 {
		a.paused = a.readThrough
	}
	a.readThrough = map[string]bool{}
}

// sessionResumed takes them back: a resumed session gets every event it
// missed replayed.
func (a *Adapter) sessionResumed() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.readThrough == nil {
		a.readThrough = map[string]bool{}
	}
	for t := range a.paused {
		a.readThrough[t] = true
	}
	a.paused = nil
}

// sessionStarted drops them: a new session (READY) may have missed
// messages in any thread, which its catch-up reads back.
func (a *Adapter) sessionStarted() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paused = nil
}

// markReadThrough records thread as read through by the catch-up of
// session gen, if that is still the session.
func (a *Adapter) markReadThrough(gen int, thread string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen != gen {
		return
	}
	if a.readThrough == nil {
		a.readThrough = map[string]bool{}
	}
	a.readThrough[thread] = true
}

// unread forgets that thread was read through: a message of it was given
// up, for the next session's catch-up to read back.
func (a *Adapter) unread(thread string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.readThrough, thread)
}

// isReadThrough reports whether this session has seen every message of
// thread.
func (a *Adapter) isReadThrough(thread string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.readThrough[thread]
}
