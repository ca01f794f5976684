package slack

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Block Kit limits, from https://docs.slack.dev/reference/block-kit/blocks and
// https://docs.slack.dev/reference/block-kit/block-elements.
const (
	// MaxBlocks is the most blocks one message may carry.
	MaxBlocks = 50
	// MaxSectionText is the most characters in a section's text.
	MaxSectionText = 3000
	// MaxSectionFields is the most fields in one section.
	MaxSectionFields = 10
	// MaxFieldText is the most characters in one section field.
	MaxFieldText = 2000
	// MaxHeaderText is the most characters in a header block.
	MaxHeaderText = 150
	// MaxActionElements is the most elements in one actions block.
	MaxActionElements = 25
	// MaxActionID is the longest action_id.
	MaxActionID = 255
	// MaxButtonValue is the longest button value.
	MaxButtonValue = 2000
	// MaxButtonText is the longest button label.
	MaxButtonText = 75
	// MaxContextElements is the most elements in one context block.
	MaxContextElements = 10
	// MaxContextText is the most characters in one context element.
	MaxContextText = 2000
	// MaxMessageText is the most characters of the top-level text we send
	// (Slack truncates beyond 40,000; notifications show far less).
	MaxMessageText = 3000
	// MaxModalTitle is the longest modal title, submit or close label.
	MaxModalTitle = 24
	// MaxModalBlocks is the most blocks in a modal.
	MaxModalBlocks = 100
	// MaxInputLabel is the longest input block label.
	MaxInputLabel = 2000
	// MaxPlaceholder is the longest placeholder.
	MaxPlaceholder = 150
	// MaxInputLength is the largest max_length of a plain_text_input.
	MaxInputLength = 3000
	// MaxPrivateMetadata is the most characters of a view's private_metadata.
	MaxPrivateMetadata = 3000
)

// ellipsis ends text that was cut.
const ellipsis = "…"

// escaper escapes the three characters Slack treats as markup in any text
// (https://docs.slack.dev/messaging/formatting-message-text#escaping).
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape returns s with &, < and > escaped, so that "<!channel>" in it is shown
// literally and pings no one.
func Escape(s string) string { return escaper.Replace(s) }

// cut returns s (already escaped mrkdwn) shortened to at most max runes,
// ending in an ellipsis when it was cut. It never cuts inside a rune, an
// entity (&amp;) or a link (<url|label>).
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(ellipsis)
	if keep < 0 {
		keep = 0
	}
	i, n := 0, 0
	for i < len(s) && n < keep {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	head := s[:i]
	return head[:closedEnd(head)] + ellipsis
}

// closedEnd is where head (escaped mrkdwn cut short) ends without an
// entity (&amp;) or a link (<url|label>) left open: len(head), or where
// the open one starts.
func closedEnd(head string) int {
	if amp := strings.LastIndexByte(head, '&'); amp >= 0 && !strings.Contains(head[amp:], ";") {
		head = head[:amp]
	}
	if lt := strings.LastIndexByte(head, '<'); lt >= 0 && !strings.Contains(head[lt:], ">") {
		head = head[:lt]
	}
	return len(head)
}

// linkURL is raw made safe inside <url|label>: only http(s) URLs with a
// host, and no character that could end the URL early or start a new label
// ("|", ">", "<", spaces) survives unencoded. Anything else gives "".
func linkURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	r := strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20", "&", "&amp;")
	return r.Replace(u.String())
}

// span renders one span as mrkdwn. All text is escaped; untrusted text never
// becomes a link or a mention.
func span(s bot.Span) string {
	if m := mentionOf(s); m != "" {
		return m
	}
	if d := dateOf(s); d != "" {
		return d
	}
	text := Escape(s.Text)
	if s.Untrusted {
		if s.Link != "" {
			text += " (" + Escape(s.Link) + ")"
		}
		return text
	}
	if link := linkURL(s.Link); link != "" {
		label := strings.ReplaceAll(text, "|", "¦")
		if label == "" {
			return "<" + link + ">"
		}
		return "<" + link + "|" + label + ">"
	} else if s.Link != "" {
		return text // not a web link: show the label alone
	}
	var mark string
	switch s.Style {
	case bot.StyleBold:
		mark = "*"
	case bot.StyleItalic:
		mark = "_"
	case bot.StyleCode:
		mark = "`"
		text = strings.ReplaceAll(text, "`", "ˋ")
	default:
		return text
	}
	core := strings.TrimSpace(text)
	if core == "" {
		return text
	}
	lead := text[:strings.Index(text, core)]
	trail := text[len(lead)+len(core):]
	return lead + mark + core + mark + trail
}

// line renders a line of spans as mrkdwn.
func line(l bot.Line) string {
	var b strings.Builder
	for _, s := range l {
		b.WriteString(span(s))
	}
	return b.String()
}

