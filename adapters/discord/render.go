package discord

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// Discord's message limits, counted here in runes.
// Embeds: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// Messages: https://discord.com/developers/docs/resources/message#create-message
// Components: https://discord.com/developers/docs/components/reference
// Modals: https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-modal
const (
	MaxContent          = 2000
	MaxEmbedTitle       = 256
	MaxEmbedDescription = 4096
	MaxEmbedFields      = 25
	MaxFieldName        = 256
	MaxFieldValue       = 1024
	MaxFooter           = 2048
	MaxEmbedTotal       = 6000
	MaxButtonsPerRow    = 5
	MaxRows             = 5
	MaxCustomID         = 100
	MaxButtonLabel      = 80
	MaxModalTitle       = 45
	MaxModalInputs      = 5
	MaxInputLabel       = 45
	MaxPlaceholder      = 100
	MaxInputValue       = 4000
	MaxThreadName       = 100
	// MaxNonce is the longest string nonce Discord accepts on message create.
	MaxNonce = 25
)

// ellipsis marks text that was cut.
const ellipsis = "…"

// allowedMentions is always sent with an empty parse list: no text in a
// message may ping @everyone, @here, a role or a user. The users a message
// is meant for (bot.Message.Mentions) are listed by id, and only they are
// pinged: {"parse": [], "users": [...]}.
// https://discord.com/developers/docs/resources/message#allowed-mentions-object
type allowedMentions struct{ users []string }

func (a allowedMentions) MarshalJSON() ([]byte, error) {
	if len(a.users) == 0 {
		return []byte(`{"parse":[]}`), nil
	}
	return json.Marshal(struct {
		Parse []string `json:"parse"`
		Users []string `json:"users"`
	}{Parse: []string{}, Users: a.users})
}

// messagePayload is the JSON body of a message create or edit, of an
// interaction message response and of a webhook followup.
type messagePayload struct {
	Content         string                       `json:"content"`
	Embeds          []*discordgo.MessageEmbed    `json:"embeds"`
	Components      []discordgo.MessageComponent `json:"components"`
	AllowedMentions allowedMentions              `json:"allowed_mentions"`
	Flags           int                          `json:"flags,omitempty"`
	Nonce           string                       `json:"nonce,omitempty"`
	EnforceNonce    bool                         `json:"enforce_nonce,omitempty"`
	// Attachments describe the files[n] parts of a multipart body (files.go).
	Attachments []attachment `json:"attachments,omitempty"`
}

// Message flags. https://discord.com/developers/docs/resources/message#message-object-message-flags
const flagEphemeral = 1 << 6

// severityColor colours a card's embed.
func severityColor(s bot.Severity) int {
	switch s {
	case bot.SeverityCritical:
		return 0x8B0000
	case bot.SeverityHigh:
		return 0xE01E5A
	case bot.SeverityMedium:
		return 0xECB22E
	case bot.SeverityLow:
		return 0x2EB67D
	case bot.SeverityInformational:
		return 0x36C5F0
	}
	return 0x5865F2
}

// render turns a bot message into a Discord message within the limits.
func render(m bot.Message) messagePayload {
	users := listed(m)
	m = onlyListed(m, users)
	p := messagePayload{Embeds: []*discordgo.MessageEmbed{}, Components: renderButtons(m.Buttons), AllowedMentions: allowedMentions{users: users}}
	p.Components = append(p.Components, itemSelects(m.Items, MaxRows-len(p.Components))...)
	if m.Title == "" && len(m.Fields) == 0 && len(m.Sections) == 0 && len(m.Items) == 0 {
		body := withQuote(renderLines(m.Text), m.Quote, len(m.Footer) == 0)
		if len(m.Footer) > 0 {
			if body != "" {
				body += "\n"
			}
			body += "-# " + renderLine(m.Footer, false)
		}
		if strings.TrimSpace(body) == "" {
			body = escape(m.Fallback, true)
		}
		if utf8.RuneCountInString(notifyLine(users, body)+body) > MaxContent {
			// Escaping can take a text the bot keeps within 1,800
			// characters past the 2,000 of content: an embed's
			// description holds 4,096. Embeds ping no one, so whoever the
			// message is meant for is named in the content.
			p.Content = strings.TrimSpace(notifyLine(users, ""))
			p.Embeds = append(p.Embeds, &discordgo.MessageEmbed{Description: cut(body, MaxEmbedDescription), Color: severityColor(m.Severity)})
			return p
		}
		p.Content = notifyLine(users, body) + body
		return p
	}
	e := &discordgo.MessageEmbed{
		Title:       cut(escape(m.Title, true), MaxEmbedTitle),
		Description: cut(withQuote(renderLines(m.Text), m.Quote, true), MaxEmbedDescription),
		Color:       severityColor(m.Severity),
	}
	for _, f := range m.Fields {
		if len(e.Fields) == MaxEmbedFields {
			break
		}
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{
			Name:   nonEmpty(cut(escape(f.Label, true), MaxFieldName)),
			Value:  nonEmpty(cut(renderLine(f.Value, true), MaxFieldValue)),
			Inline: true,
		})
	}
	for _, s := range m.Sections {
		if len(e.Fields) == MaxEmbedFields {
			break
		}
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{
			Name:  nonEmpty(cut(escape(s.Title, true), MaxFieldName)),
			Value: nonEmpty(renderSection(s)),
		})
	}
	for _, f := range itemFields(m.Items) {
		if len(e.Fields) == MaxEmbedFields {
			break
		}
		e.Fields = append(e.Fields, f)
	}
	if len(m.Footer) > 0 {
		// Embed footers show text as is: no markdown, no mentions.
		e.Footer = &discordgo.MessageEmbedFooter{Text: cut(plainLine(m.Footer), MaxFooter)}
	}
	fitEmbed(e)
	p.Embeds = append(p.Embeds, e)
	// Mentions in embeds never ping: the content names who the card is for.
	p.Content = strings.TrimSpace(notifyLine(users, ""))
	return p
}

