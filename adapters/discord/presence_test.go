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

// TestPresentChecksTheChannel: when one guild hosts two orgs' channels,
// someone taken out of an org's channel (its View Channel permission
// denied to them, or to @everyone with a role that kept it gone) kept
// that org's tracker session for up to 12 hours: only the guild
// membership was checked (from a privacy review). The permission is
// computed as Discord does: roles, then the channel's overwrites.
func TestPresentChecksTheChannel(t *testing.T) {
	t.Parallel()
	const guild, soc, other = "1200000000000000001", "1200000000000000002", "1200000000000000003"
	const ana, team = "1300000000000000001", "1400000000000000001"
	fake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guild, Channels: []string{soc, other}}}})
	fake.AddUser(discordfake.User{ID: ana, Username: "ana"})
	a, err := discord.New(discord.Config{Token: secrets.String(fake.Token()), AppID: fake.AppID(), APIURL: fake.APIURL(), Guilds: []string{guild}},
		nil, nil, newHandler())
	require.NoError(t, err)
	ctx := context.Background()
	present := func(channel string) bool {
		t.Helper()
		ok, err := a.Present(ctx, guild, ana, channel)
		require.NoError(t, err)
		return ok
	}
	require.True(t, present(soc), "@everyone views every channel")

	// The SOC channel is private to the SOC team's role.
	fake.AddRole(guild, discordfake.Role{ID: team, Name: "soc", Permissions: "0"})
	fake.SetOverwrites(soc,
		discordfake.Overwrite{ID: guild, Type: 0, Deny: "1024"}, // @everyone: no View Channel
		discordfake.Overwrite{ID: team, Type: 0, Allow: "1024"}) // the SOC team: View Channel
	require.False(t, present(soc), "not in the SOC team")
	require.True(t, present(other), "another channel is not concerned")
	fake.SetMemberRoles(ana, team)
	require.True(t, present(soc), "in the SOC team")

	// Taken out of the channel by a member overwrite, though still in the team.
	fake.SetOverwrites(soc,
		discordfake.Overwrite{ID: guild, Type: 0, Deny: "1024"},
		discordfake.Overwrite{ID: team, Type: 0, Allow: "1024"},
		discordfake.Overwrite{ID: ana, Type: 1, Deny: "1024"})
	require.False(t, present(soc), "denied by name")
	ok, err := a.Present(ctx, guild, ana, "")
	require.NoError(t, err)
	require.True(t, ok, "no channel: the guild membership")
}
