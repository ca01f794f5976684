package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Catching up on threads. Slack retries an event it could not deliver for
// a few minutes only (https://docs.slack.dev/apis/events-api/#retries: at
// once, after a minute, after five); a reply posted in a case thread while
// every replica was down longer than that would never be relayed. When
// the adapter starts it reads each recent case thread after the newest
// message the bot took from it (conversations.replies, oldest=) and hands
// over what it missed, oldest first. One the bot already has is the same
// inbound work (a reply is keyed on its message), and casework keys a
// relayed message on the chat message and a sample on its file.

// threadLister is what a catch-up needs from the bot (bot.Bot has it).
type threadLister interface {
	CaseThreads(ctx context.Context, p bot.Platform, since time.Time, limit int) ([]bot.ThreadMark, error)
	MarkRead(ctx context.Context, parent bot.Ref, msg string)
}

const (
	// catchUpWithin and catchUpThreads bound the threads read back: those
	// of cases opened in the last 30 days, the newest 500.
	catchUpWithin  = 30 * 24 * time.Hour
	catchUpThreads = 500
	// catchUpPages bounds what one thread's catch-up reads (2,000
	// messages; 150 for a distributed app).
	catchUpPages = 10
	// catchUpPaced bounds the threads read back in one workspace when
	// reads are paced (history.go), the newest cases' first: 120 reads take
	// two hours at one a minute.
	catchUpPaced = 120
	// catchUpTries bounds the calls of one read that is rate limited or
	// fails for a while.
	catchUpTries = 6
)

