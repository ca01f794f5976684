package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Greetings (issue 14, item 14): when threatdesk is invited to a channel
// (Slack member_joined_channel of its own user), joins a Discord guild, a
// person opens its App Home (Slack), or a person runs /experts help for the
// first time, it says in three lines what it does and the first command to
// try. Each is said once: bot_greeted (migrations/0015) remembers where and
// to whom, durably, on every replica. A channel's or guild's greeting is an
// outbox event written in the transaction that records it, so it is posted
// exactly once.

// GreetingKind is what made threatdesk introduce itself.
type GreetingKind string

// Greeting kinds.
const (
	// GreetInvited: threatdesk was added to Channel (Slack).
	GreetInvited GreetingKind = "invited"
	// GreetGuild: threatdesk joined the guild Workspace (Discord);
	// Channel, when set, is the guild's system channel.
	GreetGuild GreetingKind = "guild"
	// GreetHome: User opened threatdesk's App Home (Slack).
	GreetHome GreetingKind = "home"
)

// Greeting is an occasion to introduce threatdesk.
type Greeting struct {
	Kind      GreetingKind
	Platform  Platform
	Workspace string
	Channel   string
	User      string
}

// Greeter is the bot's side of greetings: adapters that see one of the
// occasions call it (when their handler implements it). It returns an
// error only when the occasion could not be recorded: the adapter then
// does not acknowledge it, so that the platform delivers it again.
type Greeter interface {
	HandleGreeting(ctx context.Context, g Greeting) error
}

// HomePublisher is implemented by adapters whose platform has a home view
// per person (Slack App Home: views.publish).
type HomePublisher interface {
	PublishHome(ctx context.Context, workspace, userID string, m Message) error
}

var _ Greeter = (*Bot)(nil)

// kindGreeting is the outbox event of a channel's or guild's greeting.
const kindGreeting = "bot.greeting"

// greetingEvent is kindGreeting's payload.
type greetingEvent struct {
	Dest Dest `json:"dest"`
}

// introLines are the three lines: what threatdesk does, and what to try.
func introLines() []Line {
	return []Line{
		{B("threatdesk"), T(" gives your SOC a line to threat experts: ask about an alert, a device, a file or an incident, and an expert answers in the thread of your question.")},
		{T("It also posts one notification per targeted attack in your SOC channel and keeps it up to date, and shows every case's status and SLA.")},
		{T("Try "), Span{Text: `/experts ask "is this PowerShell on ws-017 malicious?"`, Style: StyleCode}, T(" in your SOC channel, or "), Span{Text: "/experts help", Style: StyleCode}, T(" for everything you can do.")},
	}
}

// introMessage is the greeting as a message.
func introMessage() Message {
	return Message{Title: "Hello from threatdesk", Text: introLines(), Fallback: "threatdesk: ask a threat expert with /experts ask"}
}

// HandleGreeting implements Greeter.
func (b *Bot) HandleGreeting(ctx context.Context, g Greeting) error {
	b = b.current()
	switch g.Kind {
	case GreetInvited:
		if g.Channel == "" {
			return nil
		}
		return b.greetPlace(ctx, "channel", g.Channel, Dest{Platform: g.Platform, Workspace: g.Workspace, Channel: g.Channel})
	case GreetGuild:
		d := b.guildDest(g)
		if d.Channel == "" {
			b.log.Info("joined a guild with no channel to greet in", "guild", g.Workspace)
			return nil
		}
		return b.greetPlace(ctx, "guild", g.Workspace, d)
	case GreetHome:
		hp, ok := b.publisher(g.Platform)
		if !ok || g.User == "" {
			return nil
		}
		id := g.Workspace + ":" + g.User
		first, err := b.recordGreeted(ctx, g.Platform, "home", id)
		if err != nil || !first {
			return err
		}
		if !b.goBackground("publish home", b.cfg.Delivery.CallTimeout, func(ctx context.Context) {
			if err := hp.PublishHome(ctx, g.Workspace, g.User, introMessage()); err != nil {
				b.log.Warn("could not publish the App Home; it is tried again when it is next opened", "err", err)
				b.forgetGreeted(context.WithoutCancel(ctx), g.Platform, "home", id)
			}
		}) {
			b.forgetGreeted(ctx, g.Platform, "home", id)
		}
		return nil
	}
	return nil
}