// plainLine renders a line as escaped plain text (for plain_text objects and
// the notification text).
func plainLine(l bot.Line) string {
	var b strings.Builder
	for _, s := range l {
		b.WriteString(s.Text)
	}
	return b.String()
}

func mrkdwn(s string) *slack.TextBlockObject {
	return &slack.TextBlockObject{Type: slack.MarkdownType, Text: s, Verbatim: true}
}

func plain(s string) *slack.TextBlockObject {
	return &slack.TextBlockObject{Type: slack.PlainTextType, Text: s, Emoji: new(true)}
}

// severityIcon marks a card's severity in its header.
func severityIcon(s bot.Severity) string {
	switch s {
	case bot.SeverityCritical:
		return ":red_circle: "
	case bot.SeverityHigh:
		return ":large_orange_circle: "
	case bot.SeverityMedium:
		return ":large_yellow_circle: "
	case bot.SeverityLow:
		return ":large_blue_circle: "
	case bot.SeverityInformational:
		return ":white_circle: "
	}
	return ""
}

// paragraphs packs mrkdwn paragraphs into as few section texts as fit in
// MaxSectionText, splitting any single paragraph that is too long on its
// own (escaping can take the bot's 1,800 characters past 3,000: "&" is
// "&amp;") over several.
func paragraphs(ps []string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, whole := range ps {
		for _, p := range split(whole, MaxSectionText) {
			if p == "" {
				continue
			}
			if cur.Len() > 0 && utf8.RuneCountInString(cur.String())+1+utf8.RuneCountInString(p) > MaxSectionText {
				flush()
			}
			if cur.Len() > 0 {
				cur.WriteByte('\n')
			}
			cur.WriteString(p)
		}
	}
	flush()
	return out
}

// split cuts s (escaped mrkdwn) into pieces of at most max runes, never
// inside a rune, an entity (&amp;) or a link (<url|label>).
func split(s string, max int) []string {
	var out []string
	for utf8.RuneCountInString(s) > max {
		i, n := 0, 0
		for i < len(s) && n < max {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			n++
		}
		head := s[:i]
		if j := closedEnd(head); j > 0 { // never an empty piece
			head = head[:j]
		}
		out = append(out, head)
		s = s[len(head):]
	}
	return append(out, s)
}

// RenderBlocks renders m as Block Kit blocks within Slack's limits, and the
// top-level text Slack shows in notifications.
func RenderBlocks(m bot.Message) ([]slack.Block, string) {
	m = onlyListed(m)
	var blocks []slack.Block
	if m.Title != "" {
		blocks = append(blocks, slack.NewHeaderBlock(plain(cut(severityIcon(m.Severity)+Escape(m.Title), MaxHeaderText))))
	}
	var text []string
	for _, l := range m.Text {
		text = append(text, line(l))
	}
	for _, t := range paragraphs(text) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	if q := quoteBlock(m.Quote); q != nil {
		blocks = append(blocks, q)
	}
	for i := 0; i < len(m.Fields); i += MaxSectionFields {
		var fields []*slack.TextBlockObject
		for _, f := range m.Fields[i:min(i+MaxSectionFields, len(m.Fields))] {
			v := line(f.Value)
			if v == "" {
				v = "—"
			}
			fields = append(fields, mrkdwn(cut("*"+Escape(f.Label)+"*\n"+v, MaxFieldText)))
		}
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	for _, s := range m.Sections {
		ps := []string{}
		if s.Title != "" {
			ps = append(ps, "*"+Escape(s.Title)+"*")
		}
		for _, l := range s.Lines {
			ps = append(ps, line(l))
		}
		if s.More > 0 {
			ps = append(ps, "_and "+strconv.Itoa(s.More)+" more_")
		}
		for _, t := range paragraphs(ps) {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
		}
	}
	blocks = append(blocks, itemBlocks(m.Items)...)
	blocks = append(blocks, buttons(m.Buttons)...)
	if footer := cut(line(m.Footer), MaxContextText); strings.TrimSpace(footer) != "" {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(footer)))
	}
	if len(blocks) > MaxBlocks {
		blocks = append(blocks[:MaxBlocks-1], slack.NewContextBlock("", mrkdwn("_Shortened: Slack shows at most 50 blocks in a message._")))
	}
	fallback := m.Fallback
	if fallback == "" {
		fallback = m.Title
	}
	if fallback == "" && len(m.Text) > 0 {
		fallback = plainLine(m.Text[0])
	}
	return blocks, notifyText(m) + cut(Escape(fallback), MaxMessageText-len(notifyText(m)))
}

