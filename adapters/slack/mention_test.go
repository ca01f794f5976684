package slack

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// TestMentionsAndDates: a message notifies exactly the users it lists, in
// place and first in the notification text; a mention span of anyone else,
// or in user text, shows a name; a time span is <!date^…> with the zoned
// time as its fallback.
func TestMentionsAndDates(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC)
	m := bot.Message{
		Text: []bot.Line{
			{bot.B("SLA warning: "), bot.T("due at "), {Text: "Tue 3 Mar 11:00 Europe/London", Time: due}, bot.T(". "), bot.M("U0EXPERT1", "Eve"), bot.T(" has it.")},
			{bot.M("U0EXPERT2", "Ed"), bot.T(" is not listed; "), {Text: "<@U0EXPERT2> typed", Untrusted: true, Mention: "U0EXPERT2"}},
		},
		Fields:   []bot.Field{{Label: "On call", Value: bot.Line{bot.M("U0EXPERT1", "Eve")}}},
		Fallback: "SLA warning",
		Mentions: []string{"U0EXPERT1", "U0EXPERT1", "not-a-user"},
	}
	blocks, text := RenderBlocks(m)
	require.Equal(t, "<@U0EXPERT1> SLA warning", text, "the notification names who it is for")
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	var got []map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	body := got[0]["text"].(map[string]any)["text"].(string)
	require.Equal(t, "*SLA warning:* due at <!date^"+strconv.FormatInt(due.Unix(), 10)+"^{date_short_pretty} {time}|Tue 3 Mar 11:00 Europe/London>. <@U0EXPERT1> has it.\n"+
		"Ed is not listed; &lt;@U0EXPERT2&gt; typed", body)
	field := got[1]["fields"].([]any)[0].(map[string]any)["text"].(string)
	require.Equal(t, "*On call*\n<@U0EXPERT1>", field)

	// Nothing listed: nobody is mentioned, not even in the text.
	m.Mentions = nil
	blocks, text = RenderBlocks(m)
	require.Equal(t, "SLA warning", text)
	raw, _ = json.Marshal(blocks)
	require.NotContains(t, string(raw), "<@")
}
