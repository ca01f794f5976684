package discordfake_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// clock is a fake's clock a test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestInteractionTokenExpires: an interaction token answers for 15
// minutes, as Discord documents; after that, followups and edits or
// deletions of the original response through the webhook get 401 with
// 50027 Invalid Webhook Token, as Discord answers them.
func TestInteractionTokenExpires(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	fake := discordfake.New(t, discordfake.Options{Now: c.Now, Guilds: []discordfake.Guild{{ID: guild, Channels: []string{channel}}}})
	s := session(t, fake, fake.Token())
	quiet := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	in, _, err := fake.Prepare(fake.CommandPayload(channel, "1000000000000000010", "experts", "status", nil))
	require.NoError(t, err)
	i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
	require.NoError(t, s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}))

	c.Advance(14 * time.Minute)
	content := "still in time"
	_, err = s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &content, AllowedMentions: quiet})
	require.NoError(t, err)
	f, err := s.FollowupMessageCreate(i, true, &discordgo.WebhookParams{Content: "a followup", AllowedMentions: quiet})
	require.NoError(t, err)

	c.Advance(2 * time.Minute)
	expired := func(err error) {
		t.Helper()
		var rest *discordgo.RESTError
		require.ErrorAs(t, err, &rest)
		require.Equal(t, http.StatusUnauthorized, rest.Response.StatusCode)
		require.Equal(t, 50027, rest.Message.Code)
		require.Equal(t, "Invalid Webhook Token", rest.Message.Message)
	}
	content = "too late"
	_, err = s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &content, AllowedMentions: quiet})
	expired(err)
	_, err = s.FollowupMessageCreate(i, true, &discordgo.WebhookParams{Content: "too late", AllowedMentions: quiet})
	expired(err)
	_, err = s.FollowupMessageEdit(i, f.ID, &discordgo.WebhookEdit{Content: &content, AllowedMentions: quiet})
	expired(err)
	expired(s.FollowupMessageDelete(i, f.ID))
	expired(s.InteractionResponseDelete(i))
	orig, ok := fake.OriginalResponse(in)
	require.True(t, ok)
	require.Equal(t, "still in time", orig.Content)
	require.Empty(t, fake.Violations(), "a late answer is the adapter's to cope with, not a fault of the test")
}

// TestLateCallbackIsUnknown: the initial response must come within 3
// seconds of the interaction (on the fake's clock); a later one gets 404
// with 10062 Unknown interaction, as Discord answers it.
func TestLateCallbackIsUnknown(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Now()}
	fake := discordfake.New(t, discordfake.Options{Now: c.Now, Lenient: true, Guilds: []discordfake.Guild{{ID: guild, Channels: []string{channel}}}})
	s := session(t, fake, fake.Token())
	s.Identify.Intents = discordgo.IntentsGuilds
	require.NoError(t, s.Open())
	t.Cleanup(func() { _ = s.Close() })
	require.True(t, fake.WaitSessions(1, 5*time.Second))

	in, err := fake.Interact(fake.CommandPayload(channel, "1000000000000000010", "experts", "status", nil))
	require.NoError(t, err)
	c.Advance(4 * time.Second)
	i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
	err = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource})
	var rest *discordgo.RESTError
	require.ErrorAs(t, err, &rest)
	require.Equal(t, http.StatusNotFound, rest.Response.StatusCode)
	require.Equal(t, 10062, rest.Message.Code)
	require.Len(t, fake.Violations(), 1)
}
