package discordfake_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// TestGetMessagesAsDiscord: the real discordgo client reads a channel's
// messages as Discord serves them: after an id, the ones right after it;
// before an id, the ones right before; the newest otherwise; each page
// newest first. A limit outside 1-100 is refused.
func TestGetMessagesAsDiscord(t *testing.T) {
	t.Parallel()
	fake := newFake(t, true)
	s := session(t, fake, fake.Token())
	u := discordfake.User{ID: "1000000000000000077", Username: "ana"}
	var ids []string
	for _, text := range []string{"one", "two", "three", "four"} {
		ids = append(ids, fake.Say(channel, u, text).ID)
	}
	contents := func(after, before string, limit int) []string {
		ms, err := s.ChannelMessages(channel, limit, before, after, "")
		require.NoError(t, err)
		var out []string
		for _, m := range ms {
			out = append(out, m.Content)
		}
		return out
	}
	require.Equal(t, []string{"three", "two"}, contents(ids[0], "", 2), "the two right after the first, newest first")
	require.Equal(t, []string{"two", "one"}, contents("", ids[2], 2))
	require.Equal(t, []string{"four", "three", "two", "one"}, contents("", "", 0))
	require.Empty(t, contents(ids[3], "", 100))
	_, err := s.ChannelMessages(channel, 101, "", "", "")
	require.Error(t, err)
	require.NotEmpty(t, fake.Violations())
}
