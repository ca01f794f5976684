package discord

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// Limits of selects and labels, from
// https://discord.com/developers/docs/components/reference#string-select and
// https://discord.com/developers/docs/components/reference#label.
const (
	MaxSelectOptions     = 25
	MaxSelectPlaceholder = 150
	MaxOptionLabel       = 100
	MaxOptionValue       = 100
	MaxOptionDescription = 100
	MaxLabelDescription  = 100
)

// Component types discordgo v0.29 does not name.
const componentLabel discordgo.ComponentType = 18

// itemFields renders list items as embed fields: the line's name (its
// Label) over the line itself.
func itemFields(items []bot.Item) []*discordgo.MessageEmbedField {
	out := make([]*discordgo.MessageEmbedField, 0, len(items))
	for _, it := range items {
		name := it.Label
		if name == "" {
			name = "\u200b"
		}
		out = append(out, &discordgo.MessageEmbedField{
			Name:  nonEmpty(cut(escape(name, true), MaxFieldName)),
			Value: nonEmpty(cut(renderLine(it.Line, true), MaxFieldValue)),
		})
	}
	return out
}

// itemSelects gathers the items' actions into one select per action, in
// the order they first appear, each option naming its line: Discord has no
// room for a menu beside each line (5 rows of components in a message), but
// a select holds 25 options. At most rows selects are made; an option whose
// value is too long is left out (ids only: never cut one).
func itemSelects(items []bot.Item, rows int) []discordgo.MessageComponent {
	var order []bot.ActionID
	label := map[bot.ActionID]string{}
	opts := map[bot.ActionID][]discordgo.SelectMenuOption{}
	for _, it := range items {
		for _, b := range it.Actions {
			if b.Value == "" || utf8.RuneCountInString(b.Value) > MaxOptionValue || len(opts[b.Action]) == MaxSelectOptions {
				continue
			}
			if _, ok := opts[b.Action]; !ok {
				order = append(order, b.Action)
				label[b.Action] = b.Label
			}
			name := it.Label
			if name == "" {
				name = b.Value
			}
			opts[b.Action] = append(opts[b.Action], discordgo.SelectMenuOption{
				Label: cut(name, MaxOptionLabel), Value: b.Value,
				Description: cut(strings.Join(strings.Fields(plainLine(it.Line)), " "), MaxOptionDescription),
			})
		}
	}
	var out []discordgo.MessageComponent
	for _, a := range order {
		if len(out) == rows || utf8.RuneCountInString(string(a)) > MaxCustomID {
			break
		}
		one := 1
		out = append(out, discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.SelectMenu{
			MenuType: discordgo.StringSelectMenu, CustomID: string(a), Placeholder: cut(label[a]+"…", MaxSelectPlaceholder),
			MinValues: &one, MaxValues: 1, Options: opts[a],
		}}})
	}
	return out
}

// labelComponent is a modal's Label (type 18): a text and optional
// description over one input (a text input or a string select).
type labelComponent struct {
	Label       string
	Description string
	Component   discordgo.MessageComponent
}

func (labelComponent) Type() discordgo.ComponentType { return componentLabel }

func (l labelComponent) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type        discordgo.ComponentType    `json:"type"`
		Label       string                     `json:"label"`
		Description string                     `json:"description,omitempty"`
		Component   discordgo.MessageComponent `json:"component"`
	}{componentLabel, l.Label, l.Description, l.Component})
}

// labelledInput is a text input inside a Label, which carries its label.
type labelledInput struct {
	CustomID    string                   `json:"custom_id"`
	Style       discordgo.TextInputStyle `json:"style"`
	Placeholder string                   `json:"placeholder,omitempty"`
	Value       string                   `json:"value,omitempty"`
	Required    bool                     `json:"required"`
	MinLength   int                      `json:"min_length,omitempty"`
	MaxLength   int                      `json:"max_length,omitempty"`
}

func (labelledInput) Type() discordgo.ComponentType { return discordgo.TextInputComponent }

func (t labelledInput) MarshalJSON() ([]byte, error) {
	type plain labelledInput
	return json.Marshal(struct {
		Type discordgo.ComponentType `json:"type"`
		plain
	}{discordgo.TextInputComponent, plain(t)})
}

// modalSelect is a string select inside a Label.
type modalSelect struct {
	CustomID    string                       `json:"custom_id"`
	Placeholder string                       `json:"placeholder,omitempty"`
	Required    bool                         `json:"required"`
	MinValues   int                          `json:"min_values"`
	MaxValues   int                          `json:"max_values"`
	Options     []discordgo.SelectMenuOption `json:"options"`
}

func (modalSelect) Type() discordgo.ComponentType { return discordgo.SelectMenuComponent }

