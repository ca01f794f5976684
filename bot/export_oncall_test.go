package bot

import "time"

// SetClock sets the bot's clock (default time.Now), as casework's Config.Now
// sets casework's, so both agree on "now" in a test. Set it before Start.
func (b *Bot) SetClock(now func() time.Time) { b.now = now }

// Internals the on-call tests reach for.
var (
	Duration = duration
	Zoned    = zoned
)
