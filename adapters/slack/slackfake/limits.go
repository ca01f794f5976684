package slackfake

import (
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Slack's documented limits (https://docs.slack.dev/reference/block-kit/blocks,
// https://docs.slack.dev/reference/block-kit/block-elements,
// https://docs.slack.dev/reference/methods/chat.postMessage,
// https://docs.slack.dev/reference/views).
const (
	maxMessageBlocks  = 50
	maxModalBlocks    = 100
	maxMessageText    = 40000
	maxSectionText    = 3000
	maxSectionFields  = 10
	maxFieldText      = 2000
	maxHeaderText     = 150
	maxActionElements = 25
	maxActionID       = 255
	maxBlockID        = 255
	maxButtonValue    = 2000
	maxButtonText     = 75
	maxContextElems   = 10
	maxContextText    = 3000
	maxModalTitle     = 24
	maxCallbackID     = 255
	maxPrivateMeta    = 3000
	maxInputLabel     = 2000
	maxPlaceholder    = 150
	maxInputLength    = 3000
)

// broadcast matches a mention that pings a whole channel or workspace.
var broadcast = regexp.MustCompile(`<!(channel|here|everyone)(\|[^>]*)?>`)

func runes(s string) int { return utf8.RuneCountInString(s) }

// clip cuts a message's text to the 40,000 characters Slack keeps: longer
// text is truncated and posted with a message_truncated warning, not
// refused (https://api.slack.com/changelog/2018-04-truncating-really-long-messages,
// for chat.postMessage, chat.postEphemeral and response URLs alike). The
// 4,000 characters https://docs.slack.dev/reference/methods/chat.postMessage
// mentions are advice ("for best results"), with or without blocks: Slack
// refuses and cuts nothing there, and neither does the fake.
func clip(text string) (string, bool) {
	if runes(text) <= maxMessageText {
		return text, false
	}
	return string([]rune(text)[:maxMessageText]), true
}

// warnTruncated adds to a successful answer the warning Slack gives when it
// truncated the text.
func warnTruncated(res map[string]any, clipped bool) map[string]any {
	if clipped && res != nil && res["ok"] == true {
		res["warning"] = "message_truncated"
		res["response_metadata"] = map[string]any{
			"warnings": []string{"message_truncated"},
			"messages": []string{"[WARN] Your message was truncated but still posted. The `text` field accepts up to 40,000 characters."},
		}
	}
	return res
}

// checkMessage checks a message's text and blocks; it returns the error code
// Slack would answer, after reporting a violation ("" when all is well).
func (s *Server) checkMessage(method, text, blocks string) string {
	if runes(text) > maxMessageText {
		// Slack posts it, cut (see clip): a violation, as the rest is lost.
		s.violate("%s: text is %d characters, Slack truncates it to %d", method, runes(text), maxMessageText)
	}
	if broadcast.MatchString(text) {
		s.violate("%s: text pings a whole channel: %q", method, broadcast.FindString(text))
	}
	if blocks == "" || blocks == "[]" {
		// slack-go sends "[]" for a message without blocks.
		if strings.TrimSpace(text) == "" {
			s.violate("%s: neither text nor blocks", method)
			return "no_text"
		}
		return ""
	}
	var bs []map[string]any
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		s.violate("%s: blocks are not a JSON array: %v", method, err)
		return "invalid_blocks_format"
	}
	if len(bs) > maxMessageBlocks {
		s.violate("%s: %d blocks, Slack allows %d", method, len(bs), maxMessageBlocks)
		return "invalid_blocks"
	}
	if len(bs) > 0 && text == "" {
		s.violate("%s: blocks without a top-level text (notifications and screen readers show nothing)", method)
	}
	if !s.checkBlocks(method, bs, false) {
		return "invalid_blocks"
	}
	return ""
}