// nonEmpty keeps Discord from rejecting an empty field name or value.
func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "\u200b"
	}
	return s
}

// embedLength counts what Discord counts towards the 6000 total.
func embedLength(e *discordgo.MessageEmbed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	if e.Author != nil {
		n += utf8.RuneCountInString(e.Author.Name)
	}
	return n
}

// fitEmbed brings an embed under the 6000 total, losing as little as it
// can and never without a mark: the description is cut first (down to a
// quarter of its limit), then the longest field values are cut (each down
// to minFieldKeep, ending in "…"), and only then are trailing fields left
// out, with a last line of the description saying how many.
func fitEmbed(e *discordgo.MessageEmbed) {
	over := embedLength(e) - MaxEmbedTotal
	if over <= 0 {
		return
	}
	if d := utf8.RuneCountInString(e.Description); d > 0 {
		keep := max(d-over, min(d, MaxEmbedDescription/4))
		e.Description = cut(e.Description, keep)
	}
	for over = embedLength(e) - MaxEmbedTotal; over > 0; over = embedLength(e) - MaxEmbedTotal {
		longest, n := -1, minFieldKeep
		for i, f := range e.Fields {
			if l := utf8.RuneCountInString(f.Value); l > n {
				longest, n = i, l
			}
		}
		if longest < 0 {
			break
		}
		e.Fields[longest].Value = cut(e.Fields[longest].Value, max(n-over, minFieldKeep))
	}
	if embedLength(e) <= MaxEmbedTotal {
		return
	}
	const mark = "\n*(%d more %s left out: too long for Discord)*"
	dropped := 0
	for len(e.Fields) > 0 && embedLength(e)+len(mark)+8 > MaxEmbedTotal {
		e.Fields = e.Fields[:len(e.Fields)-1]
		dropped++
	}
	if dropped > 0 {
		e.Description += fmt.Sprintf(mark, dropped, plural.Word(dropped, "section", "sections"))
	}
	if over := embedLength(e) - MaxEmbedTotal; over > 0 {
		e.Description = cut(e.Description, max(0, utf8.RuneCountInString(e.Description)-over))
	}
}

// minLineKeep is the least of a section's line renderSection shows cut
// rather than leaving it out.
const minLineKeep = 100

// minFieldKeep is the least of a field's value fitEmbed keeps before it
// leaves fields out.
const minFieldKeep = 200

