package slack

import (
	"cmp"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Limits of menus and their options, from
// https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element,
// https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element
// and https://docs.slack.dev/reference/block-kit/composition-objects/option-object.
const (
	// MaxOverflowOptions is the most options of an overflow menu.
	MaxOverflowOptions = 5
	// MaxSelectOptions is the most options of a static select.
	MaxSelectOptions = 100
	// MaxOptionText is the longest option text.
	MaxOptionText = 75
	// MaxOptionValue is the longest option value.
	MaxOptionValue = 150
)

// itemMenu is the action_id of an item's overflow menu; each option's
// value carries the bot action and its value (optionValue).
const itemMenu = "item_menu"

// optionValue encodes an action and its value into one option value.
func optionValue(b bot.Button) string { return string(b.Action) + ":" + b.Value }

// itemBlocks renders list items: a section per line, with its one action
// as a button beside it, or its several actions in an overflow menu.
// Actions whose encoded value would be too long for Slack are left out
// (ids only: a longer one is a bug upstream, never cut an id).
func itemBlocks(items []bot.Item) []slack.Block {
	var out []slack.Block
	for _, it := range items {
		text := cut(line(it.Line), MaxSectionText)
		if strings.TrimSpace(text) == "" {
			text = cut(Escape(cmp.Or(it.Label, "—")), MaxSectionText)
		}
		var acts []bot.Button
		for _, b := range it.Actions {
			if len(b.Value) <= MaxButtonValue && utf8.RuneCountInString(optionValue(b)) <= MaxOptionValue {
				acts = append(acts, b)
			}
		}
		acts = acts[:min(len(acts), MaxOverflowOptions)]
		var acc *slack.Accessory
		switch len(acts) {
		case 0:
		case 1:
			b := acts[0]
			el := slack.NewButtonBlockElement(string(b.Action), b.Value, plain(cut(Escape(cmp.Or(b.Label, string(b.Action))), MaxButtonText)))
			switch b.Style {
			case bot.ButtonPrimary:
				el.Style = slack.StylePrimary
			case bot.ButtonDanger:
				el.Style = slack.StyleDanger
			}
			acc = slack.NewAccessory(el)
		default:
			opts := make([]*slack.OptionBlockObject, len(acts))
			for i, b := range acts {
				opts[i] = slack.NewOptionBlockObject(optionValue(b), plain(cut(Escape(cmp.Or(b.Label, string(b.Action))), MaxOptionText)), nil)
			}
			acc = slack.NewAccessory(slack.NewOverflowBlockElement(itemMenu, opts...))
		}
		out = append(out, slack.NewSectionBlock(mrkdwn(text), nil, acc))
	}
	return out
}

// blockAction reads a pressed button or a chosen menu option as the bot's
// action and value.
func blockAction(act *slack.BlockAction) (bot.ActionID, string) {
	if act.ActionID == itemMenu || act.Type == slack.ActionType(slack.METOverflow) {
		a, v, _ := strings.Cut(act.SelectedOption.Value, ":")
		return bot.ActionID(a), v
	}
	return actionOf(act.ActionID), cmp.Or(act.Value, act.SelectedOption.Value)
}

// selectElement renders a form's choice as a static select.
func selectElement(ff bot.FormField) *slack.SelectBlockElement {
	var opts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	for _, o := range ff.Options {
		if len(opts) == MaxSelectOptions || utf8.RuneCountInString(o.Value) > MaxOptionValue || o.Value == "" {
			continue
		}
		ob := slack.NewOptionBlockObject(o.Value, plain(cut(Escape(cmp.Or(o.Label, o.Value)), MaxOptionText)), nil)
		if o.Value == ff.Value {
			initial = ob
		}
		opts = append(opts, ob)
	}
	var ph *slack.TextBlockObject
	if ff.Placeholder != "" {
		ph = plain(cut(Escape(ff.Placeholder), MaxPlaceholder))
	}
	el := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, ph, ff.ID, opts...)
	el.InitialOption = initial
	return el
}
