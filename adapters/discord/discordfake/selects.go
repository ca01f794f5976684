package discordfake

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Select and label limits: https://discord.com/developers/docs/components/reference#string-select,
// https://discord.com/developers/docs/components/reference#label.
const (
	typeLabel         = 18
	maxSelectOptions  = 25
	maxOptionLabel    = 100
	maxOptionValue    = 100
	maxOptionDesc     = 100
	maxSelectHolder   = 150
	maxLabelDesc      = 100
	maxSelectedValues = 25
)

// selectOption is a string select's option as the fake reads it.
type selectOption struct {
	Label       string `json:"label"`
	Value       string `json:"value"`
	Description string `json:"description"`
	Default     bool   `json:"default"`
}

func options(c Component) []selectOption {
	b, err := json.Marshal(c.Options)
	if err != nil {
		return nil
	}
	var out []selectOption
	_ = json.Unmarshal(b, &out)
	return out
}

// validateSelect checks a select: its options, their labels and values,
// and how many may be chosen.
func validateSelect(c Component) []string {
	var v []string
	bad := func(f string, args ...any) { v = append(v, fmt.Sprintf(f, args...)) }
	if n := runes(c.Placeholder); n > maxSelectHolder {
		bad("select placeholder is %d characters, limit %d", n, maxSelectHolder)
	}
	if c.Type != 3 {
		return v
	}
	opts := options(c)
	if len(opts) == 0 || len(opts) > maxSelectOptions {
		bad("string select %q has %d options, must be 1..%d", c.CustomID, len(opts), maxSelectOptions)
	}
	seen := map[string]bool{}
	for _, o := range opts {
		if n := runes(o.Label); n == 0 || n > maxOptionLabel {
			bad("select option label %q is %d characters, must be 1..%d", o.Label, n, maxOptionLabel)
		}
		if n := runes(o.Value); n == 0 || n > maxOptionValue {
			bad("select option value %q is %d characters, must be 1..%d", o.Value, n, maxOptionValue)
		}
		if n := runes(o.Description); n > maxOptionDesc {
			bad("select option description is %d characters, limit %d", n, maxOptionDesc)
		}
		if seen[o.Value] {
			bad("select option value %q is used twice", o.Value)
		}
		seen[o.Value] = true
	}
	if c.MinValues != nil && (*c.MinValues < 0 || *c.MinValues > maxSelectOptions) {
		bad("min_values %d out of 0..%d", *c.MinValues, maxSelectOptions)
	}
	if c.MaxValues != nil && (*c.MaxValues < 1 || *c.MaxValues > maxSelectedValues) {
		bad("max_values %d out of 1..%d", *c.MaxValues, maxSelectedValues)
	}
	return v
}

// SelectPayload builds the interaction of userID choosing values in the
// string select customID of a stored message. Only the select's own
// options can be chosen.
func (s *Server) SelectPayload(m Message, userID, customID string, values ...string) (map[string]any, error) {
	for _, r := range m.Components {
		for _, c := range r.Components {
			if c.Type != 3 || c.CustomID != customID {
				continue
			}
			for _, v := range values {
				if !slices.ContainsFunc(options(c), func(o selectOption) bool { return o.Value == v }) {
					return nil, fmt.Errorf("select %q has no option %q", customID, v)
				}
			}
			return s.basePayload(TypeComponent, m.ChannelID, userID, map[string]any{"custom_id": customID, "component_type": 3, "values": values}, &m), nil
		}
	}
	return nil, fmt.Errorf("message %s has no select %q", m.ID, customID)
}

// OptionLabeled returns the value of the option of select customID (on m)
// whose label contains label.
func OptionLabeled(m Message, customID, label string) (string, bool) {
	for _, r := range m.Components {
		for _, c := range r.Components {
			if c.Type != 3 || c.CustomID != customID {
				continue
			}
			for _, o := range options(c) {
				if strings.Contains(o.Label, label) {
					return o.Value, true
				}
			}
		}
	}
	return "", false
}

// SubmitModal builds the submission of modal (as the bot opened it) with
// values by custom_id, laid out as Discord sends it back: action rows of
// text inputs, labels around a text input's value or a select's values.
// A select takes only its own options; one not in values submits its
// default options, as a person who leaves it alone does. m is the message whose component
// opened the modal, or nil.
func (s *Server) SubmitModal(channelID, userID string, modal ModalBody, values map[string]string, m *Message) (map[string]any, error) {
	var comps []any
	for i, r := range modal.Components {
		switch {
		case r.Type == 1 && len(r.Components) == 1:
			t := r.Components[0]
			comps = append(comps, map[string]any{"type": 1, "id": i + 1, "components": []any{
				map[string]any{"type": 4, "id": i + 100, "custom_id": t.CustomID, "value": values[t.CustomID]}}})
		case r.Type == typeLabel && r.Component != nil:
			c := *r.Component
			inner := map[string]any{"type": c.Type, "id": i + 100, "custom_id": c.CustomID}
			if c.Type == 3 {
				chosen := []string{}
				if v, ok := values[c.CustomID]; ok && v != "" {
					if !slices.ContainsFunc(options(c), func(o selectOption) bool { return o.Value == v }) {
						return nil, fmt.Errorf("select %q has no option %q", c.CustomID, v)
					}
					chosen = append(chosen, v)
				} else if !ok {
					// Left alone, a select submits its default options.
					for _, o := range options(c) {
						if o.Default {
							chosen = append(chosen, o.Value)
						}
					}
				}
				inner["values"] = chosen
			} else {
				inner["value"] = values[c.CustomID]
			}
			comps = append(comps, map[string]any{"type": typeLabel, "id": i + 1, "component": inner})
		default:
			return nil, fmt.Errorf("modal component %d is neither a row nor a label", i)
		}
	}
	return s.basePayload(TypeModal, channelID, userID, map[string]any{"custom_id": modal.CustomID, "components": comps}, m), nil
}
