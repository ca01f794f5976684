package bot

import (
	"context"
	"errors"
	"fmt"
)

// Direct messages and links to a card. An outbox event may render parts
// that go to one person (a part with dm): the delivery worker opens the
// bot's direct conversation with them when it sends the part, and posts
// there like anywhere else (recorded, never twice). A part with link gets a
// link to one of its stream's anchors (the desk card) added when it is sent,
// once that card is posted.
//
// A person who cannot be reached (they block direct messages, their account
// is deactivated, their platform is not enabled) is logged, counted
// (threatdesk_bot_direct_messages_total{result="unreachable"}) and skipped:
// the rest of the event is delivered, and the part is not tried again.

// DirectMessenger is what the bot needs from an adapter to send direct
// messages. Adapters that implement it (Slack: conversations.open; Discord:
// POST /users/@me/channels) get DM parts; for others the person counts as
// unreachable.
type DirectMessenger interface {
	// OpenDirect returns the channel of the bot's direct conversation with
	// userID (opening it if needed). A person who cannot be reached gets an
	// error that wraps ErrUnreachable.
	OpenDirect(ctx context.Context, workspace, userID string) (channel string, err error)
}

// Permalinker is what the bot needs from an adapter to link to a message
// (Slack chat.getPermalink; Discord https://discord.com/channels/…).
type Permalinker interface {
	// Permalink returns a URL that opens the message at ref.
	Permalink(ctx context.Context, ref Ref) (string, error)
}

// ErrUnreachable is wrapped by adapters' errors for a person a direct
// message cannot reach (Slack user_not_found, user_disabled; Discord 50007
// "Cannot send messages to this user"). Such a part is skipped, not retried.
var ErrUnreachable = errors.New("the person cannot be reached by direct message")

// UnreachableError builds the permanent error of a person a direct message
// cannot reach: code is the platform's, operator what it means.
func UnreachableError(code, operator string, err error) error {
	return &DeliveryError{Kind: Permanent, Code: code, Operator: operator, Err: fmt.Errorf("%w: %w", ErrUnreachable, err)}
}

// recipient is one person a direct message goes to.
type recipient struct {
	platform  Platform
	workspace string
	id        string
}

func (r recipient) String() string { return string(r.platform) + ":" + r.id }

// prepareDirect adds the link a part asks for and, for a direct message,
// opens the conversation and points the part's dest at it.
func (b *Bot) prepareDirect(ctx context.Context, st *rowSend, p part) (part, error) {
	if p.link != "" {
		ref, err := b.anchorFor(ctx, st.row, p.link)
		if _, dead := errors.AsType[*anchorDeadError](err); err != nil && !dead {
			return p, err // not posted yet: wait for it
		}
		if err == nil {
			url, err := b.permalink(ctx, ref)
			if err != nil {
				return p, err
			}
			if url != "" {
				p.msg = withLink(p.msg, p.linkLabel, url)
			}
		}
	}
	if p.dm == nil {
		return p, nil
	}
	to := *p.dm
	a, ok := b.adapter(to.platform)
	if !ok {
		return p, UnreachableError("platform_not_enabled", "threatdesk has no "+string(to.platform)+" connection", fmt.Errorf("direct message to %s", to))
	}
	dm, ok := a.(DirectMessenger)
	if !ok {
		return p, UnreachableError("unsupported", "the "+string(to.platform)+" adapter cannot send direct messages", fmt.Errorf("direct message to %s", to))
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	ch, err := dm.OpenDirect(cctx, to.workspace, to.id)
	cancel()
	if err != nil {
		return p, b.classify(to.platform, "", fmt.Errorf("open a direct message with %s: %w", to, err))
	}
	p.dest = Dest{Platform: to.platform, Workspace: to.workspace, Channel: ch}
	return p, nil
}

// permalink returns a URL of the message at ref, or "" when the platform
// cannot give one for good (the part then goes without it); a temporary
// failure is returned, and the part is tried again.
func (b *Bot) permalink(ctx context.Context, ref Ref) (string, error) {
	a, ok := b.adapter(ref.Platform)
	if !ok {
		return "", nil
	}
	pl, ok := a.(Permalinker)
	if !ok {
		return "", nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	url, err := pl.Permalink(cctx, ref)
	cancel()
	if err == nil {
		return url, nil
	}
	err = b.classify(ref.Platform, ref.Channel, fmt.Errorf("link to message %s in %s: %w", ref.Message, ref.Channel, err))
	if kind, _ := partKind(err); kind == Permanent {
		b.log.Warn("no link to the card: sending the direct message without it", "err", err)
		return "", nil
	}
	return "", err
}

// withLink returns m with a last line linking label to url.
func withLink(m Message, label, url string) Message {
	m.Text = append(append([]Line(nil), m.Text...), Line{L(label, url)})
	return m
}

// isUnreachable reports whether err says the person of a direct message
// cannot be reached.
func isUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// skipDirect records a direct message part whose person cannot be reached
// as done (so a retry of the row skips it), and logs and counts it.
func (b *Bot) skipDirect(ctx context.Context, st *rowSend, p part, err error) error {
	to := *p.dm
	b.m.direct.WithLabelValues(string(to.platform), "unreachable").Inc()
	b.log.Warn("a direct message was not delivered: the person cannot be reached (they may block direct messages, or their account is gone); the rest of the event is delivered",
		"outbox_id", st.row.ID, "kind", st.row.Kind, "part", p.key, "to", to.String(), "reason", err)
	return b.recordSent(context.WithoutCancel(ctx), st.row.ID, p.key, Ref{Platform: to.platform}, "", "")
}

// directSent counts a direct message delivered.
func (b *Bot) directSent(p part) {
	if p.dm != nil {
		b.m.direct.WithLabelValues(string(p.dm.platform), "sent").Inc()
	}
}