// renderSection renders a section's lines into one field value, whole lines
// only, with "and N more" for what did not fit.
func renderSection(s bot.Section) string {
	var b strings.Builder
	more := s.More
	for i, l := range s.Lines {
		line := renderLine(l, true)
		left := len(s.Lines) - i - 1 + s.More
		tail := 0
		if left > 0 {
			tail = len(fmt.Sprintf("\n… and %d more", left+1))
		}
		sep := 0
		if b.Len() > 0 {
			sep = 1
		}
		if utf8.RuneCountInString(b.String())+sep+utf8.RuneCountInString(line)+tail > MaxFieldValue {
			more = len(s.Lines) - i + s.More
			// The line is cut to the room left when that is worth reading
			// (or it is the first): a long text after a short first line
			// (a card's "cut here" mark) is shown, not left out.
			room := MaxFieldValue - utf8.RuneCountInString(b.String()) - sep - len(fmt.Sprintf("\n… and %d more", more))
			if b.Len() == 0 || room >= minLineKeep {
				if sep == 1 {
					b.WriteByte('\n')
				}
				b.WriteString(cut(line, room))
				more--
			}
			break
		}
		if sep == 1 {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	if more > 0 {
		b.WriteString(fmt.Sprintf("\n… and %d more", more))
	}
	return cut(b.String(), MaxFieldValue)
}

// withQuote is body followed by q (a Message.Quote) as a quote, its text
// escaped, so that no line of it can pass for the bot's own. When nothing
// follows it (last), it is one multi-line quote (">>> ": every line to the
// end of the message, blank ones too); otherwise every line of it is a
// quote line ("> "), which costs two characters a line.
func withQuote(body, q string, last bool) string {
	if q == "" {
		return body
	}
	var b strings.Builder
	b.WriteString(body)
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	if last {
		b.WriteString(">>> " + escape(q, true))
		return b.String()
	}
	for i, l := range strings.Split(q, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("> " + escape(l, true))
	}
	return b.String()
}

// renderLines renders lines as Discord markdown, one a line.
func renderLines(lines []bot.Line) string {
	parts := make([]string, 0, len(lines))
	for _, l := range lines {
		parts = append(parts, renderLine(l, true))
	}
	return strings.Join(parts, "\n")
}

// renderLine renders spans as Discord markdown, every text escaped; styles
// and links only where the span is trusted.
func renderLine(l bot.Line, links bool) string {
	var b strings.Builder
	for _, s := range l {
		if s.Text == "" {
			continue
		}
		if m := mentionOf(s); m != "" {
			b.WriteString(m)
			continue
		}
		atStart := b.Len() == 0 || strings.HasSuffix(b.String(), "\n")
		if s.Style == bot.StyleCode && !s.Untrusted {
			b.WriteString(codeSpan(s.Text))
			continue
		}
		text := escape(s.Text, atStart)
		if !s.Untrusted {
			// Markers hug the words: "**SLA warning:** " renders bold,
			// "**SLA warning: **" does not.
			core := strings.TrimSpace(text)
			lead, trail := "", ""
			if core != "" {
				lead = text[:strings.Index(text, core)]
				trail = text[len(lead)+len(core):]
			}
			switch {
			case core == "":
			case s.Style == bot.StyleBold:
				text = lead + "**" + core + "**" + trail
			case s.Style == bot.StyleItalic:
				text = lead + "*" + core + "*" + trail
			}
			if u := safeURL(s.Link); u != "" && links {
				text = "[" + text + "](" + u + ")"
			}
		}
		b.WriteString(text)
	}
	return b.String()
}

// plainLine is a line's text with no markup, for places Discord shows as is.
func plainLine(l bot.Line) string {
	var b strings.Builder
	for _, s := range l {
		b.WriteString(s.Text)
	}
	return b.String()
}

// codeSpan shows text as inline code; backticks cannot be escaped inside.
func codeSpan(s string) string {
	s = strings.ReplaceAll(s, "`", "ˋ")
	return "`" + s + "`"
}

// safeURL returns u fit for a markdown link, or "" when it is not http(s).
func safeURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	s := u.String()
	r := strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E")
	return r.Replace(s)
}

// escape makes text literal in Discord markdown: markdown characters get a
// backslash, mention syntax is broken up, and "@everyone"/"@here" get a zero
// width space (allowed_mentions already keeps them from pinging).
func escape(s string, atLineStart bool) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	start := atLineStart
	for i, r := range s {
		switch r {
		case '\\', '*', '_', '~', '`', '|', '<', '>', '[', ']':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '#', '-', '+':
			if start {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case '@':
			b.WriteRune(r)
			rest := s[i+1:]
			if strings.HasPrefix(rest, "everyone") || strings.HasPrefix(rest, "here") || strings.HasPrefix(rest, "&") || strings.HasPrefix(rest, "!") {
				b.WriteRune('\u200b')
			}
		default:
			b.WriteRune(r)
		}
		switch {
		case r == '\n':
			start = true
		case r == ' ' || r == '\t':
		default:
			start = false
		}
	}
	return b.String()
}

// cut shortens s to at most n runes, marking the cut with an ellipsis, never
// splitting a rune and never leaving a dangling escape backslash.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n == 1 {
		return ellipsis
	}
	runes := []rune(s)[:n-1]
	// Drop a trailing odd run of backslashes: it would escape the ellipsis.
	k := 0
	for i := len(runes) - 1; i >= 0 && runes[i] == '\\'; i-- {
		k++
	}
	if k%2 == 1 {
		runes = runes[:len(runes)-1]
	}
	return string(runes) + ellipsis
}

// buttonStyle maps the bot's button look to Discord's.
func buttonStyle(s bot.ButtonStyle) discordgo.ButtonStyle {
	switch s {
	case bot.ButtonPrimary:
		return discordgo.PrimaryButton
	case bot.ButtonDanger:
		return discordgo.DangerButton
	}
	return discordgo.SecondaryButton
}