// quoteBlock shows q (a Message.Quote) as a rich text quote: rich text
// elements of type text are shown as written (mrkdwn is not parsed in
// them, and they ping no one), so no line of it can pass for the bot's
// own. nil for no quote.
func quoteBlock(q string) slack.Block {
	if strings.TrimSpace(q) == "" {
		return nil
	}
	return slack.NewRichTextBlock("", &slack.RichTextQuote{Type: slack.RTEQuote,
		Elements: []slack.RichTextSectionElement{slack.NewRichTextSectionTextElement(q, nil)}})
}

// actionSep separates an action from the index that keeps action_ids unique
// within an actions block ("ask_entity/2").
const actionSep = "/"

// buttons lays buttons out in actions blocks of at most MaxActionElements.
func buttons(bs []bot.Button) []slack.Block {
	var out []slack.Block
	var row []slack.BlockElement
	used := map[string]int{}
	for _, b := range bs {
		if len(b.Value) > MaxButtonValue {
			continue // ids only: a longer value is a bug upstream, never cut an id
		}
		id := string(b.Action)
		if n := used[id]; n > 0 {
			id += actionSep + strconv.Itoa(n)
		}
		used[string(b.Action)]++
		if len(id) > MaxActionID {
			continue
		}
		label := cmp.Or(strings.TrimSpace(b.Label), string(b.Action)) // Slack refuses an empty label
		el := slack.NewButtonBlockElement(id, b.Value, plain(cut(Escape(label), MaxButtonText)))
		switch b.Style {
		case bot.ButtonPrimary:
			el.Style = slack.StylePrimary
		case bot.ButtonDanger:
			el.Style = slack.StyleDanger
		}
		row = append(row, el)
		if len(row) == MaxActionElements {
			out = append(out, slack.NewActionBlock("", row...))
			row, used = nil, map[string]int{}
		}
	}
	if len(row) > 0 {
		out = append(out, slack.NewActionBlock("", row...))
	}
	return out
}

// actionOf recovers the bot action from a button's action_id.
func actionOf(actionID string) bot.ActionID {
	id, _, _ := strings.Cut(actionID, actionSep)
	return bot.ActionID(id)
}

// formMeta is what a modal's private_metadata carries back.
type formMeta struct {
	State   string `json:"s,omitempty"`
	Channel string `json:"c,omitempty"`
}

// RenderModal renders f as a modal view; channel is where the form was
// opened from, carried back with the submission.
func RenderModal(f bot.Form, channel string) (slack.ModalViewRequest, error) {
	meta, err := json.Marshal(formMeta{State: f.State, Channel: channel})
	if err != nil {
		return slack.ModalViewRequest{}, fmt.Errorf("encode form state: %w", err)
	}
	if utf8.RuneCount(meta) > MaxPrivateMetadata {
		return slack.ModalViewRequest{}, fmt.Errorf("form %q: state longer than %d characters", f.ID, MaxPrivateMetadata)
	}
	if len(f.Fields) > MaxModalBlocks {
		return slack.ModalViewRequest{}, fmt.Errorf("form %q: %d fields, Slack allows %d", f.ID, len(f.Fields), MaxModalBlocks)
	}
	submit := cmp.Or(f.Submit, "Submit")
	v := slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain(cut(Escape(cmp.Or(f.Title, "threatdesk")), MaxModalTitle)),
		Submit:          plain(cut(Escape(submit), MaxModalTitle)),
		Close:           plain("Cancel"),
		CallbackID:      f.ID,
		PrivateMetadata: string(meta),
	}
	for _, ff := range f.Fields {
		if ff.Kind == bot.InputSelect {
			in := slack.NewInputBlock(ff.ID, plain(cut(Escape(cmp.Or(ff.Label, ff.ID)), MaxInputLabel)), nil, selectElement(ff))
			in.Optional = !ff.Required
			v.Blocks.BlockSet = append(v.Blocks.BlockSet, in)
			continue
		}
		el := slack.NewPlainTextInputBlockElement(nil, ff.ID)
		if ff.Placeholder != "" {
			el.Placeholder = plain(cut(Escape(ff.Placeholder), MaxPlaceholder))
		}
		el.Multiline = ff.Kind == bot.InputParagraph
		el.MaxLength = min(ff.MaxLength, MaxInputLength)
		if ff.MaxLength == 0 {
			el.MaxLength = MaxInputLength
		}
		el.MinLength = min(ff.MinLength, el.MaxLength)
		// A prefilled value longer than the field allows would make Slack refuse the view.
		el.InitialValue = cutPlain(ff.Value, el.MaxLength)
		in := slack.NewInputBlock(ff.ID, plain(cut(Escape(cmp.Or(ff.Label, ff.ID)), MaxInputLabel)), nil, el)
		in.Optional = !ff.Required
		v.Blocks.BlockSet = append(v.Blocks.BlockSet, in)
	}
	return v, nil
}

// cutPlain shortens s to at most n runes without an ellipsis (a prefilled
// input the user edits).
func cutPlain(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
