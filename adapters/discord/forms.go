package discord

import (
	"strings"

	"github.com/threatdesk/threatdesk/bot"
)

// selectAsText turns a choice field into a short text input naming its
// choices, pre-filled with the initial one: a Discord modal holds text
// inputs only (https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-modal).
// The bot checks the typed choice on submit.
func selectAsText(ff bot.FormField) bot.FormField {
	names := make([]string, len(ff.Options))
	longest := 0
	for i, o := range ff.Options {
		names[i] = strings.ToLower(o.Value)
		longest = max(longest, len(o.Value))
	}
	// Labels hold 45 characters: the label's words before any aside.
	label, _, _ := strings.Cut(ff.Label, " (")
	if len(names) > 0 {
		label += ": " + strings.Join(names, ", ")
	}
	return bot.FormField{ID: ff.ID, Label: label, Kind: bot.InputShort, Value: ff.Value, Required: ff.Required,
		Placeholder: strings.Join(names, ", "), MaxLength: max(longest, 1)}
}
