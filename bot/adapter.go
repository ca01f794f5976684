// Package bot is threatdesk's platform-neutral core: it turns inbound chat
// events (commands, button presses, form submissions, thread replies) into
// casework and hunting calls, checks permissions and tenancy, and renders
// the domain events those calls record in the outbox into platform-neutral
// messages that delivery workers send through the adapters.
//
// bot owns the small interfaces it consumes (Adapter); adapters/slack and
// adapters/discord implement them and import bot, never the reverse. It also
// owns what it needs from the domains (Cases, Incidents), with shims over
// casework and hunting (NewCaseworkCases, NewHuntingIncidents).
//
// Wiring, in cmd/threatdesk:
//
//	b, err := bot.New(cfg, pool, bot.NewCaseworkCases(cases), bot.NewHuntingIncidents(hunt), log, reg)
//	err = b.Register(slackAdapter)   // one adapter per platform, before Start
//	err = b.UseSamples(bot.NewCaseworkSamples(cases), webHandler.Links()) // file samples in chat (samples.go)
//	err = b.Start(ctx)               // delivery and inbound workers: LISTEN/NOTIFY + polling
//	// adapters call b (a Handler) for every inbound event, and use b.Seen as their replay cache
//	defer b.Stop()                   // idempotent; waits for in-flight work
//	// with reports.digest set, on every replica (queued once per week whatever runs):
//	d, err := bot.NewDigestScheduler(cfg.Reports, bot.NewCaseworkCases(cases), pool, log, reg)
//
// Inbound work is durable (inbound.go): every command, button, form or case
// thread reply with work to do is stored in bot_inbound, in the insert that
// also deduplicates it, before the adapter acknowledges it, and is worked
// from there with retries on any replica; its answer goes through a
// Responder the adapter rebuilds after a restart (Resumable, Resumer).
//
// Delivery is exactly once per message part where the platform lets the bot
// look: each part sent is recorded (bot_delivery) the moment the platform
// answers, and a retried event skips the parts already recorded. Before a
// post the worker also records that it is about to post (bot_attempt); a
// part whose earlier attempt has no answer on record (the process died, the
// connection dropped after the platform stored the message) is first looked
// for with Adapter.FindPosted, by its Dest.Key, and posted again only when it
// is not there. A part whose anchor (the card it edits or threads under)
// failed for good is dead, counted and logged, and the other side of a case
// is told once.
package bot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Adapter is what the bot needs from a chat platform.
type Adapter interface {
	// Platform names the platform this adapter speaks to.
	Platform() Platform
	// Post sends m to dest and returns the posted message's reference. It
	// carries dest.Key with the message where the platform can keep it
	// (Slack: message metadata; Discord: the nonce), for FindPosted.
	Post(ctx context.Context, dest Dest, m Message) (Ref, error)
	// FindPosted looks in dest (its channel, or the thread of dest.Thread)
	// for a message posted with dest.Key at or after since, and returns it.
	// The worker calls it only for a part whose earlier attempt may have
	// reached the platform without its answer coming back, before posting it
	// again. found is false when no such message is there; an adapter whose
	// platform deduplicates a re-post with the same key by itself (Discord's
	// enforced nonce) may always answer false.
	FindPosted(ctx context.Context, dest Dest, since time.Time) (ref Ref, found bool, err error)
	// Update replaces the message at ref with m.
	Update(ctx context.Context, ref Ref, m Message) error
	// PostPrivate shows m to one user only (Slack chat.postEphemeral; on
	// Discord, where only interactions can answer privately, a DM).
	PostPrivate(ctx context.Context, dest Dest, userID string, m Message) error
	// OpenForm opens f with a trigger from a command or action (Slack).
	OpenForm(ctx context.Context, trigger string, f Form) error
	// UserName returns a user's display name.
	UserName(ctx context.Context, workspace, userID string) (string, error)
}

// ErrorKind classifies a delivery failure.
type ErrorKind int

// Delivery failure kinds.
const (
	// Temporary failures (5xx, timeouts) are retried with backoff and jitter.
	Temporary ErrorKind = iota
	// RateLimited failures are retried after RetryAfter.
	RateLimited
	// Permanent failures (channel not found, bot not in channel, missing
	// permission, bad token) are not retried: the row goes dead.
	Permanent
)

// RetryMargin is added to every wait a platform asks for after a 429: its
// Retry-After counts from when it sent the answer, clients round it (to
// whole milliseconds, whole seconds), and a retry a moment early is refused
// again.
const RetryMargin = 200 * time.Millisecond

// DeliveryError is how adapters report a failed Post or Update.
type DeliveryError struct {
	Kind       ErrorKind
	RetryAfter time.Duration
	// At is when the platform's answer arrived; RetryAfter counts from it.
	// RateLimitError sets it to the moment it is called, which adapters do
	// as soon as the answer is read. Zero: when the bot classifies the error.
	At time.Time
	// Code is the platform's error code ("not_in_channel", "50001").
	Code string
	// Operator says what an operator should do; never contains a secret.
	Operator string
	Err      error
}

func (e *DeliveryError) Error() string {
	msg := e.Code
	if e.Operator != "" {
		msg += ": " + e.Operator
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Classify returns the kind of err (Temporary when the adapter did not say),
// and the wait a rate limit asks for.
func Classify(err error) (ErrorKind, time.Duration) {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Kind, de.RetryAfter
	}
	return Temporary, 0
}

// Retry calls f until it succeeds, fails for good (Classify: Permanent)
// or has been called tries times, waiting between calls what a rate limit
// asks, else half a second doubling each time. It returns f's last error,
// or ctx's when ctx ends during a wait.
func Retry(ctx context.Context, tries int, f func() error) error {
	for try := 0; ; try++ {
		err := f()
		kind, wait := Classify(err)
		if err == nil || kind == Permanent || try >= tries-1 {
			return err
		}
		if !sleepCtx(ctx, max(wait, time.Second/2<<try)) {
			return ctx.Err()
		}
	}
}

// PermanentError builds a permanent DeliveryError.
func PermanentError(code, operator string, err error) error {
	return &DeliveryError{Kind: Permanent, Code: code, Operator: operator, Err: err}
}

// RateLimitError builds a rate-limit DeliveryError for an answer that just
// arrived (At is now): call it as soon as the 429 is read.
func RateLimitError(retryAfter time.Duration, err error) error {
	return &DeliveryError{Kind: RateLimited, RetryAfter: retryAfter, At: time.Now(), Code: "ratelimited",
		Err: fmt.Errorf("rate limited for %s: %w", retryAfter, err)}
}

// RetryAt is the earliest time a rate-limited call may be retried: the
// platform's wait counted from the answer's arrival, plus RetryMargin. It is
// zero for an error that is not a rate limit.
func RetryAt(err error) time.Time {
	var de *DeliveryError
	if !errors.As(err, &de) || de.Kind != RateLimited {
		return time.Time{}
	}
	at := de.At
	if at.IsZero() {
		at = time.Now()
	}
	return at.Add(de.RetryAfter + RetryMargin)
}