// customID encodes a button's action and value.
func customID(a bot.ActionID, value string) string {
	if value == "" {
		return string(a)
	}
	return string(a) + ":" + value
}

// parseCustomID decodes what customID encoded.
func parseCustomID(id string) (bot.ActionID, string) {
	a, v, _ := strings.Cut(id, ":")
	return bot.ActionID(a), v
}

// renderButtons lays buttons out in rows of five, at most five rows. A
// button whose custom_id would be too long, or repeat another, is left out.
func renderButtons(buttons []bot.Button) []discordgo.MessageComponent {
	rows := []discordgo.MessageComponent{}
	var row discordgo.ActionsRow
	seen := map[string]bool{}
	for _, bt := range buttons {
		id := customID(bt.Action, bt.Value)
		if id == "" || utf8.RuneCountInString(id) > MaxCustomID || seen[id] {
			continue
		}
		if len(row.Components) == MaxButtonsPerRow {
			rows = append(rows, row)
			row = discordgo.ActionsRow{}
			if len(rows) == MaxRows {
				break
			}
		}
		seen[id] = true
		label := cut(bt.Label, MaxButtonLabel)
		if label == "" {
			label = string(bt.Action)
		}
		row.Components = append(row.Components, discordgo.Button{Label: label, Style: buttonStyle(bt.Style), CustomID: id})
	}
	if len(row.Components) > 0 && len(rows) < MaxRows {
		rows = append(rows, row)
	}
	return rows
}

// modalPayload is the data of a modal interaction response (type 9).
type modalPayload struct {
	CustomID   string                       `json:"custom_id"`
	Title      string                       `json:"title"`
	Components []discordgo.MessageComponent `json:"components"`
}

// formCustomID encodes a form's id and state into a modal custom_id. A
// state's channel ("c", when the state is a query) is left out: Discord
// reports the channel with every submission, and a 19-digit channel id
// beside a file's SHA-256 would not fit the 100 characters.
func formCustomID(f bot.Form) string { return "f:" + f.ID + ":" + withoutChannel(f.State) }

// withoutChannel is state without its "c" parameter, when it has one.
func withoutChannel(state string) string {
	if !strings.Contains(state, "c=") {
		return state
	}
	q, err := url.ParseQuery(state)
	if err != nil || !q.Has("c") {
		return state
	}
	q.Del("c")
	return q.Encode()
}

// parseFormCustomID decodes what formCustomID encoded.
func parseFormCustomID(id string) (form, state string, ok bool) {
	rest, ok := strings.CutPrefix(id, "f:")
	if !ok {
		return "", "", false
	}
	form, state, _ = strings.Cut(rest, ":")
	return form, state, form != ""
}

// renderForm turns a bot form into a Discord modal.
func renderForm(f bot.Form) (modalPayload, error) {
	id := formCustomID(f)
	if strings.Contains(f.ID, ":") || utf8.RuneCountInString(id) > MaxCustomID {
		return modalPayload{}, fmt.Errorf("form %q: id and state must fit %d characters and the id may not contain ':'", f.ID, MaxCustomID-3)
	}
	if len(f.Fields) == 0 || len(f.Fields) > MaxModalInputs {
		return modalPayload{}, fmt.Errorf("form %q: a Discord modal holds 1 to %d inputs, not %d", f.ID, MaxModalInputs, len(f.Fields))
	}
	title := cut(f.Title, MaxModalTitle)
	if title == "" {
		title = "threatdesk"
	}
	p := modalPayload{CustomID: id, Title: title}
	if hasChoice(f) {
		return labelledForm(f, p)
	}
	for _, ff := range f.Fields {
		if ff.ID == "" || utf8.RuneCountInString(ff.ID) > MaxCustomID {
			return modalPayload{}, fmt.Errorf("form %q: field id %q must be 1 to %d characters", f.ID, ff.ID, MaxCustomID)
		}
		if ff.Kind == bot.InputSelect {
			ff = selectAsText(ff)
		}
		style := discordgo.TextInputShort
		if ff.Kind == bot.InputParagraph {
			style = discordgo.TextInputParagraph
		}
		maxLen := ff.MaxLength
		if maxLen <= 0 || maxLen > MaxInputValue {
			maxLen = MaxInputValue
		}
		minLen := min(max(ff.MinLength, 0), maxLen)
		label := cut(ff.Label, MaxInputLabel)
		if label == "" {
			label = ff.ID
		}
		p.Components = append(p.Components, discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.TextInput{
				CustomID:    ff.ID,
				Label:       label,
				Style:       style,
				Placeholder: cut(ff.Placeholder, MaxPlaceholder),
				Value:       cut(ff.Value, maxLen),
				Required:    ff.Required,
				MinLength:   minLen,
				MaxLength:   maxLen,
			},
		}})
	}
	return p, nil
}
