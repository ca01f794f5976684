package bot

import (
	"context"
	"strings"
	"time"
)

// Replies of one thread are stored as they come and each is worked on its
// own, so a slow step for one (its author's name looked up, its files
// fetched) let the next one overtake it: the other side read a burst out
// of order. Before a reply is relayed, awaitEarlier waits for the replies
// written before it in its thread that are being worked now.

// replyOrderWait bounds that wait: an earlier reply that takes longer
// (failing, retried later) is overtaken rather than holding the thread.
const replyOrderWait = 5 * time.Second

// replyOrderPoll is how soon the wait looks again, doubled after each
// look up to replyOrderPollMax: a burst of replies waiting in one thread
// must not crowd the database the earlier ones need.
const (
	replyOrderPoll    = 20 * time.Millisecond
	replyOrderPollMax = 320 * time.Millisecond
)

// awaitEarlier returns once no reply written before r in r's thread is
// being worked (stored and held by a live lease, not yet settled), or
// after replyOrderWait. Edits and deletions do not wait and are not
// waited for: they change a relay already made.
func (b *Bot) awaitEarlier(ctx context.Context, r Reply) {
	if r.Change != "" {
		return
	}
	deadline := time.Now().Add(replyOrderWait)
	for poll := replyOrderPoll; ; poll = min(2*poll, replyOrderPollMax) {
		earlier, err := b.earlierInThread(ctx, r)
		if err != nil {
			b.log.Warn("could not look for earlier replies of the thread; relaying this one now", "err", err)
			return
		}
		if !earlier || time.Now().After(deadline) || !sleepCtx(ctx, poll) {
			return
		}
	}
}

// earlierInThread reports whether a reply written before r in its thread
// is being worked now.
func (b *Bot) earlierInThread(ctx context.Context, r Reply) (bool, error) {
	rows, err := b.db.Query(ctx, `
SELECT payload->'reply'->'Message'->>'Message' FROM bot_inbound
WHERE done_at IS NULL AND dead_at IS NULL AND kind = 'reply' AND locked_until > now()
  AND payload->'reply'->>'Change' IS NULL
  AND payload->'reply'->'Parent'->>'Platform' = $1 AND payload->'reply'->'Parent'->>'Channel' = $2
  AND payload->'reply'->'Parent'->>'Message' = $3`, string(r.Parent.Platform), r.Parent.Channel, r.Parent.Message)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var id *string
		if err := rows.Scan(&id); err != nil {
			return false, err
		}
		if id != nil && chatBefore(*id, r.Message.Message) {
			return true, nil
		}
	}
	return false, rows.Err()
}

// chatBefore reports whether message id a was written before b in the same
// thread. Slack ts ("1700000000.000100") and Discord snowflakes are
// numbers that grow with time: the integer parts compare by length, then
// digit by digit, and then the fractions.
func chatBefore(a, b string) bool {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	if len(ai) != len(bi) {
		return len(ai) < len(bi)
	}
	if ai != bi {
		return ai < bi
	}
	return af < bf
}
