package discordfake_test

import (
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// TestMentionsAgainstAllowedMentions: a content mention pings only a user
// allowed_mentions lists; listing a user the content does not mention, or
// "users" in parse, is a violation; mentions in embeds ping nobody.
func TestMentionsAgainstAllowedMentions(t *testing.T) {
	t.Parallel()
	const alice, bob = "1000000000000000101", "1000000000000000102"
	fake := newFake(t, true)
	s := session(t, fake, fake.Token())
	only := func(users ...string) *discordgo.MessageAllowedMentions {
		return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}, Users: users}
	}
	m, err := s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: "<@" + alice + "> and <@" + bob + ">", AllowedMentions: only(alice)})
	require.NoError(t, err)
	got, _ := fake.Message(m.ID)
	require.Equal(t, []string{alice}, got.Notified, "bob is not listed: shown, not pinged")
	require.Empty(t, fake.Violations())

	_, err = s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: "<@" + alice + ">",
		Embeds: []*discordgo.MessageEmbed{{Description: "<@" + bob + ">"}}, AllowedMentions: only(alice, bob)})
	require.Error(t, err)
	require.Contains(t, fake.Violations()[0], "allowed_mentions.users lists "+bob+", whom the content does not mention")

	_, err = s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: "<@" + alice + ">",
		AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{discordgo.AllowedMentionTypeUsers}, Users: []string{alice}}})
	require.Error(t, err)
	require.Len(t, fake.Violations(), 3, "parse must be empty, and users in parse excludes a users list")
}

// TestDirectMessagesReachOrNot: the DM channel of a known user takes
// messages; one who turned direct messages off answers 50007, an unknown
// user 50033.
func TestDirectMessagesReachOrNot(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	fake.AddUser(discordfake.User{ID: "1000000000000000201", Username: "open"})
	fake.AddUser(discordfake.User{ID: "1000000000000000202", Username: "closed", NoDMs: true})
	s := session(t, fake, fake.Token())
	quiet := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}

	ch, err := s.UserChannelCreate("1000000000000000201")
	require.NoError(t, err)
	_, err = s.ChannelMessageSendComplex(ch.ID, &discordgo.MessageSend{Content: "hello", AllowedMentions: quiet})
	require.NoError(t, err)
	require.Len(t, fake.DirectMessages("1000000000000000201"), 1)

	ch, err = s.UserChannelCreate("1000000000000000202")
	require.NoError(t, err)
	_, err = s.ChannelMessageSendComplex(ch.ID, &discordgo.MessageSend{Content: "hello", AllowedMentions: quiet})
	var rest *discordgo.RESTError
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 50007, rest.Message.Code)

	_, err = s.UserChannelCreate("1000000000000000299")
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 50033, rest.Message.Code)
	require.Empty(t, fake.Violations())
}
