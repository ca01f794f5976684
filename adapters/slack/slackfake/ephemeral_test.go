package slackfake_test

import (
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// TestPostEphemeralMembership: chat.postEphemeral reaches only a member
// of the channel, as conversations.members lists them; anyone else is
// answered user_not_in_channel, as Slack answers. A channel the bot is
// not in is not_in_channel, one it cannot see channel_not_found.
func TestPostEphemeralMembership(t *testing.T) {
	t.Parallel()
	s := slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{
			{ID: "C1", Name: "soc", Members: []string{"U1", "U2"}},
			{ID: "C2", Name: "all"},
			{ID: "C3", Name: "elsewhere", NotMember: true},
		},
		Users: []slackfake.User{{ID: "U1"}, {ID: "U2"}, {ID: "U3"}, {ID: "U9", Team: "T2"}},
		Teams: []slackfake.Team{{ID: "T2", Name: "Other"}},
	})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	post := func(ch, user string) error {
		_, err := api.PostEphemeralContext(t.Context(), ch, user, slack.MsgOptionText("psst", false))
		return err
	}
	require.NoError(t, post("C1", "U1"))
	require.ErrorContains(t, post("C1", "U3"), "user_not_in_channel")
	s.Leave("C1", "U2")
	require.ErrorContains(t, post("C1", "U2"), "user_not_in_channel")
	require.NoError(t, post("C2", "U3"), "without a member list, every user of the team is in")
	require.ErrorContains(t, post("C2", "U9"), "user_not_in_channel", "a user of another workspace")
	require.ErrorContains(t, post("C2", "U404"), "user_not_in_channel")
	require.ErrorContains(t, post("C3", "U1"), "not_in_channel")
	require.ErrorContains(t, post("C404", "U1"), "channel_not_found")
	require.Len(t, s.Messages(""), 2)
}
