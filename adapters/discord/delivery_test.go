package discord_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// TestRetryAfterCountsFromThe429: Discord answers the receipt's create with
// 429 and a fractional retry_after (which discordgo reads to the whole
// millisecond below). No create reaches the channel before retry_after has
// passed since Discord sent the 429, plus the bot's margin (measured on the
// fake's own clock; the margin absorbs the rounding).
func TestRetryAfterCountsFromThe429(t *testing.T) {
	t.Parallel()
	f := newFlow(t, false)
	const retryAfter = 290500 * time.Microsecond
	path := "/channels/" + channelID + "/messages"
	f.dfake.Fail(http.MethodPost, path, http.StatusTooManyRequests, retryAfter, 1)
	in, _ := f.command(analystID, channelID, "ask", map[string]any{"question": "is this beacon normal?"})
	f.wait("the analyst is told the case is open", f.answered(in, "EOD-1"))
	f.wait("the receipt posted after the 429", f.has(channelID, "EOD-1"))
	var creates []int
	calls := f.dfake.CallsTo(http.MethodPost, path)
	for i, c := range calls {
		if c.Path == path {
			creates = append(creates, i)
		}
	}
	require.GreaterOrEqual(t, len(creates), 2)
	first, retry := calls[creates[0]], calls[creates[1]]
	require.Equal(t, http.StatusTooManyRequests, first.Status)
	gap := retry.Received.Sub(first.At)
	t.Logf("the retry reached the fake %s after the 429 was sent", gap)
	require.GreaterOrEqual(t, gap, retryAfter, "the retry came %s after the 429", gap)
	require.GreaterOrEqual(t, gap, retryAfter-time.Millisecond+bot.RetryMargin, "the retry came %s after the 429", gap)
}
