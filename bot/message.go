package bot

import "time"

// The platform-neutral outbound message model. The bot renders domain events
// into Messages; adapters render Messages to Block Kit or to Discord embeds
// and components, within their platform's limits.
//
// Text is made of Spans. A Span marked Untrusted came from a user, an expert
// or an alert: adapters must show it literally (Slack: escape &, <, >;
// Discord: escape markdown and send allowed_mentions with an empty parse
// list), so "<!channel>" or "@everyone" in a question pings no one. Adapters
// escape trusted text too; trusted only means it may carry Style, Link,
// Mention and Time.
//
// Mentions name exactly the people meant: a trusted Span with Mention shows
// that user as a mention, and a Message notifies exactly the users listed in
// its Mentions (Slack <@U…>; Discord allowed_mentions.users, in the content,
// since embeds never ping). A Mention span whose user is not listed is shown
// as its Text; untrusted text is never a mention.

// Style is how a span is emphasised.
type Style int

// Span styles.
const (
	StylePlain Style = iota
	StyleBold
	StyleItalic
	StyleCode
)

// Span is a run of text with one style.
type Span struct {
	Text      string
	Style     Style
	Link      string // optional URL; shown as a link on Text
	Untrusted bool   // from a user or an alert: shown literally, never as markup
	// Mention, on a trusted span, is a user id on the platform the message
	// goes to: the span shows as a mention of that user when the id is in
	// Message.Mentions, and as Text (their name) otherwise.
	Mention string
	// Time, on a trusted span, is an instant each reader may see in their
	// own time zone (Slack <!date^…>); Text is the same instant in the
	// configured time zone, with its name, shown everywhere else.
	Time time.Time
}

// Line is one line or paragraph of spans.
type Line []Span

// T is a trusted plain span.
func T(s string) Span { return Span{Text: s} }

// B is a trusted bold span.
func B(s string) Span { return Span{Text: s, Style: StyleBold} }

// U is an untrusted span (user or alert text), always shown literally.
func U(s string) Span { return Span{Text: s, Untrusted: true} }

// L is a trusted link.
func L(label, url string) Span { return Span{Text: label, Link: url} }

// Severity colours a card.
type Severity string

// Severities, lowest to highest.
const (
	SeverityNone          Severity = ""
	SeverityInformational Severity = "informational"
	SeverityLow           Severity = "low"
	SeverityMedium        Severity = "medium"
	SeverityHigh          Severity = "high"
	SeverityCritical      Severity = "critical"
)

// Field is a labelled value shown side by side with others (status, assignee, score).
type Field struct {
	Label string // trusted
	Value Line
}

// Section is a titled block of lines: the scope of compromise, a timeline,
// recommended actions, an entity list.
type Section struct {
	Title string // trusted
	Lines []Line
	// More counts lines left out ("and 12 more").
	More int
}

// ButtonStyle is a button's look.
type ButtonStyle int

// Button styles.
const (
	ButtonDefault ButtonStyle = iota
	ButtonPrimary
	ButtonDanger
)

// Button is an action a reader can press. It carries ids only: the bot
// checks permission and state again on every press.
type Button struct {
	Action ActionID
	Label  string // trusted, short
	Value  string // ids only, e.g. "EOD-12" or an incident id
	Style  ButtonStyle
}

// Message is one chat message.
type Message struct {
	// Title heads a card; empty for a plain note.
	Title    string
	Severity Severity
	// Text is the body, one paragraph per Line.
	Text []Line
	// Quote is a person's own words, shown after Text exactly as written
	// (line breaks and blank lines kept, no markup) and set apart as a
	// quote, so that no line of it can pass for the bot's own: a relayed
	// reply's body, what someone wrote in a refused form.
	Quote    string
	Fields   []Field
	Sections []Section
	// Buttons are laid out in order; adapters wrap rows at the platform's limit.
	Buttons []Button
	// Items is a list whose lines each carry their own actions (an
	// incident list: Notify now, Consult per line). Adapters show each
	// line with its actions beside it where the platform can (Slack: a
	// button, or an overflow menu for several) or gather each action into
	// one menu naming the lines (Discord: a select per action).
	Items []Item
	// Footer is small print: references, "why you are seeing this", a test label.
	Footer Line
	// ThreadName names the thread an adapter starts on this message where a
	// platform needs an explicit thread (Discord). Empty: no thread.
	ThreadName string
	// Fallback is a one-line plain summary for notifications and screen readers.
	Fallback string
	// Mentions are the users this message notifies (user ids on the
	// platform it goes to), and nobody else: adapters make each a mention
	// that pings. Spans with Mention show them where the text names them.
	Mentions []string
}

// Item is one line of a list with its own actions.
type Item struct {
	Line Line
	// Label names the line in a menu (Discord select options), e.g.
	// "Incident 12 · score 38"; trusted, short.
	Label string
	// Actions are the line's buttons, at most MaxItemActions; their
	// Values are ids only, as on any button.
	Actions []Button
}

// MaxItemActions is the most actions one Item carries (Slack's overflow
// menu holds five options,
// https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element).
const MaxItemActions = 5

// FieldKind is the type of input in a form.
type FieldKind int

// Form input kinds.
const (
	InputShort FieldKind = iota
	InputParagraph
	// InputSelect is a choice among Options (Slack static_select; Discord
	// string select in a Label).
	InputSelect
)

// Option is one choice of an InputSelect field.
type Option struct {
	Label string // trusted, short
	Value string // ids only
}

// FormField is one input of a form (a Slack modal block, a Discord modal text input).
type FormField struct {
	ID          string
	Label       string
	Kind        FieldKind
	Placeholder string
	Value       string // prefilled
	Required    bool
	MinLength   int
	MaxLength   int
	// Options are an InputSelect's choices; Value, when set, is the one
	// chosen at first.
	Options []Option
}

// Form is a modal dialog (Slack views.open, Discord modal response).
type Form struct {
	// ID routes the submission back, e.g. "ask", "conclude".
	ID string
	// State carries ids back with the submission (a case reference, an
	// incident id). Ids only: permission and state are checked on submit.
	State  string
	Title  string
	Submit string
	Fields []FormField
}