func (s modalSelect) MarshalJSON() ([]byte, error) {
	type plain modalSelect
	return json.Marshal(struct {
		Type discordgo.ComponentType `json:"type"`
		plain
	}{discordgo.SelectMenuComponent, plain(s)})
}

// labelledForm renders a form that has a choice: every field in a Label,
// choices as string selects (https://discord.com/developers/docs/components/using-modal-components).
func labelledForm(f bot.Form, p modalPayload) (modalPayload, error) {
	for _, ff := range f.Fields {
		if ff.ID == "" || utf8.RuneCountInString(ff.ID) > MaxCustomID {
			return modalPayload{}, fmt.Errorf("form %q: field id %q must be 1 to %d characters", f.ID, ff.ID, MaxCustomID)
		}
		label := cut(ff.Label, MaxInputLabel)
		if label == "" {
			label = ff.ID
		}
		var c discordgo.MessageComponent
		switch ff.Kind {
		case bot.InputSelect:
			s := modalSelect{CustomID: ff.ID, Placeholder: cut(ff.Placeholder, MaxSelectPlaceholder), Required: ff.Required, MinValues: 1, MaxValues: 1}
			if !ff.Required {
				s.MinValues = 0
			}
			for _, o := range ff.Options {
				if o.Value == "" || utf8.RuneCountInString(o.Value) > MaxOptionValue || len(s.Options) == MaxSelectOptions {
					continue
				}
				s.Options = append(s.Options, discordgo.SelectMenuOption{Label: cut(o.Label, MaxOptionLabel), Value: o.Value, Default: o.Value == ff.Value})
			}
			if len(s.Options) == 0 {
				return modalPayload{}, fmt.Errorf("form %q: choice %q has no option", f.ID, ff.ID)
			}
			c = s
		default:
			style := discordgo.TextInputShort
			if ff.Kind == bot.InputParagraph {
				style = discordgo.TextInputParagraph
			}
			maxLen := ff.MaxLength
			if maxLen <= 0 || maxLen > MaxInputValue {
				maxLen = MaxInputValue
			}
			c = labelledInput{CustomID: ff.ID, Style: style, Placeholder: cut(ff.Placeholder, MaxPlaceholder), Value: cut(ff.Value, maxLen),
				Required: ff.Required, MinLength: min(max(ff.MinLength, 0), maxLen), MaxLength: maxLen}
		}
		p.Components = append(p.Components, labelComponent{Label: label, Component: c})
	}
	return p, nil
}

func hasChoice(f bot.Form) bool {
	for _, ff := range f.Fields {
		if ff.Kind == bot.InputSelect {
			return true
		}
	}
	return false
}

// modalComponent is a submitted modal component as Discord sends it: an
// action row or a Label around an input, a text input's value, a select's
// values.
type modalComponent struct {
	Type       discordgo.ComponentType `json:"type"`
	CustomID   string                  `json:"custom_id"`
	Value      string                  `json:"value"`
	Values     []string                `json:"values"`
	Components []modalComponent        `json:"components"`
	Component  *modalComponent         `json:"component"`
}

// splitModal reads a modal submission's values by custom_id, and the
// text typed into its text inputs in order, and returns the interaction
// without its components: discordgo v0.29 refuses the
// whole interaction when a component type it does not know (a Label) is
// in it, so the values are read here for every modal.
func splitModal(raw []byte) ([]byte, map[string]string, []string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return raw, nil, nil
	}
	var typ discordgo.InteractionType
	if json.Unmarshal(top["type"], &typ) != nil || typ != discordgo.InteractionModalSubmit {
		return raw, nil, nil
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(top["data"], &data) != nil {
		return raw, nil, nil
	}
	var comps []modalComponent
	if json.Unmarshal(data["components"], &comps) != nil {
		return raw, nil, nil
	}
	values := map[string]string{}
	var typed []string
	var walk func(cs []modalComponent)
	walk = func(cs []modalComponent) {
		for _, c := range cs {
			switch {
			case c.Component != nil:
				walk([]modalComponent{*c.Component})
			case len(c.Components) > 0:
				walk(c.Components)
			case c.CustomID == "":
			case c.Type == discordgo.SelectMenuComponent:
				values[c.CustomID] = strings.Join(c.Values, ",")
			default:
				values[c.CustomID] = c.Value
				if c.Type == discordgo.TextInputComponent && strings.TrimSpace(c.Value) != "" {
					typed = append(typed, c.Value)
				}
			}
		}
	}
	walk(comps)
	data["components"] = json.RawMessage("[]")
	d, err := json.Marshal(data)
	if err != nil {
		return raw, values, typed
	}
	top["data"] = d
	out, err := json.Marshal(top)
	if err != nil {
		return raw, values, typed
	}
	return out, values, typed
}
