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
