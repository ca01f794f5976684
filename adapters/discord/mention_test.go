package discord

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// TestRenderMentions: a card pings exactly the users it lists, from its
// content (embeds never ping); a mention span of anyone else, or in user
// text, shows a name; a time shows in the configured zone, named.
func TestRenderMentions(t *testing.T) {
	t.Parallel()
	const eve, ed = "1000000000000000009", "1000000000000000019"
	card := bot.Message{
		Title:    "EOD-1 · Contoso",
		Text:     []bot.Line{{bot.U("<@" + ed + "> look @everyone")}},
		Fields:   []bot.Field{{Label: "On call", Value: bot.Line{bot.M(eve, "Eve")}}, {Label: "Next", Value: bot.Line{bot.M(ed, "Ed")}}},
		Mentions: []string{eve, eve, "U0SLACK"},
	}
	p := render(card)
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	var got struct {
		Content         string `json:"content"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
			Users []string `json:"users"`
		} `json:"allowed_mentions"`
		Embeds []struct {
			Description string `json:"description"`
			Fields      []struct{ Value string }
		} `json:"embeds"`
	}
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, "<@"+eve+">", got.Content, "the content pings who the card is for")
	require.Equal(t, []string{}, got.AllowedMentions.Parse)
	require.Equal(t, []string{eve}, got.AllowedMentions.Users)
	require.Equal(t, "<@"+eve+">", got.Embeds[0].Fields[0].Value)
	require.Equal(t, "Ed", got.Embeds[0].Fields[1].Value, "not listed: a name")
	require.Equal(t, `\<@`+ed+`\> look @`+"\u200b"+`everyone`, got.Embeds[0].Description, "user text is never a mention")

	note := bot.Message{Text: []bot.Line{{bot.M(eve, "Eve"), bot.T(" the first response is due at "),
		{Text: "Tue 3 Mar 11:00 Europe/London", Time: time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC)}}}, Mentions: []string{eve}}
	p = render(note)
	require.Equal(t, "<@"+eve+"> the first response is due at Tue 3 Mar 11:00 Europe/London", p.Content)
	require.Equal(t, []string{eve}, p.AllowedMentions.users)

	plain := render(bot.Message{Text: []bot.Line{{bot.M(eve, "Eve"), bot.T(" hi")}}})
	raw, err = json.Marshal(plain)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"allowed_mentions":{"parse":[]}`)
	require.Equal(t, "Eve hi", plain.Content)
}

// TestBoldHugsWords: bold markers go around the words, not their spaces,
// or Discord shows the asterisks ("**SLA warning: **EOD-1").
func TestBoldHugsWords(t *testing.T) {
	t.Parallel()
	p := render(bot.Message{Text: []bot.Line{{bot.B("SLA warning: "), bot.T("EOD-1 "), {Text: " due ", Style: bot.StyleItalic}, bot.B(" ")}}})
	require.Equal(t, "**SLA warning:** EOD-1  *due*  ", p.Content)
}
