package slack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// TestItemsRender: a list line with one action gets a button beside it,
// one with several an overflow menu (at most five options) whose choice
// comes back as the bot's action and value; user text in a line is escaped.
func TestItemsRender(t *testing.T) {
	t.Parallel()
	many := []bot.Button{}
	for i := range 7 {
		many = append(many, bot.Button{Action: bot.ActConsult, Label: "Consult " + strings.Repeat("x", i), Value: "1"})
	}
	blocks, _ := RenderBlocks(bot.Message{Items: []bot.Item{
		{Line: bot.Line{bot.B("Incident 7"), bot.U(" <!channel>")}, Actions: []bot.Button{{Action: bot.ActConsult, Label: "Consult", Value: "7"}}},
		{Line: bot.Line{bot.B("Incident 8")}, Actions: []bot.Button{{Action: bot.ActNotifyNow, Label: "Notify now", Value: "contoso/8"}, {Action: bot.ActConsult, Label: "Consult", Value: "8"}}},
		{Line: bot.Line{bot.B("Incident 9")}, Actions: many},
		{Line: bot.Line{bot.B("Incident 10")}},
	}})
	require.Len(t, blocks, 4)
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	var got []struct {
		Text      struct{ Text string }
		Accessory *struct {
			Type     string
			ActionID string `json:"action_id"`
			Value    string
			Options  []struct{ Value string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, "*Incident 7* &lt;!channel&gt;", got[0].Text.Text)
	require.Equal(t, "button", got[0].Accessory.Type)
	require.Equal(t, "consult", got[0].Accessory.ActionID)
	require.Equal(t, "overflow", got[1].Accessory.Type)
	require.Len(t, got[1].Accessory.Options, 2)
	require.Len(t, got[2].Accessory.Options, MaxOverflowOptions)
	require.Nil(t, got[3].Accessory)

	act, value := blockAction(&slack.BlockAction{ActionID: itemMenu, Type: "overflow", SelectedOption: slack.OptionBlockObject{Value: got[1].Accessory.Options[0].Value}})
	require.Equal(t, bot.ActNotifyNow, act)
	require.Equal(t, "contoso/8", value)
	act, value = blockAction(&slack.BlockAction{ActionID: "consult", Type: "button", Value: "7"})
	require.Equal(t, bot.ActConsult, act)
	require.Equal(t, "7", value)
}

// TestSelectInModal: a form's choice is a static select in an input block,
// whose chosen option comes back as the field's value.
func TestSelectInModal(t *testing.T) {
	t.Parallel()
	v, err := RenderModal(bot.Form{ID: "resolve_incident", Title: "Resolve incident 7", Fields: []bot.FormField{
		{ID: "classification", Label: "Classification", Kind: bot.InputSelect, Required: true, Value: "false_positive",
			Options: []bot.Option{{Label: "True positive", Value: "true_positive"}, {Label: "False positive", Value: "false_positive"}}},
	}}, "C1")
	require.NoError(t, err)
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"type":"static_select"`)
	require.Contains(t, string(raw), `"initial_option":{"text":{"type":"plain_text","text":"False positive"`)
	require.NotContains(t, string(raw), `"optional":true`, "a required choice")
}