// catchUp reads back the recent case threads (once, when the adapter
// starts) and hands over the replies Slack did not deliver.
func (a *Adapter) catchUp(ctx context.Context) {
	tl, ok := a.handler.(threadLister)
	if !ok {
		return
	}
	var threads []bot.ThreadMark
	err := bot.Retry(ctx, catchUpTries, func() error {
		return a.toBot("thread catch-up", func() error {
			var err error
			threads, err = tl.CaseThreads(ctx, bot.Slack, time.Now().Add(-catchUpWithin), catchUpThreads)
			return err
		})
	})
	if err != nil {
		// Marks stay held until the next start reads the threads.
		a.log.Warn("could not list the case threads to read back after starting", "err", err)
		return
	}
	// Each workspace reads at its own pace (its own allowance of reads),
	// its threads in the order listed.
	byTeam := map[string][]bot.ThreadMark{}
	var teams []string
	for _, t := range threads {
		team := a.team(ctx, t.Parent.Workspace)
		if _, ok := byTeam[team]; !ok {
			teams = append(teams, team)
		}
		byTeam[team] = append(byTeam[team], t)
	}
	var (
		mu     sync.Mutex
		n      int
		unread []bot.Ref
		wg     sync.WaitGroup
	)
	for _, team := range teams {
		wg.Go(func() {
			k, left := a.catchUpTeam(ctx, tl, team, byTeam[team])
			mu.Lock()
			n += k
			unread = append(unread, left...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	if n > 0 {
		a.log.Info("thread replies read back after starting", "replies", n)
	}
	for _, p := range unread {
		a.holdThread(p.Channel, p.Message)
	}
	a.caughtUp.Store(true)
}

// catchUpTeam reads back the threads of one workspace, and returns how
// many replies it handed over and the threads it could not read (their
// marks stay held until a later start reads them).
func (a *Adapter) catchUpTeam(ctx context.Context, tl threadLister, team string, threads []bot.ThreadMark) (n int, unread []bot.Ref) {
	if a.cfg.HistoryInterval > 0 && len(threads) > catchUpPaced {
		a.log.Warn("Slack allows this app one read of a thread a minute in a workspace: the older case threads are not read back after this start",
			"team", team, "threads", len(threads), "read", catchUpPaced)
		for _, t := range threads[catchUpPaced:] {
			unread = append(unread, t.Parent)
		}
		threads = threads[:catchUpPaced]
	}
	for _, t := range threads {
		if ctx.Err() != nil {
			return n, unread
		}
		k, err := a.catchUpThread(ctx, tl, team, t)
		n += k
		if kind, _ := bot.Classify(err); err != nil && kind != bot.Permanent {
			unread = append(unread, t.Parent)
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("could not read back a case thread after starting", "channel", t.Parent.Channel, "thread", t.Parent.Message, "err", err)
		}
	}
	return n, unread
}

// holdThread makes replies in the thread ts of channel hold its mark from
// now on: one of them could not be stored.
func (a *Adapter) holdThread(channel, ts string) {
	a.unreadMu.Lock()
	defer a.unreadMu.Unlock()
	if a.unread == nil {
		a.unread = map[string]bool{}
	}
	a.unread[channel+"/"+ts] = true
}

// holdsMark reports whether a reply in the thread ts of channel must hold
// the thread's mark: the threads are not read back since the adapter
// started, or this one could not be.
func (a *Adapter) holdsMark(channel, ts string) bool {
	if !a.caughtUp.Load() {
		return true
	}
	a.unreadMu.Lock()
	defer a.unreadMu.Unlock()
	return a.unread[channel+"/"+ts]
}

// catchUpThread hands over the replies in the thread of t after t.After,
// and returns how many.
func (a *Adapter) catchUpThread(ctx context.Context, tl threadLister, team string, t bot.ThreadMark) (int, error) {
	api, err := a.client(ctx, t.Parent.Workspace)
	if err != nil {
		return 0, err
	}
	// A message read back carries its author's workspace (team), as a live
	// event does; it counts only in a channel shared by Slack Connect
	// (authorTeam), which conversations.info tells and a reply read back
	// does not.
	var ext bool
	if err := bot.Retry(ctx, catchUpTries, func() error {
		ext, err = a.sharedChannel(ctx, t.Parent.Workspace, t.Parent.Channel) // kept a while: asked once a channel
		return err
	}); err != nil {
		return 0, err
	}
	n, cursor := 0, ""
	for range catchUpPages {
		var msgs []messageEvent
		var next string
		err := bot.Retry(ctx, catchUpTries, func() error {
			// A lookup for a delivery goes first (history.go).
			if err := a.history.wait(ctx, team, "conversations.replies"); err != nil {
				return err
			}
			page, nx, err := a.historyPage(ctx, api, t.Parent.Channel, &t.Parent, t.After, cursor)
			msgs, next = asEvents(page), nx
			return err
		})
		if err != nil {
			return n, err
		}
		for _, me := range msgs {
			if me.TS == t.Parent.Message {
				continue // conversations.replies starts with the thread's parent
			}
			me.Type, me.Channel = "message", t.Parent.Channel
			reply, ok := a.reply(ctx, outerEvent{TeamID: t.Parent.Workspace, IsExtShared: ext}, me)
			if !ok {
				continue
			}
			if err := a.toBot("thread reply", func() error { return a.handler.HandleReply(ctx, reply) }); err != nil {
				return n, fmt.Errorf("hand over reply %s: %w", me.TS, err)
			}
			n++
			a.metrics.caughtUp.Inc()
		}
		// Read through the page (every reply in it handed over, the rest
		// not for the bot): the next catch-up starts after it. The parent,
		// listed first whatever the window, is not read through.
		if len(msgs) > 0 && msgs[len(msgs)-1].TS != t.Parent.Message {
			last := msgs[len(msgs)-1].TS
			_ = a.toBot("thread catch-up", func() error { tl.MarkRead(ctx, t.Parent, last); return nil })
		}
		if next == "" {
			return n, nil
		}
		cursor = next
	}
	return n, fmt.Errorf("more than %d messages to read back: the rest waits for the next start", catchUpPages*a.cfg.historyPageSize())
}

// asEvents reads messages as conversations.replies lists them into the
// message events they would have arrived as (the same fields, the same
// names).
func asEvents(page []slack.Message) []messageEvent {
	out := make([]messageEvent, 0, len(page))
	for _, m := range page {
		raw, err := json.Marshal(m.Msg)
		if err != nil {
			continue
		}
		var me messageEvent
		if json.Unmarshal(raw, &me) == nil {
			out = append(out, me)
		}
	}
	return out
}
