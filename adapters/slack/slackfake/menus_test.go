package slackfake_test

import (
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

func opts(n int) []*slack.OptionBlockObject {
	out := make([]*slack.OptionBlockObject, n)
	for i := range out {
		v := strings.Repeat("v", i+1)
		out[i] = slack.NewOptionBlockObject(v, slack.NewTextBlockObject(slack.PlainTextType, "option "+v, false, false), nil)
	}
	return out
}

// TestMenusAsSlack: an overflow menu beside a section holds two to five
// options; choosing one builds the payload Slack sends, with the chosen
// option; a modal's static select submits the option chosen, and only one
// of its options.
func TestMenusAsSlack(t *testing.T) {
	t.Parallel()
	s := slackfake.New(t, slackfake.Options{
		Channels:    []slackfake.Channel{{ID: "C1", Name: "soc"}},
		Users:       []slackfake.User{{ID: "U1", Name: "alice"}},
		OnViolation: func(string) {}, // this test breaks a limit on purpose
	})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	ctx := t.Context()
	text := slack.NewTextBlockObject(slack.MarkdownType, "*Incident 7* · score 15", false, false)
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("list", false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(text, nil, slack.NewAccessory(slack.NewOverflowBlockElement("menu", opts(2)...)))))
	require.NoError(t, err)
	require.Empty(t, s.Violations())
	p, err := s.Choose("C1", ts, "U1", "Incident 7", "option vv")
	require.NoError(t, err)
	act := p["actions"].([]any)[0].(map[string]any)
	require.Equal(t, "overflow", act["type"])
	require.Equal(t, "vv", act["selected_option"].(map[string]any)["value"])
	require.NotEmpty(t, act["block_id"], "Slack gives every block an id")
	_, err = s.Choose("C1", ts, "U1", "Incident 7", "option z")
	require.ErrorContains(t, err, "no option")

	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("list", false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(text, nil, slack.NewAccessory(slack.NewOverflowBlockElement("menu", opts(6)...)))))
	require.Error(t, err)
	require.Contains(t, strings.Join(s.Violations(), "\n"), "overflow has 6 options, Slack allows 2-5")

	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, nil, "pick", opts(3)...)
	view := slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Pick", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewInputBlock("pick", slack.NewTextBlockObject(slack.PlainTextType, "Pick one", false, false), nil, sel)}}}
	_, err = api.OpenViewContext(ctx, s.NewTrigger(), view)
	require.NoError(t, err)
	v := s.Views()[0]
	sub, err := s.Submit(v, "U1", map[string]string{"pick": "vvv"})
	require.NoError(t, err)
	state := sub["view"].(map[string]any)["state"].(map[string]any)["values"].(map[string]any)["pick"].(map[string]any)["pick"].(map[string]any)
	require.Equal(t, "vvv", state["selected_option"].(map[string]any)["value"])
	_, err = s.Submit(v, "U1", map[string]string{"pick": "nope"})
	require.ErrorContains(t, err, "no option")
}