// checkView checks a modal view.
func (s *Server) checkView(v map[string]any) string {
	ok := true
	bad := func(format string, args ...any) {
		s.violate("views.open: "+format, args...)
		ok = false
	}
	if v["type"] != "modal" {
		bad("view type %v, want modal", v["type"])
	}
	for _, k := range []string{"title", "submit", "close"} {
		t, _ := v[k].(map[string]any)
		if t == nil {
			if k == "title" {
				bad("modal has no title")
			}
			continue
		}
		if t["type"] != "plain_text" {
			bad("%s must be plain_text", k)
		}
		if txt, _ := t["text"].(string); runes(txt) > maxModalTitle || txt == "" {
			bad("%s %q is %d characters, Slack allows 1-%d", k, txt, runes(txt), maxModalTitle)
		}
	}
	if id, _ := v["callback_id"].(string); len(id) > maxCallbackID {
		bad("callback_id is %d characters", len(id))
	}
	if pm, _ := v["private_metadata"].(string); runes(pm) > maxPrivateMeta {
		bad("private_metadata is %d characters, Slack allows %d", runes(pm), maxPrivateMeta)
	}
	blocks, _ := v["blocks"].([]any)
	if len(blocks) > maxModalBlocks {
		bad("%d blocks, Slack allows %d", len(blocks), maxModalBlocks)
	}
	var bs []map[string]any
	for _, b := range blocks {
		m, _ := b.(map[string]any)
		bs = append(bs, m)
	}
	if !s.checkBlocks("views.open", bs, true) || !ok {
		return "invalid_arguments"
	}
	return ""
}

// checkBlocks checks each block against its limits.
func (s *Server) checkBlocks(method string, bs []map[string]any, modal bool) bool {
	ok := true
	bad := func(i int, format string, args ...any) {
		s.violate("%s: block %d: "+format, append([]any{method, i}, args...)...)
		ok = false
	}
	blockIDs := map[string]bool{}
	for i, b := range bs {
		if id, _ := b["block_id"].(string); id != "" {
			if len(id) > maxBlockID {
				bad(i, "block_id is %d characters", len(id))
			}
			if blockIDs[id] {
				bad(i, "block_id %q is not unique", id)
			}
			blockIDs[id] = true
		}
		switch b["type"] {
		case "section":
			t, _ := b["text"].(map[string]any)
			fields, _ := b["fields"].([]any)
			if t == nil && len(fields) == 0 {
				bad(i, "section has neither text nor fields")
			}
			if t != nil {
				txt := s.checkText(i, method, t, maxSectionText, bad)
				if txt == "" {
					bad(i, "section text is empty")
				}
			}
			if len(fields) > maxSectionFields {
				bad(i, "%d fields, Slack allows %d", len(fields), maxSectionFields)
			}
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				s.checkText(i, method, fm, maxFieldText, bad)
			}
			if acc, _ := b["accessory"].(map[string]any); acc != nil {
				s.checkAccessory(i, method, acc, bad)
			}
		case "header":
			t, _ := b["text"].(map[string]any)
			if t == nil || t["type"] != "plain_text" {
				bad(i, "header text must be plain_text")
				continue
			}
			s.checkText(i, method, t, maxHeaderText, bad)
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > maxContextElems {
				bad(i, "context has %d elements, Slack allows 1-%d", len(els), maxContextElems)
			}
			for _, e := range els {
				em, _ := e.(map[string]any)
				if em["type"] == "mrkdwn" || em["type"] == "plain_text" {
					s.checkText(i, method, em, maxContextText, bad)
				}
			}
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > maxActionElements {
				bad(i, "actions block has %d elements, Slack allows 1-%d", len(els), maxActionElements)
			}
			ids := map[string]bool{}
			for _, e := range els {
				em, _ := e.(map[string]any)
				id, _ := em["action_id"].(string)
				if len(id) > maxActionID {
					bad(i, "action_id is %d characters, Slack allows %d", len(id), maxActionID)
				}
				if id != "" && ids[id] {
					bad(i, "action_id %q is not unique in its block", id)
				}
				ids[id] = true
				if em["type"] == "static_select" {
					s.checkOptions(i, method, em, 1, maxSelectOptions, bad)
				}
				if em["type"] == "button" {
					if v, _ := em["value"].(string); len(v) > maxButtonValue {
						bad(i, "button value is %d characters, Slack allows %d", len(v), maxButtonValue)
					}
					t, _ := em["text"].(map[string]any)
					if t == nil || t["type"] != "plain_text" {
						bad(i, "button text must be plain_text")
					} else {
						s.checkText(i, method, t, maxButtonText, bad)
					}
				}
			}
		case "rich_text":
			s.checkRichText(i, b, bad)
		case "divider", "image":
		case "input":
			if !modal {
				bad(i, "input blocks belong in modals")
			}
			l, _ := b["label"].(map[string]any)
			if l == nil {
				bad(i, "input has no label")
			} else {
				s.checkText(i, method, l, maxInputLabel, bad)
			}
			el, _ := b["element"].(map[string]any)
			if el == nil {
				bad(i, "input has no element")
				continue
			}
			if p, _ := el["placeholder"].(map[string]any); p != nil {
				s.checkText(i, method, p, maxPlaceholder, bad)
			}
			if ml, _ := el["max_length"].(float64); ml > maxInputLength {
				bad(i, "max_length %v, Slack allows %d", ml, maxInputLength)
			}
			if ml, _ := el["min_length"].(float64); ml > maxInputLength {
				bad(i, "min_length %v, Slack allows %d", ml, maxInputLength)
			}
			switch el["type"] {
			case "plain_text_input":
				// A prefilled value longer than the input takes is refused
				// (https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element:
				// max_length is "the maximum length of input that the user can provide").
				iv, _ := el["initial_value"].(string)
				if ml, ok := el["max_length"].(float64); ok && float64(runes(iv)) > ml {
					bad(i, "initial_value is %d characters, longer than max_length %v", runes(iv), ml)
				}
			case "static_select":
				s.checkOptions(i, method, el, 1, maxSelectOptions, bad)
			default:
				bad(i, "input element type %v is not one the fake knows", el["type"])
			}
		default:
			bad(i, "unknown block type %v", b["type"])
		}
	}
	return ok
}

