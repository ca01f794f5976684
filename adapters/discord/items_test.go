package discord

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// TestItemsRender: list items become embed fields, and their actions one
// string select per action naming each line (25 options at most), within
// the five rows a message has.
func TestItemsRender(t *testing.T) {
	t.Parallel()
	var items []bot.Item
	for i := range 30 {
		id := strings.Repeat("1", i+1)
		items = append(items, bot.Item{Line: bot.Line{bot.B("Incident " + id), bot.U(" @everyone")}, Label: "Incident " + id,
			Actions: []bot.Button{{Action: bot.ActNotifyNow, Label: "Notify now", Value: "contoso/" + id}, {Action: bot.ActConsult, Label: "Consult", Value: id}}})
	}
	p := render(bot.Message{Title: "Quiet incidents", Items: items[:10], Buttons: []bot.Button{{Action: bot.ActConsult, Label: "x", Value: "9"}}})
	require.Len(t, p.Embeds[0].Fields, 10)
	require.Equal(t, "**Incident 1** @\u200beveryone", p.Embeds[0].Fields[0].Value)
	require.Len(t, p.Components, 3, "a row of buttons, then one select per action")
	sel := p.Components[1].(discordgo.ActionsRow).Components[0].(discordgo.SelectMenu)
	require.Equal(t, string(bot.ActNotifyNow), sel.CustomID)
	require.Equal(t, "Notify now…", sel.Placeholder)
	require.Len(t, sel.Options, 10)
	require.Equal(t, "contoso/1", sel.Options[0].Value)

	sels := itemSelects(items, 1)
	require.Len(t, sels, 1, "no more selects than rows left")
	require.Len(t, sels[0].(discordgo.ActionsRow).Components[0].(discordgo.SelectMenu).Options, MaxSelectOptions)
}

// TestFormWithChoice: a form with a choice is laid out in labels, the
// choice a string select; its submission, labels and all, is read by
// custom_id (discordgo alone refuses the component type it does not know).
func TestFormWithChoice(t *testing.T) {
	t.Parallel()
	p, err := renderForm(bot.Form{ID: "resolve_incident", State: "i=7", Title: "Resolve incident 7", Fields: []bot.FormField{
		{ID: "classification", Label: "Classification", Kind: bot.InputSelect, Required: true,
			Options: []bot.Option{{Label: "True positive", Value: "true_positive"}, {Label: "False positive", Value: "false_positive"}}},
		{ID: "comment", Label: "Comment", Kind: bot.InputParagraph, MaxLength: 1000},
	}})
	require.NoError(t, err)
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	require.JSONEq(t, `{"custom_id":"f:resolve_incident:i=7","title":"Resolve incident 7","components":[
	  {"type":18,"label":"Classification","component":{"type":3,"custom_id":"classification","required":true,"min_values":1,"max_values":1,
	    "options":[{"label":"True positive","value":"true_positive","description":"","default":false},{"label":"False positive","value":"false_positive","description":"","default":false}]}},
	  {"type":18,"label":"Comment","component":{"type":4,"custom_id":"comment","style":2,"required":false,"max_length":1000}}]}`, string(raw))

	sub := `{"type":5,"id":"1","token":"t","application_id":"2","channel_id":"3","data":{"custom_id":"f:resolve_incident:i=7","components":[
	  {"type":18,"id":1,"component":{"type":3,"id":2,"custom_id":"classification","values":["false_positive"]}},
	  {"type":18,"id":3,"component":{"type":4,"id":4,"custom_id":"comment","value":"benign admin tool"}}]}}`
	in, err := parseInteraction([]byte(sub))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"classification": "false_positive", "comment": "benign admin tool"}, in.values)
	require.Equal(t, "f:resolve_incident:i=7", in.i.ModalSubmitData().CustomID)

	legacy := `{"type":5,"id":"1","token":"t","application_id":"2","channel_id":"3","data":{"custom_id":"f:ask:","components":[
	  {"type":1,"components":[{"type":4,"custom_id":"question","value":"what is this?"}]}]}}`
	in, err = parseInteraction([]byte(legacy))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"question": "what is this?"}, in.values)
}
