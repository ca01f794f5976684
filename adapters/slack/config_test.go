package slack

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok socket", Config{BotToken: "xoxb-1", AppToken: "xapp-1"}, ""},
		{"ok http", Config{BotToken: "xoxb-1", SigningSecret: "s"}, ""},
		{"no bot token", Config{AppToken: "xapp-1"}, "SLACK_BOT_TOKEN is empty"},
		{"user token", Config{BotToken: "xoxp-secret-value", AppToken: "xapp-1"}, "SLACK_BOT_TOKEN must start with xoxb-"},
		{"app token swapped", Config{BotToken: "xoxb-1", AppToken: "xoxb-secret-value"}, "SLACK_APP_TOKEN must start with xapp-"},
		{"no way in", Config{BotToken: "xoxb-1"}, "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"},
		{"bad url", Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "slack.com/api"}, `SLACK_API_URL "slack.com/api" must be an http(s) URL`},
		// README: SLACK_API_URL ends in a slash. The adapter once added a
		// missing one while internal/config refused it.
		{"client id alone", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientID: "123.456"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"},
		{"client secret alone", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientSecret: "secret-value"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"},
		{"add to slack without a store", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientID: "123.456", ClientSecret: "secret-value"}, "needs the database and THREATDESK_SECRET_KEY"},
		{"no trailing slash", Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "http://127.0.0.1:1/api"}, `SLACK_API_URL "http://127.0.0.1:1/api" must end with a slash`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, nil, nil, nopHandler{})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "secret-value", "never repeats a token")
		})
	}
	a, err := New(Config{BotToken: "xoxb-1", AppToken: "xapp-1"}, nil, nil, nopHandler{})
	require.NoError(t, err)
	require.Equal(t, DefaultAPIURL, a.cfg.APIURL, "the default base")
	require.NoError(t, Config{}.WithDefaults().Validate(), "Slack not configured is not an error")
	require.NoError(t, Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "http://127.0.0.1:1/api/"}.WithDefaults().Validate())
}

type nopHandler struct{}

func (nopHandler) HandleCommand(_ context.Context, _ bot.Command) bot.Ack { return bot.Ack{} }
func (nopHandler) HandleAction(_ context.Context, _ bot.Action) bot.Ack   { return bot.Ack{} }
func (nopHandler) HandleSubmit(_ context.Context, _ bot.Submission) bot.SubmitAck {
	return bot.SubmitAck{}
}
func (nopHandler) HandleReply(_ context.Context, _ bot.Reply) error { return nil }
