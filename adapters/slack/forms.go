package slack

import (
	"cmp"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Limits of a static select's options
// (https://docs.slack.dev/reference/block-kit/composition-objects/option-object,
// https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element).
const (
	// MaxSelectOptions is the most options a static select holds.
	MaxSelectOptions = 100
	// MaxOptionText is the longest option text; MaxOptionValue the longest value.
	MaxOptionText  = 75
	MaxOptionValue = 150
)

// selectInput renders a bot.InputSelect field as an input block holding a
// static_select, its Value as the initial option. The submission carries
// the chosen option's value (view.state.values[id][id].selected_option).
func selectInput(ff bot.FormField) *slack.InputBlock {
	var opts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	for i, o := range ff.Options {
		if i == MaxSelectOptions || len(o.Value) > MaxOptionValue {
			break
		}
		ob := slack.NewOptionBlockObject(o.Value, plain(cut(Escape(cmp.Or(o.Label, o.Value)), MaxOptionText)), nil)
		opts = append(opts, ob)
		if o.Value == ff.Value {
			initial = ob
		}
	}
	var ph *slack.TextBlockObject
	if ff.Placeholder != "" {
		ph = plain(cut(Escape(ff.Placeholder), MaxPlaceholder))
	}
	el := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, ph, ff.ID, opts...)
	el.InitialOption = initial
	in := slack.NewInputBlock(ff.ID, plain(cut(Escape(cmp.Or(ff.Label, ff.ID)), MaxInputLabel)), nil, el)
	in.Optional = !ff.Required
	return in
}
