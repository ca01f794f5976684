package discordfake_test

import (
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestReconnectAndResume: on op 7 RECONNECT the real discordgo client
// reconnects and RESUMEs (op 6) its session rather than identifying again;
// the fake replays what was dispatched meanwhile, then RESUMED, as Discord
// does, and events sent after it arrive on the new connection.
func TestReconnectAndResume(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	s := session(t, fake, fake.Token())
	resumed := make(chan *discordgo.Resumed, 1)
	msgs := make(chan string, 8)
	s.AddHandler(func(_ *discordgo.Session, r *discordgo.Resumed) { resumed <- r })
	s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { msgs <- m.Content })
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentMessageContent
	require.NoError(t, s.Open())
	t.Cleanup(func() { _ = s.Close() })
	require.True(t, fake.WaitSessions(1, 5*time.Second))
	alice := discordfake.User{ID: "1000000000000000010", Username: "alice"}
	next := func() string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
			return ""
		}
	}
	fake.Say(channel, alice, "before")
	require.Equal(t, "before", next())

	require.Equal(t, 1, fake.Reconnect())
	fake.Say(channel, alice, "meanwhile") // kept for the RESUME
	testwait.For(t, 15*time.Second, "the session resumed", func() bool { return fake.Resumes() == 1 && fake.Sessions() == 1 }, fake)
	select {
	case <-resumed:
	case <-time.After(5 * time.Second):
		t.Fatal("no RESUMED")
	}
	require.Equal(t, "meanwhile", next())
	fake.Say(channel, alice, "after")
	require.Equal(t, "after", next())
	require.Equal(t, 1, fake.Identifies(), "resumed, not identified again")
	require.Equal(t, 1, fake.MaxSessions())
	select {
	case m := <-msgs:
		t.Fatalf("delivered twice or more: %q", m)
	case <-time.After(100 * time.Millisecond):
	}
	require.Empty(t, fake.Violations())
}
