package discord_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// TestPresent: the tracker's look-up of a person in chat: a member of the
// guild is present; one who left it (10007 Unknown Member) is not.
func TestPresent(t *testing.T) {
	t.Parallel()
	const guild, soc = "1200000000000000001", "1200000000000000002"
	fake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guild, Channels: []string{soc}}}})
	fake.AddUser(discordfake.User{ID: "1300000000000000001", Username: "fab"})
	a, err := discord.New(discord.Config{Token: secrets.String(fake.Token()), AppID: fake.AppID(), APIURL: fake.APIURL(), Guilds: []string{guild}},
		nil, nil, newHandler())
	require.NoError(t, err)
	ctx := context.Background()
	ok, err := a.Present(ctx, guild, "1300000000000000001", soc)
	require.NoError(t, err)
	require.True(t, ok)
	fake.RemoveMember("1300000000000000001")
	ok, err = a.Present(ctx, guild, "1300000000000000001", soc)
	require.NoError(t, err)
	require.False(t, ok, "left the guild")
}
