package slackfake_test

import (
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// TestDirectMessagesPermalinksAndMentions drives conversations.open,
// chat.getPermalink and mention recording with the real slack-go client.
func TestDirectMessagesPermalinksAndMentions(t *testing.T) {
	t.Parallel()
	s := slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}},
		Users: []slackfake.User{{ID: "U1", Name: "alice"}, {ID: "U2", Name: "bob"},
			{ID: "U3", Name: "gone", Deactivated: true}},
	})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	ctx := t.Context()

	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	require.NoError(t, err)
	require.Regexp(t, `^D`, ch.ID)
	again, _, already, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	require.NoError(t, err)
	require.Equal(t, ch.ID, again.ID, "the same conversation")
	require.True(t, already)
	_, ts, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("<@U1> a page", false))
	require.NoError(t, err)
	dms := s.DirectMessages("U1")
	require.Len(t, dms, 1)
	require.Equal(t, []string{"U1"}, dms[0].Notified)
	require.Empty(t, s.DirectMessages("U2"))

	for user, code := range map[string]string{"U3": "user_disabled", "U9": "user_not_found", "U0BOT": "cannot_dm_bot"} {
		_, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
		require.ErrorContains(t, err, code, user)
	}

	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: ch.ID, Ts: ts})
	require.NoError(t, err)
	require.Equal(t, slackfake.PermalinkOf(ch.ID, ts, ""), link)
	_, err = api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: "1.000001"})
	require.ErrorContains(t, err, "message_not_found")

	// Mentions in blocks notify; escaped ones (user text) and edits do not.
	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "<@U2> and &lt;@U1&gt;", false, false), nil, nil))
	_, ts, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("card", false), blocks)
	require.NoError(t, err)
	m, ok := s.Message("C1", ts)
	require.True(t, ok)
	require.Equal(t, []string{"U2"}, m.Notified)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("<@U1> edited", false))
	require.NoError(t, err)
	require.Len(t, s.NotifiedOf("U1"), 1, "only the direct message notified U1")
}
