package slackfake

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Menu limits: https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element
// (up to five options; two at least in the element's first documentation,
// which the fake keeps), https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element
// (up to 100) and https://docs.slack.dev/reference/block-kit/composition-objects/option-object
// (text up to 75 characters, value up to 150).
const (
	minOverflowOptions = 2
	maxOverflowOptions = 5
	maxSelectOptions   = 100
	maxOptionText      = 75
	maxOptionValue     = 150
)

// checkAccessory checks a section's accessory: a button, an overflow menu
// or a static select.
func (s *Server) checkAccessory(i int, method string, acc map[string]any, bad func(int, string, ...any)) {
	if id, _ := acc["action_id"].(string); len(id) > maxActionID {
		bad(i, "accessory action_id is %d characters, Slack allows %d", len(id), maxActionID)
	}
	switch acc["type"] {
	case "button":
		if v, _ := acc["value"].(string); len(v) > maxButtonValue {
			bad(i, "button value is %d characters, Slack allows %d", len(v), maxButtonValue)
		}
		t, _ := acc["text"].(map[string]any)
		if t == nil || t["type"] != "plain_text" {
			bad(i, "button text must be plain_text")
		} else {
			s.checkText(i, method, t, maxButtonText, bad)
		}
	case "overflow":
		s.checkOptions(i, method, acc, minOverflowOptions, maxOverflowOptions, bad)
	case "static_select":
		s.checkOptions(i, method, acc, 1, maxSelectOptions, bad)
	case "image", "datepicker", "timepicker", "checkboxes", "radio_buttons", "users_select", "conversations_select", "channels_select":
	default:
		bad(i, "accessory type %v is not allowed in a section", acc["type"])
	}
}

// checkOptions checks a menu's options: how many, their text and values,
// and that its initial option is one of them.
func (s *Server) checkOptions(i int, method string, el map[string]any, least, most int, bad func(int, string, ...any)) {
	opts, _ := el["options"].([]any)
	if len(opts) < least || len(opts) > most {
		bad(i, "%v has %d options, Slack allows %d-%d", el["type"], len(opts), least, most)
	}
	seen := map[string]bool{}
	for _, o := range opts {
		om, _ := o.(map[string]any)
		t, _ := om["text"].(map[string]any)
		if t == nil || t["type"] != "plain_text" {
			bad(i, "option text must be plain_text")
		} else {
			s.checkText(i, method, t, maxOptionText, bad)
		}
		v, _ := om["value"].(string)
		if n := runes(v); n == 0 || n > maxOptionValue {
			bad(i, "option value is %d characters, Slack allows 1-%d", n, maxOptionValue)
		}
		if seen[v] {
			bad(i, "option value %q is not unique", v)
		}
		seen[v] = true
	}
	// initial_option: "A single option that exactly matches one of the
	// options" (https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element#static_select);
	// Slack refuses the surface otherwise.
	if io, _ := el["initial_option"].(map[string]any); io != nil {
		v, _ := io["value"].(string)
		o, ok := optionByValue(el, v)
		if ok {
			ot, _ := o["text"].(map[string]any)
			it, _ := io["text"].(map[string]any)
			ok = ot != nil && it != nil && ot["type"] == it["type"] && ot["text"] == it["text"]
		}
		if !ok {
			bad(i, "initial_option %q is not one of the options", v)
		}
	}
}

// option finds the option of a menu element whose text is text.
func option(el map[string]any, text string) (map[string]any, bool) {
	opts, _ := el["options"].([]any)
	for _, o := range opts {
		om, _ := o.(map[string]any)
		t, _ := om["text"].(map[string]any)
		if s, _ := t["text"].(string); s == text {
			return om, true
		}
	}
	return nil, false
}

// optionByValue finds the option of a menu element whose value is value.
func optionByValue(el map[string]any, value string) (map[string]any, bool) {
	opts, _ := el["options"].([]any)
	for _, o := range opts {
		om, _ := o.(map[string]any)
		if v, _ := om["value"].(string); v == value {
			return om, true
		}
	}
	return nil, false
}

// Choose builds the block_actions payload of user acting on the section
// (of a stored message) whose text contains line: choosing the option
// whose text is label in its overflow menu, or pressing its button when
// the button's text is label.
func (s *Server) Choose(channel, ts, user, line, label string) (map[string]any, error) {
	m, ok := s.Message(channel, ts)
	if !ok {
		return nil, fmt.Errorf("no message %s in %s", ts, channel)
	}
	container := map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false}
	if m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	return s.choose(m.Blocks, container, msgJSON(&m, false), origin{channel: channel, user: user, source: ts}, line, label)
}

// ChooseInResponse is Choose on an ephemeral answer sent through a
// response URL to a command given in channel: Slack sends no message
// object for an ephemeral message, only its container.
func (s *Server) ChooseInResponse(r Response, channel, user, line, label string) (map[string]any, error) {
	container := map[string]any{"type": "message", "message_ts": r.TS, "channel_id": channel, "is_ephemeral": true}
	return s.choose(r.Blocks, container, nil, responseOrigin(r, channel, user), line, label)
}

func (s *Server) choose(raw json.RawMessage, container, message map[string]any, o origin, line, label string) (map[string]any, error) {
	channel, user := o.channel, o.user
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("message blocks: %w", err)
	}
	for _, b := range blocks {
		t, _ := b["text"].(map[string]any)
		txt, _ := t["text"].(string)
		acc, _ := b["accessory"].(map[string]any)
		if b["type"] != "section" || acc == nil || !strings.Contains(txt, line) {
			continue
		}
		act := map[string]any{"type": acc["type"], "action_id": acc["action_id"], "block_id": b["block_id"],
			"action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), 1)}
		switch acc["type"] {
		case "overflow":
			o, ok := option(acc, label)
			if !ok {
				return nil, fmt.Errorf("the menu beside %q has no option %q", line, label)
			}
			act["selected_option"] = o
		case "button":
			bt, _ := acc["text"].(map[string]any)
			if s, _ := bt["text"].(string); s != label {
				return nil, fmt.Errorf("the button beside %q is %q, not %q", line, s, label)
			}
			act["text"], act["value"] = acc["text"], acc["value"]
		default:
			return nil, fmt.Errorf("the accessory beside %q is a %v", line, acc["type"])
		}
		c := s.channel(channel)
		team := s.TeamOf(channel)
		p := map[string]any{
			"type": "block_actions", "token": "deprecated-verification-token", "api_app_id": "A0FAKE",
			"user":      map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": s.userTeam(user, team)},
			"team":      map[string]any{"id": team, "domain": "fake"},
			"channel":   map[string]any{"id": channel, "name": c.Name},
			"container": container, "trigger_id": s.newTrigger(team), "response_url": s.responseURL(o),
			"actions": []any{act}, "state": map[string]any{"values": map[string]any{}},
		}
		if message != nil {
			p["message"] = message
		}
		return p, nil
	}
	return nil, fmt.Errorf("no section with an action whose text contains %q", line)
}
