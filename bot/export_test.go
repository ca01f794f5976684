package bot

import "context"

// Internals the external tests (package bot_test, which may import
// bot/bottest) reach for.
var (
	Tokenize = tokenize
	CutRunes = cut
)

// DeliverBatch claims and delivers one batch, as a worker does.
func (b *Bot) DeliverBatch(ctx context.Context) (int, error) { return b.deliverBatch(ctx) }

// CrashAfterAck makes the bot store and acknowledge inbound events but never
// work on them, as a process that dies right after each acknowledgement:
// their rows keep this process's lease until it runs out.
func (b *Bot) CrashAfterAck() { b.holdInbound.Store(true) }

// PruneInbound forgets old inbound keys, as the hourly housekeeping does.
func (b *Bot) PruneInbound(ctx context.Context) { b.pruneInbound(ctx) }