func (b *Bot) publisher(p Platform) (HomePublisher, bool) {
	a, ok := b.adapter(p)
	if !ok {
		return nil, false
	}
	hp, ok := a.(HomePublisher)
	return hp, ok
}

// guildDest is where a guild is greeted: the channel of an org there (or
// the desk's, in the desk's guild), else the guild's system channel.
func (b *Bot) guildDest(g Greeting) Dest {
	for i := range b.cfg.Orgs {
		if pl := b.cfg.Orgs[i].place(g.Platform); pl != nil && pl.Workspace == g.Workspace && len(pl.Channels) > 0 {
			return Dest{Platform: g.Platform, Workspace: g.Workspace, Channel: pl.Channels[0]}
		}
	}
	if d := b.cfg.Desk.DeskDest(); d.Platform == g.Platform && d.Workspace == g.Workspace {
		return d
	}
	return Dest{Platform: g.Platform, Workspace: g.Workspace, Channel: g.Channel}
}

// greetPlace records that the place (a channel, a guild) is greeted and, the
// first time, posts the greeting: both in one transaction.
func (b *Bot) greetPlace(ctx context.Context, scope, id string, d Dest) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("greet %s %s: %w", scope, id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, `INSERT INTO bot_greeted (platform, scope, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, string(d.Platform), scope, id)
	if err != nil {
		return fmt.Errorf("greet %s %s: %w", scope, id, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // greeted before
	}
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindGreeting, Stream: "greeting:" + string(d.Platform) + ":" + d.Channel,
		Payload: greetingEvent{Dest: d}}); err != nil {
		return fmt.Errorf("greet %s %s: %w", scope, id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("greet %s %s: commit: %w", scope, id, err)
	}
	return nil
}

// recordGreeted records a greeting to id and reports whether it is the
// first, on the connections kept for acknowledgements.
func (b *Bot) recordGreeted(ctx context.Context, p Platform, scope, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Inbound.StoreTimeout)
	defer cancel()
	tag, err := b.storeExec(ctx, `INSERT INTO bot_greeted (platform, scope, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, string(p), scope, id)
	if err != nil {
		return false, fmt.Errorf("record a greeting: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (b *Bot) forgetGreeted(ctx context.Context, p Platform, scope, id string) {
	if _, err := b.db.Exec(ctx, `DELETE FROM bot_greeted WHERE platform = $1 AND scope = $2 AND id = $3`, string(p), scope, id); err != nil {
		b.log.Warn("could not forget a greeting that was not shown", "err", err)
	}
}

// firstHelp prepends the three lines to the help of someone who asks for it
// the first time. When the database cannot say, the help is shown alone.
func (b *Bot) firstHelp(ctx context.Context, u User, help Message) Message {
	first, err := b.recordGreeted(ctx, u.Platform, "user", u.Workspace+":"+u.ID)
	if err != nil {
		b.log.Warn("could not tell whether this is someone's first help", "err", err)
		return help
	}
	if !first {
		return help
	}
	help.Text = append(introLines(), help.Text...)
	return help
}

// renderGreeting renders kindGreeting; ok is false for other kinds.
func (b *Bot) renderGreeting(kind string, payload json.RawMessage) ([]part, bool, error) {
	if kind != kindGreeting {
		return nil, false, nil
	}
	var ev greetingEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", kind, err)}
	}
	if ev.Dest.Channel == "" {
		return nil, true, &rowError{kind: Permanent, err: errors.New("greeting without a channel")}
	}
	return []part{{key: "greeting", dest: ev.Dest, msg: introMessage()}}, true, nil
}