// richTextKinds are a rich_text block's elements
// (https://docs.slack.dev/reference/block-kit/blocks/rich-text-block): a
// list holds sections, the others inline elements.
var richTextKinds = map[string]bool{"rich_text_section": true, "rich_text_quote": true, "rich_text_preformatted": true, "rich_text_list": true}

// richTextInline are the inline elements of a section, quote or
// preformatted element.
var richTextInline = map[string]bool{"text": true, "link": true, "user": true, "usergroup": true, "channel": true, "emoji": true,
	"broadcast": true, "date": true, "color": true, "team": true}

// checkRichText checks a rich_text block: known elements, each holding
// what it may, text elements with text. Text elements are shown as written
// (no mrkdwn, no mention); a broadcast element pings the channel, a
// usergroup element a whole group.
func (s *Server) checkRichText(i int, b map[string]any, bad func(int, string, ...any)) {
	els, _ := b["elements"].([]any)
	if len(els) == 0 {
		bad(i, "rich_text has no elements")
	}
	for _, e := range els {
		em, _ := e.(map[string]any)
		kind, _ := em["type"].(string)
		if !richTextKinds[kind] {
			bad(i, "rich_text element type %q is not one Slack knows", kind)
			continue
		}
		inner, _ := em["elements"].([]any)
		if len(inner) == 0 {
			bad(i, "%s has no elements", kind)
		}
		for _, x := range inner {
			xm, _ := x.(map[string]any)
			if kind == "rich_text_list" {
				if xm["type"] != "rich_text_section" {
					bad(i, "a rich_text_list holds rich_text_section elements, not %v", xm["type"])
					continue
				}
				sec, _ := xm["elements"].([]any)
				for _, y := range sec {
					ym, _ := y.(map[string]any)
					s.checkInline(i, kind, ym, bad)
				}
				continue
			}
			s.checkInline(i, kind, xm, bad)
		}
	}
}

// checkInline checks one inline rich text element inside kind.
func (s *Server) checkInline(i int, kind string, x map[string]any, bad func(int, string, ...any)) {
	t, _ := x["type"].(string)
	switch {
	case !richTextInline[t]:
		bad(i, "%s holds inline elements, not %q", kind, t)
	case t == "text":
		if txt, _ := x["text"].(string); txt == "" {
			bad(i, "%s: a text element has no text", kind)
		}
	case t == "broadcast":
		bad(i, "%s pings a whole channel: broadcast %v", kind, x["range"])
	case t == "usergroup":
		bad(i, "%s pings a whole user group: %v", kind, x["usergroup_id"])
	}
}

// checkText checks one text object's length and that it pings no one.
func (s *Server) checkText(i int, method string, t map[string]any, limit int, bad func(int, string, ...any)) string {
	txt, _ := t["text"].(string)
	if runes(txt) > limit {
		bad(i, "text is %d characters, Slack allows %d", runes(txt), limit)
	}
	if runes(txt) == 0 {
		// https://docs.slack.dev/reference/block-kit/composition-objects/text-object: "text" minimum length 1.
		bad(i, "text object is empty: Slack requires at least one character")
	}
	if broadcast.MatchString(txt) {
		bad(i, "text pings a whole channel: %q", broadcast.FindString(txt))
	}
	if typ, _ := t["type"].(string); typ != "mrkdwn" && typ != "plain_text" {
		bad(i, "text object type %q", typ)
	}
	return strings.TrimSpace(txt)
}
