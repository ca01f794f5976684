package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// Text limits of the neutral model. Adapters cut again at their platform's
// own limits; these keep every piece within the smallest of them (Discord
// message content: 2000 characters, https://discord.com/developers/docs/resources/message#create-message;
// Slack section text: 3000, https://api.slack.com/reference/block-kit/blocks#section).
const (
	maxTextRunes = 1800 // a question, a relayed message, a summary
	// maxCardSectionRunes is the most of a long text in a card's section
	// (Discord: an embed field's value, 1024).
	maxCardSectionRunes = 900
	maxTitleRunes       = 150
	maxListLineRunes    = 90
	maxListed           = 10 // cases in a list, entities in a scope section
	maxThreadName       = 90 // Discord thread names: 100
	maxParagraphs       = 20 // lines of one user text, within Slack's 50 blocks
)

// Anchor targets of a stream.
const (
	targetReceipt      = "receipt"
	targetDesk         = "desk"
	targetNotification = "notification"
)

// Kinds of the bot's own outbox events.
const (
	// kindSampleNotification is an admin's test notification.
	kindSampleNotification = "bot.sample_notification"
)

// cut shortens s to at most n runes, ending with an ellipsis when cut. It
// never splits a character.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	i, count := 0, 0
	for j := range s {
		if count == n-1 {
			i = j
			break
		}
		count++
	}
	return strings.TrimRight(s[:i], " \n\t") + "…"
}

// textParts splits untrusted text into pieces of at most n runes, so that
// a text too long for one message is sent whole, as several. A piece ends
// at a paragraph break where one is in its second half, else at a line
// break, else at a space, else at its n-th rune (never inside a
// character). The whitespace at a break is dropped; nothing else is.
func textParts(s string, n int) []string {
	s = strings.TrimSpace(s)
	var out []string
	for utf8.RuneCountInString(s) > n {
		end := 0
		for i := 0; i < n; i++ {
			_, size := utf8.DecodeRuneInString(s[end:])
			end += size
		}
		head := s[:end]
		at := -1
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(head, sep); i > len(head)/2 {
				at = i
				break
			}
		}
		if at < 0 {
			at = end
		}
		out = append(out, strings.TrimRight(s[:at], " \t\r\n"))
		s = strings.TrimLeft(s[at:], " \t\r\n")
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

// ofParts says which piece of a text split by textParts a message holds:
// " (2 of 3)", or nothing for a text sent whole.
func ofParts(i, n int) string {
	if n < 2 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d)", i+1, n)
}

// cardText is untrusted text on a card: whole when it has at most n runes,
// else cut, after a first line saying that the whole text follows in the
// card's thread (the caller sends it there, with threadText). The line
// comes first so that a platform cutting the card again keeps it.
func cardText(s string, n int) []Line {
	if utf8.RuneCountInString(strings.TrimSpace(s)) <= n {
		return paragraphs(s)
	}
	return append([]Line{{Span{Text: "(long: cut here, the whole text follows in the thread)", Style: StyleItalic}}},
		paragraphs(cut(strings.TrimSpace(s), n))...)
}

// threadText is the whole of a text that cardText cut, as messages into
// the thread of target headed by title, keyed key, key.2, ...; nothing
// when the card holds it whole.
func threadText(key, target, title, s string) []part {
	if utf8.RuneCountInString(strings.TrimSpace(s)) <= maxTextRunes {
		return nil
	}
	pieces := textParts(s, maxTextRunes)
	ps := make([]part, 0, len(pieces))
	for i, p := range pieces {
		m := Message{Text: []Line{{B(title + ofParts(i, len(pieces)) + ":")}}, Quote: quoted(p),
			Fallback: cut(title+": "+p, maxListLineRunes)}
		ps = append(ps, part{key: partKeyN(key, i), thread: target, msg: m})
	}
	return ps
}

// partKeyN is the key of the i-th message of a text sent as several:
// key for the first (the key a text sent whole has), key.2, key.3, ...
func partKeyN(key string, i int) string {
	if i == 0 {
		return key
	}
	return key + "." + strconv.Itoa(i+1)
}

// relayParts are the messages a thread message is relayed as into the
// thread of target: one, or for a text longer than maxTextRunes one per
// piece, each headed with who wrote it (role: "threat expert",
// "requester, Contoso") and recorded for edits to follow (src).
func relayParts(key, target, author, role, text string, src *relaySource) []part {
	pieces := textParts(text, maxTextRunes)
	ps := make([]part, 0, len(pieces))
	for i, p := range pieces {
		m := Message{Text: []Line{relayHead(author, role, i, len(pieces))}, Quote: quoted(p),
			Fallback: cut(author+": "+p, maxListLineRunes)}
		var s *relaySource
		if src != nil {
			c := *src
			c.Part, c.Parts = i, len(pieces)
			s = &c
		}
		ps = append(ps, part{key: partKeyN(key, i), thread: target, msg: m, relayOf: s})
	}
	return ps
}

// relayHead is the first line of a relayed message: "Eve (threat expert)
// wrote:", with "(2 of 3)" on a text relayed in pieces.
func relayHead(author, role string, i, n int) Line {
	return Line{B(author), T(" (" + role + ") wrote" + ofParts(i, n) + ":")}
}

// quoted is a person's text as a Message.Quote: trimmed, cut as a whole.
func quoted(s string) string { return cut(strings.TrimSpace(s), maxTextRunes) }

// paragraphs turns untrusted text into lines, cut as a whole.
func paragraphs(s string) []Line {
	s = cut(strings.TrimSpace(s), maxTextRunes)
	ps := strings.Split(s, "\n")
	if len(ps) > maxParagraphs {
		// Platforms count blocks (Slack: 50 a message): fold the tail.
		ps = append(ps[:maxParagraphs-1], strings.Join(ps[maxParagraphs-1:], " "))
	}
	out := make([]Line, 0, len(ps))
	for _, p := range ps {
		out = append(out, Line{U(p)})
	}
	return out
}

// render turns an outbox row into the parts to send.
func (b *Bot) render(ctx context.Context, row outbox.Row) ([]part, error) {
	switch row.Kind {
	case kindSampleNotification:
		return b.renderSample(row)
	case kindFullScope:
		return renderScope(row)
	}
	if rp, ok := b.cases.(CaseReports); ok {
		if q, ok, err := rp.DecodeDigest(row.Kind, row.Payload); ok || err != nil {
			if err != nil {
				return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
			}
			return b.renderDigest(ctx, q)
		}
	}
	if ps, ok, err := b.renderAsk(row); ok {
		return ps, err
	}
	if ps, ok, err := b.renderGreeting(row.Kind, row.Payload); ok {
		return ps, err
	}
	if ps, ok, err := b.renderReload(ctx, row); ok {
		return ps, err
	}
	if ps, ok, err := b.renderWorkspace(ctx, row.Kind, row.Payload); ok {
		return ps, err
	}
	if parts, ok, err := b.decodeOnCall(ctx, row); ok {
		return parts, err
	}
	if in := b.insightSvc(); in != nil {
		if ev, ok, err := in.DecodeEvent(row.Kind, row.Payload); ok || err != nil {
			if err != nil {
				return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
			}
			return b.renderInsight(ctx, ev)
		}
	}
	if ev, ok, err := b.cases.DecodeEvent(row.Kind, row.Payload); ok || err != nil {
		if err != nil {
			return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
		}
		ev.OutboxID = row.ID
		return b.renderCase(ctx, ev)
	}
	if b.hunt != nil {
		if ev, ok, err := b.hunt.DecodeEvent(row.Kind, row.Payload); ok || err != nil {
			if err != nil {
				return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
			}
			return b.renderIncident(ctx, ev)
		}
	}
	return nil, &rowError{kind: Permanent, err: fmt.Errorf("no renderer for outbox event kind %q: is this threatdesk older than the code that wrote it?", row.Kind)}
}

// kindFullScope is an incident's full scope, asked for from its card and
// posted in the card's thread; its stream is the press's ("scope:" and
// the action's key), so a press worked again queues it once.
const kindFullScope = "bot.full_scope"

// scopeEvent is the payload of kindFullScope: the messages, drawn when
// asked, and the card whose thread they go in. Msg is a row of an older
// version's: one message.
type scopeEvent struct {
	Card Ref       `json:"card"`
	Msg  Message   `json:"msg"`
	Msgs []Message `json:"msgs,omitempty"`
	// Org is the incident's: a channel a reload gives to another org
	// before the scope is posted gets none of it (stillTheirs).
	Org string `json:"org,omitempty"`
}

// queueScope queues the full scope m for the thread of the card a was
// pressed on, once per press.
func (b *Bot) queueScope(ctx context.Context, a Action, org string, ms []Message) error {
	stream := "scope:" + cmp.Or(a.Key, randomKey())
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("queue full scope: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var queued bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE stream = $1)`, stream).Scan(&queued); err != nil {
		return fmt.Errorf("queue full scope: %w", err)
	}
	if queued {
		return nil
	}
	// Msg too: a replica still on the version before posts the first page.
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindFullScope, Stream: stream, Payload: scopeEvent{Card: a.Message, Msg: ms[0], Msgs: ms, Org: org}}); err != nil {
		return fmt.Errorf("queue full scope: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("queue full scope: commit: %w", err)
	}
	return nil
}

func renderScope(row outbox.Row) ([]part, error) {
	var ev scopeEvent
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode full scope: %w", err)}
	}
	card := ev.Card
	dest := Dest{Platform: card.Platform, Workspace: card.Workspace, Channel: card.Channel, Thread: &card}
	if len(ev.Msgs) == 0 {
		return []part{{key: "scope", dest: dest, msg: ev.Msg, org: ev.Org}}, nil
	}
	ps := make([]part, len(ev.Msgs))
	for i, m := range ev.Msgs {
		ps[i] = part{key: "scope", dest: dest, msg: m, org: ev.Org}
		if i > 0 {
			ps[i].key = fmt.Sprintf("scope.%d", i+1)
		}
	}
	return ps, nil
}

// sampleEvent is the payload of kindSampleNotification.
type sampleEvent struct {
	Org string `json:"org"`
	By  string `json:"by"`
}

func (b *Bot) renderSample(row outbox.Row) ([]part, error) {
	var ev sampleEvent
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return nil, &rowError{kind: Permanent, err: fmt.Errorf("decode sample notification: %w", err)}
	}
	o, ok := b.cfg.org(ev.Org)
	if !ok {
		return nil, &rowError{kind: Permanent, err: fmt.Errorf("sample notification for org %q, which is not in the config any more", ev.Org)}
	}
	inc := sampleIncident(o)
	m := notificationCard(inc)
	m.Footer = Line{B("TEST"), T(" · sent by "), U(ev.By), T(" to check that notifications reach this channel. No attack happened.")}
	return []part{{key: "card", dest: o.NotifyDest(), msg: m}}, nil
}

func sampleIncident(o *Org) IncidentView {
	return IncidentView{
		ID: "sample", Org: o.ID, Test: true,
		Title:    "[TEST] Sample targeted attack notification for " + o.Name,
		Summary:  "This is a test. A real notification describes a hands-on-keyboard attack: what happened, its scope, a timeline and what to do now.",
		Severity: SeverityInformational, Score: 0,
		Reasons: []string{"Requested by an administrator with /experts sample-notification"},
		Scope: []ScopeGroup{{Kind: "devices", Items: []ScopeItem{{Name: "sample-host-01"}}}, {Kind: "users", Items: []ScopeItem{{Name: "sample\\user"}}},
			{Kind: "files", Items: []ScopeItem{{Name: "sample.exe", ID: "0000000000000000000000000000000000000000"}}}},
		Timeline:    []string{"now: test notification sent"},
		Tactics:     []string{"TA0001 Initial Access (sample)"},
		Recommended: []string{"Nothing: this is a test. If you see it in the right channel, routing works."},
	}
}

// ---- cases ----

var statusLabels = map[Status]string{
	StatusNew: "New", StatusInProgress: "In progress", StatusMoreInfo: "More information needed",
	StatusSample: "File sample needed", StatusMoreTime: "Needs more time", StatusConcluded: "Concluded",
	StatusClosed: "Closed", StatusWithdrawn: "Withdrawn",
}

func (s Status) label() string {
	if l, ok := statusLabels[s]; ok {
		return l
	}
	return string(s)
}

func (s Status) open() bool {
	return s != StatusConcluded && s != StatusClosed && s != StatusWithdrawn
}

func (s Status) waiting() bool { return s == StatusMoreInfo || s == StatusSample }

func prioritySeverity(p string) Severity {
	switch p {
	case "high":
		return SeverityHigh
	case "medium":
		return SeverityMedium
	case "low":
		return SeverityLow
	}
	return SeverityNone
}

func subjectLabel(s Subject) string {
	switch s.Kind {
	case SubjectNone, "":
		return "General question"
	}
	name := s.ID
	if s.Name != "" {
		name = s.Name
	}
	return kindLabel(s.Kind) + " " + subjectText(s.Kind, name)
}

// subjectText is a subject's id or name as shown: a URL is an indicator,
// defanged as the scope's are, so that no client makes it a link.
func subjectText(k SubjectKind, id string) string {
	if k == SubjectURL {
		return defang(id)
	}
	return id
}

// userKey tells one person from another: platform, workspace and id.
func userKey(u User) string { return string(u.Platform) + ":" + u.Workspace + ":" + u.ID }

func userLabel(u *User) string {
	if u == nil || u.ID == "" {
		return ""
	}
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.ID
}

func (b *Bot) orgName(id string) string {
	if o, ok := b.cfg.org(id); ok && o.Name != "" {
		return o.Name
	}
	return id
}

func subjectLines(s Subject) []Field {
	if s.Kind == SubjectNone || s.Kind == "" {
		return nil
	}
	v := Line{U(subjectText(s.Kind, s.ID))}
	if s.Link != "" {
		// The link came with an alert: linked only on a Microsoft portal.
		v = append(append(v, T(" · ")), alertLink("open in the Microsoft portal", s.Link)...)
	}
	fs := []Field{{Label: kindLabel(s.Kind), Value: v}}
	if s.Name != "" && s.Name != s.ID {
		fs = append(fs, Field{Label: "Name", Value: Line{U(cut(s.Name, maxTitleRunes))}})
	}
	if s.Detail != "" {
		fs = append(fs, Field{Label: "Details", Value: Line{U(cut(s.Detail, maxTitleRunes))}})
	}
	return fs
}

func slaText(c CaseView, now time.Time) string {
	switch {
	case !c.Status.open():
		return "stopped"
	case c.SLA.Paused:
		return "paused: waiting on the requester"
	case c.SLA.Breached:
		return "breached"
	case c.SLA.Due.IsZero():
		return "running"
	case c.SLA.AtRisk:
		return "at risk, due " + relTime(c.SLA.Due, now)
	}
	return "due " + relTime(c.SLA.Due, now)
}

func relTime(t, now time.Time) string {
	d := t.Sub(now)
	if d < 0 {
		return age(-d) + " ago"
	}
	return "in " + age(d)
}

// age says a duration in words ("15 min", "1 h 5 min"): duration.
func age(d time.Duration) string { return duration(d) }

// receiptCard is the requester's card in their channel.
func (b *Bot) receiptCard(c CaseView) Message {
	now := b.now()
	expert := "waiting for an expert"
	if c.Assignee != nil {
		expert = userLabel(c.Assignee)
	}
	m := Message{
		Title:    cut(c.Ref+" · "+subjectLabel(c.Subject), maxTitleRunes),
		Severity: prioritySeverity(c.Priority),
		Text:     cardText(c.Question, maxTextRunes),
		Fields: append(subjectLines(c.Subject),
			Field{Label: "Status", Value: Line{T(c.Status.label())}},
			Field{Label: "Priority", Value: Line{T(c.Priority)}},
			Field{Label: "Expert", Value: Line{U(expert)}},
			Field{Label: "SLA", Value: Line{T(slaText(c, now))}},
		),
		Footer:   Line{T(c.Ref + " · reply in this thread to talk to the threat expert")},
		Fallback: c.Ref + ": " + c.Status.label(),
	}
	if c.Summary != "" && !c.Status.open() {
		m.Sections = append(m.Sections, Section{Title: "Conclusion", Lines: cardText(c.Summary, maxCardSectionRunes)})
	}
	switch {
	case c.Status == StatusConcluded:
		m.Buttons = []Button{{Action: ActClose, Label: "Close", Value: c.Ref, Style: ButtonPrimary},
			{Action: ActReopen, Label: "Reopen", Value: c.Ref}}
	case c.Status == StatusClosed:
		m.Buttons = []Button{{Action: ActReopen, Label: "Reopen", Value: c.Ref}}
	case c.Status.open():
		m.Buttons = []Button{{Action: ActAddDetails, Label: "Add details", Value: c.Ref, Style: ButtonPrimary},
			{Action: ActWithdraw, Label: "Withdraw", Value: c.Ref, Style: ButtonDanger}}
	}
	return m
}

// deskCard is the case's card on the expert desk.
func (b *Bot) deskCard(c CaseView) Message {
	now := b.now()
	assignee := "nobody yet"
	if c.Assignee != nil {
		assignee = userLabel(c.Assignee)
	}
	m := Message{
		Title:    cut(c.Ref+" · "+b.orgName(c.Org)+" · "+subjectLabel(c.Subject), maxTitleRunes),
		Severity: prioritySeverity(c.Priority),
		Text:     cardText(c.Question, maxTextRunes),
		Fields: append(subjectLines(c.Subject),
			Field{Label: "Org", Value: Line{T(b.orgName(c.Org))}},
			Field{Label: "Requester", Value: Line{U(userLabel(&c.Requester))}},
			Field{Label: "Status", Value: Line{T(c.Status.label())}},
			Field{Label: "Priority", Value: priorityLine(c)},
			Field{Label: "Assignee", Value: Line{U(assignee)}},
			Field{Label: "SLA", Value: Line{T(slaText(c, now))}},
		),
		Footer:   Line{T(c.Ref + " · " + categoryLabel(c.Category) + " · reply in this thread to answer the requester")},
		Fallback: c.Ref + " (" + b.orgName(c.Org) + "): " + c.Status.label(),
	}
	if c.Summary != "" && !c.Status.open() {
		m.Sections = append(m.Sections, Section{Title: "Conclusion", Lines: cardText(c.Summary, maxCardSectionRunes)})
	}
	switch c.Status {
	case StatusNew:
		m.Buttons = []Button{{Action: ActTake, Label: "Take", Value: c.Ref, Style: ButtonPrimary}}
	case StatusInProgress, StatusMoreTime, StatusMoreInfo, StatusSample:
		m.Buttons = []Button{
			{Action: ActMoreInfo, Label: "Need more info", Value: c.Ref},
			{Action: ActSample, Label: "Need file sample", Value: c.Ref},
			{Action: ActMoreTime, Label: "Need more time", Value: c.Ref},
			{Action: ActConclude, Label: "Conclude", Value: c.Ref, Style: ButtonPrimary},
		}
	}
	m.Sections, m.Buttons = append(m.Sections, b.insightSections(c)...), append(m.Buttons, b.campaignButton(c)...)
	if sec, buttons := deskSamples(c); len(buttons) > 0 {
		m.Sections = append(m.Sections, sec)
		m.Buttons = append(m.Buttons, buttons...)
	}
	return m
}

func note(spans ...Span) Message {
	m := Message{Text: []Line{spans}}
	for _, s := range spans {
		m.Fallback += s.Text
	}
	m.Fallback = cut(m.Fallback, maxListLineRunes)
	return m
}

// renderCase renders a case event from the current case.
func (b *Bot) renderCase(ctx context.Context, ev CaseEvent) (parts []part, err error) {
	if ev.Kind == CaseCredits || (ev.Kind == CaseMessaged && ev.Internal) {
		return nil, nil // nothing to show in chat
	}
	c, err := b.cases.Get(ctx, Scope{All: true}, ev.Ref)
	if err != nil {
		return nil, fmt.Errorf("load %s to render %s: %w", ev.Ref, ev.Kind, err)
	}
	defer func() { ownedBy(parts, c.Org) }()
	if err := b.withSamples(ctx, &c); err != nil {
		return nil, err
	}
	if ev.Kind != CaseMessaged { // a relayed message edits no card
		b.withInsight(ctx, &c)
	}
	deskMsg, err := b.deskCardNow(ctx, c)
	if err != nil {
		return nil, err
	}
	cards := []part{
		{key: "receipt.card", update: targetReceipt, msg: b.receiptCard(c)},
		{key: "desk.card", update: targetDesk, msg: deskMsg},
	}
	both := func(m Message) []part {
		return []part{{key: "receipt.note", thread: targetReceipt, msg: m}, {key: "desk.note", thread: targetDesk, msg: m}}
	}
	switch ev.Kind {
	case CaseOpened:
		// The origin was stored with the case when it opened; only cases
		// from before that have none, and take the org's first channel.
		origin := c.Origin
		if origin.Channel == "" {
			if o, ok := b.cfg.org(c.Org); ok {
				if pl := o.place(c.Requester.Platform); pl != nil && len(pl.Channels) > 0 {
					origin = Dest{Platform: c.Requester.Platform, Workspace: pl.Workspace, Channel: pl.Channels[0]}
				} else {
					origin = o.NotifyDest()
				}
			}
		}
		origin.Thread = nil
		receipt := b.receiptCard(c)
		receipt.ThreadName = cut(c.Ref+" "+c.Question, maxThreadName)
		desk := deskMsg
		desk.ThreadName = cut(c.Ref+" "+b.orgName(c.Org), maxThreadName)
		dm, err := b.openedDM(ctx, c)
		if err != nil {
			return nil, err
		}
		ps := []part{
			{key: "receipt", dest: origin, msg: receipt, anchor: targetReceipt},
			{key: "desk", dest: b.cfg.Desk.DeskDest(), msg: desk, anchor: targetDesk},
		}
		// The on-call DMs first: a long question's parts are paced posts.
		ps = append(ps, dm...)
		ps = append(ps, threadText("receipt.question", targetReceipt, "The question in full", c.Question)...)
		return append(ps, threadText("desk.question", targetDesk, "The question in full", c.Question)...), nil
	case CaseAssigned:
		if ev.By != "" {
			return b.assignedParts(ctx, c, ev, cards), nil
		}
		m := note(B(ev.Actor), T(" (threat expert) took "+c.Ref+"."))
		if c.Status == StatusInProgress {
			// A take out of new also records new -> in_progress, which
			// renders nothing: this note says it, once per thread.
			m = note(B(ev.Actor), T(" (threat expert) took "+c.Ref+". It is in progress."))
		}
		return append(cards, both(m)...), nil
	case CaseMessaged:
		if ev.Internal {
			return nil, nil // internal notes never cross
		}
		src := relaySourceOf(ev)
		if ev.Side == SideExpert {
			return relayParts("receipt.relay", targetReceipt, ev.Actor, "threat expert", ev.Text, src), nil
		}
		ps := relayParts("desk.relay", targetDesk, ev.Actor, "requester, "+b.orgName(c.Org), ev.Text, src)
		if c.Status == StatusConcluded {
			// Messages still reach a concluded case; say it is not being
			// worked, or the desk may not look at it again.
			ps = append(ps, part{key: "desk.relay.concluded", thread: targetDesk,
				msg: note(T(c.Ref + " is concluded: this message does not reopen it. The requester or a manager can Reopen it to have it worked again."))})
		}
		return ps, nil
	case CaseStatus:
		if ev.To == StatusSample {
			return b.renderSampleNeeded(ctx, c, ev, cards)
		}
		if takenFromNew(ev) {
			return nil, nil // said by the assignment's note, with the same card edits
		}
		return append(cards, b.statusNotes(ctx, c, ev)...), nil
	case CaseSampleStored:
		return b.renderSampleStored(c, ev), nil
	case CaseSLAWarning:
		m, err := b.slaWarning(ctx, c, ev)
		if err != nil {
			return nil, err
		}
		return append(cards, part{key: "desk.note", thread: targetDesk, msg: m}), nil
	case CaseSLABreach:
		return append(cards, b.slaBreach(ctx, c, ev)...), nil
	case CasePaged:
		return b.pagedParts(ctx, c, ev)
	case CaseReminded:
		return b.remindedParts(ctx, c, ev), nil
	case CaseCredits:
		return nil, nil
	}
	return nil, &rowError{kind: Permanent, err: fmt.Errorf("no renderer for case event %q", ev.Kind)}
}

func (b *Bot) statusNote(c CaseView, ev CaseEvent) Message {
	head := Line{B(c.Ref + ": " + ev.To.label())}
	if ev.Actor != "" {
		head = append(head, T(" · by "), U(ev.Actor))
	}
	m := Message{Text: []Line{head}, Fallback: c.Ref + ": " + ev.To.label()}
	switch ev.To {
	case StatusMoreInfo:
		m.Text = append(m.Text, Line{T("The expert needs more information. Reply in this thread; the SLA clock waits for you.")})
	case StatusSample:
		m.Text = append(m.Text, Line{T("The expert needs a file sample.")})
	case StatusMoreTime:
		m.Text = append(m.Text, Line{T("The expert needs more time; the SLA clock keeps running.")})
	case StatusConcluded:
		m.Text = append(m.Text, Line{T("The expert's conclusion is in. Close the case, or Reopen it if something is missing.")})
	}
	if ev.Detail != "" {
		m.Text = append(m.Text, Line{T(ev.Detail)})
	}
	m.Text = append(m.Text, noteText(ev)...)
	return m
}

// noteText is the first piece of a status note's text (the expert's
// words), saying when more follows (statusNoteRest).
func noteText(ev CaseEvent) []Line {
	if ev.Text == "" {
		return nil
	}
	pieces := textParts(ev.Text, maxTextRunes)
	l := paragraphs(pieces[0])
	if len(pieces) > 1 {
		l = append(l, Line{Span{Text: "(continued in the next " + plural.Word(len(pieces)-1, "message", plural.S(len(pieces)-1, "message")) + ")", Style: StyleItalic}})
	}
	return l
}

// statusNoteRest is the rest of a status note whose text is too long for
// one message (statusNote holds the first piece), into the thread of
// target, keyed key.2, key.3, ...
func statusNoteRest(c CaseView, ev CaseEvent, key, target string) []part {
	pieces := textParts(ev.Text, maxTextRunes)
	var ps []part
	for i := 1; i < len(pieces); i++ {
		title := c.Ref + ": " + ev.To.label() + ", continued" + ofParts(i, len(pieces))
		m := Message{Text: append([]Line{{B(title)}}, paragraphs(pieces[i])...), Fallback: cut(title, maxListLineRunes)}
		ps = append(ps, part{key: partKeyN(key, i), thread: target, msg: m})
	}
	return ps
}

// ---- lists and status answers ----

func (b *Bot) statusMessage(c CaseView) Message {
	now := b.now()
	assignee := "nobody yet"
	if c.Assignee != nil {
		assignee = userLabel(c.Assignee)
	}
	last := "no messages yet"
	if !c.LastMessageAt.IsZero() {
		from := "the requester"
		if c.LastMessageSide == SideExpert {
			from = "the expert"
		}
		last = relTime(c.LastMessageAt, now) + " from " + from
	}
	return Message{
		Title:    cut(c.Ref+" · "+subjectLabel(c.Subject), maxTitleRunes),
		Severity: prioritySeverity(c.Priority),
		Text:     paragraphs(cut(c.Question, 300)),
		Fields: []Field{
			{Label: "Org", Value: Line{T(b.orgName(c.Org))}},
			{Label: "Status", Value: Line{T(c.Status.label())}},
			{Label: "Assignee", Value: Line{U(assignee)}},
			{Label: "Age", Value: Line{T(age(now.Sub(c.OpenedAt)))}},
			{Label: "SLA", Value: Line{T(slaText(c, now))}},
			{Label: "Last message", Value: Line{T(last)}},
		},
		Fallback: c.Ref + ": " + c.Status.label(),
	}
}

func (b *Bot) listMessage(title string, l CaseList, showOrg bool) Message {
	now := b.now()
	m := Message{Title: title, Fallback: title}
	if len(l.Cases) == 0 {
		m.Text = []Line{{T("No cases.")}}
		return m
	}
	sec := Section{More: l.More}
	for _, c := range l.Cases {
		line := Line{Span{Text: c.Ref, Style: StyleCode}, T(" " + c.Status.label() + " · " + c.Priority + " · SLA " + slaText(c, now) + " · ")}
		if showOrg {
			line = append(line, T(b.orgName(c.Org)+" · "))
		}
		line = append(line, U(cut(strings.ReplaceAll(subjectLabel(c.Subject)+": "+c.Question, "\n", " "), maxListLineRunes)))
		sec.Lines = append(sec.Lines, line)
	}
	m.Sections = []Section{sec}
	if l.More > 0 {
		m.Footer = Line{T(fmt.Sprintf("and %d more", l.More))}
	}
	return m
}

// ---- incidents ----

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// notificationCard is a targeted attack notification.
func notificationCard(inc IncidentView) Message {
	m := Message{
		Title:    cut(inc.Title, maxTitleRunes),
		Severity: inc.Severity,
		Text:     append(append(cardPreamble(inc), campaignLine(inc.Campaign)...), paragraphs(inc.Summary)...),
		Fields: []Field{
			{Label: "Severity", Value: Line{T(titleCase(string(inc.Severity)))}},
			{Label: "Score", Value: Line{T(strconv.Itoa(inc.Score))}},
		},
		Fallback:   cut("Targeted attack: "+inc.Title, maxListLineRunes),
		ThreadName: cut("Incident "+inc.ID+" "+inc.Title, maxThreadName),
	}
	if inc.AckedBy != "" {
		m.Fields = append(m.Fields, Field{Label: "Acknowledged by", Value: Line{U(inc.AckedBy)}})
	}
	resolvedFields, resolvedSections := cardResolution(inc)
	m.Fields = append(m.Fields, resolvedFields...)
	m.Sections = append(m.Sections, resolvedSections...)
	lines := func(items []string, limit int) ([]Line, int) {
		var out []Line
		for i, it := range items {
			if i == limit {
				return out, len(items) - limit
			}
			out = append(out, Line{U(cut(it, maxListLineRunes*2))})
		}
		return out, 0
	}
	if len(inc.Reasons) > 0 {
		l, more := lines(inc.Reasons, 5)
		m.Sections = append(m.Sections, Section{Title: "Why you are seeing this", Lines: l, More: more})
	}
	if len(inc.Scope) > 0 {
		sec := Section{Title: "Scope of compromise"}
		for _, g := range inc.Scope {
			shown := g.Items
			if len(shown) > 3 {
				shown = shown[:3]
			}
			if g.total() == 0 {
				continue
			}
			// Each item is cut on its own: the joined line cut at its end
			// lost the third item in the "…" while "and N more" counted
			// only past three.
			each := (maxListLineRunes*2 - 2*(len(shown)-1)) / max(len(shown), 1)
			parts := make([]string, len(shown))
			for i, it := range shown {
				parts[i] = it.text(each)
			}
			l := Line{B(fmt.Sprintf("%s (%d): ", titleCase(g.Kind), g.total())), U(strings.Join(parts, ", "))}
			if g.total() > len(shown) {
				l = append(l, T(fmt.Sprintf(" and %d more", g.total()-len(shown))))
			}
			sec.Lines = append(sec.Lines, l)
		}
		m.Sections = append(m.Sections, sec)
	}
	if len(inc.Timeline) > 0 {
		l, more := lines(inc.Timeline, 6)
		m.Sections = append(m.Sections, Section{Title: "Timeline", Lines: l, More: more})
	}
	if len(inc.Tactics) > 0 {
		m.Sections = append(m.Sections, Section{Title: "ATT&CK tactics and techniques", Lines: []Line{{U(cut(strings.Join(inc.Tactics, ", "), maxTextRunes))}}})
	}
	if len(inc.Recommended) > 0 {
		l, more := lines(inc.Recommended, 6)
		m.Sections = append(m.Sections, Section{Title: "What to do now", Lines: l, More: more})
	}
	m.Buttons = cardButtons(inc)
	// "Ask about this device / file": one button per entity, within a row.
	for _, g := range inc.Scope {
		kind := map[string]SubjectKind{"devices": SubjectDevice, "files": SubjectFile, "ips": SubjectIP}[g.Kind]
		if kind == "" || len(g.Items) == 0 || inc.Status == "merged" || inc.Test {
			continue
		}
		it := g.Items[0]
		id := strings.TrimSpace(it.subject())
		if _, err := validSubject(kind, id); err != nil {
			continue // nothing that can be asked about
		}
		m.Buttons = append(m.Buttons, Button{Action: ActAskEntity, Label: askEntityLabel(kind, it), Value: string(kind) + ":" + id})
	}
	footer := "Incident " + inc.ID + " · threatdesk targeted attack notification"
	if inc.Link != "" {
		// The link is an alert's alertWebUrl: linked only on a Microsoft portal.
		if u, ok := portalLink(inc.Link); ok {
			m.Footer = Line{L(footer, u)}
		} else {
			m.Footer = append(Line{T(footer + " · alert ")}, alertLink("", inc.Link)...)
		}
	} else {
		m.Footer = Line{T(footer)}
	}
	return m
}

// The full scope's layout: sections of scopeSectionLines items (a
// Discord embed field holds 1,024 characters), scopeSections sections a
// message (an embed holds 6,000), at most scopeMessages messages.
const (
	scopeSectionLines = 10
	scopeFieldBytes   = 960 // of Discord's 1,024, escaped, with room for its marks
	scopeSections     = 5
	scopeMaxMessages  = 10
)

// scopeMessages are the full entity list, posted in the notification's
// thread: every kind, its items in sections that fit a Discord embed's
// field (ten lines of at most 90 characters), over as many messages as
// they need (up to scopeMaxMessages, 500 items; what is left is counted). It was one message of at most 50 items
// a kind, and Discord showed 14 of 200 devices.
func scopeMessages(id string, scope []ScopeGroup) []Message {
	var secs []Section
	shown, total := 0, 0
	for _, g := range scope {
		total += g.total()
		for i := 0; i < len(g.Items) || (i == 0 && g.total() > 0); {
			if len(secs) == scopeSections*scopeMaxMessages {
				break
			}
			// Up to scopeSectionLines items, and no more than a Discord
			// field holds once its markdown characters are escaped.
			end, size := i, 0
			for end < len(g.Items) && end-i < scopeSectionLines {
				c := g.Items[end].text(maxListLineRunes)
				n := len(c) + strings.Count(c, "\\") + strings.Count(c, "_") + strings.Count(c, "*") +
					strings.Count(c, "[") + strings.Count(c, "]") + strings.Count(c, "<") + strings.Count(c, ">") +
					strings.Count(c, "|") + strings.Count(c, "~") + strings.Count(c, "`") + 1
				if end > i && size+n > scopeFieldBytes {
					break
				}
				size += n
				end++
			}
			sec := Section{Title: fmt.Sprintf("%s (%d)", titleCase(g.Kind), g.total())}
			if end > i && (i > 0 || end < g.total()) {
				sec.Title = fmt.Sprintf("%s (%d–%d of %d)", titleCase(g.Kind), i+1, end, g.total())
			}
			for _, it := range g.Items[i:end] {
				sec.Lines = append(sec.Lines, Line{U(it.text(maxListLineRunes))})
			}
			shown += end - i
			secs = append(secs, sec)
			i = end
			if end == 0 {
				break // a count and no item listed
			}
		}
	}
	var out []Message
	for i := 0; i < len(secs) || i == 0; i += scopeSections {
		n := len(out) + 1
		title := "Full scope of incident " + id
		if len(secs) > scopeSections {
			title = fmt.Sprintf("Full scope of incident %s (%d of %d)", id, n, (len(secs)+scopeSections-1)/scopeSections)
		}
		out = append(out, Message{Title: title, Fallback: title, Sections: secs[i:min(i+scopeSections, len(secs))]})
	}
	if left := total - shown; left > 0 {
		last := &out[len(out)-1]
		last.Footer = Line{T(fmt.Sprintf("%s not shown (%d shown).", plural.Count(left, "more item", "more items"), shown))}
	}
	return out
}

func (b *Bot) renderIncident(ctx context.Context, ev IncidentEvent) (parts []part, err error) {
	inc, err := b.hunt.Incident(ctx, ev.Org, ev.IncidentID)
	if err != nil {
		return nil, fmt.Errorf("load incident %s to render: %w", ev.IncidentID, err)
	}
	defer func() { ownedBy(parts, inc.Org) }()
	if err := b.withCampaign(ctx, &inc); err != nil {
		return nil, fmt.Errorf("the campaigns of incident %s: %w", ev.IncidentID, err)
	}
	o, ok := b.cfg.org(inc.Org)
	if !ok {
		return nil, &rowError{kind: Permanent, err: fmt.Errorf("incident %s belongs to org %q, which is not in the config", inc.ID, inc.Org)}
	}
	card := notificationCard(inc)
	// The expert desk's sightings message, after the card (insight_incidents.go).
	desk, err := b.sightingsParts(ctx, inc)
	if err != nil {
		return nil, err
	}
	switch ev.Action {
	case "update":
		ps := []part{{key: "card", update: targetNotification, msg: card}}
		if ev.Note != "" {
			// A resolution, in hunting's words: it names a person and
			// carries their comment, so it is shown literally.
			m := Message{Text: []Line{{U(cut(ev.Note, maxTextRunes))}}, Fallback: cut("Incident "+inc.ID+": "+ev.Note, maxListLineRunes)}
			return append(append(ps, part{key: "note", thread: targetNotification, msg: m}), desk...), nil
		}
		if len(ev.Changes) > 0 {
			m := Message{Text: []Line{{B("Updated: ")}}, Fallback: "Incident " + inc.ID + " updated"}
			for _, c := range ev.Changes {
				m.Text = append(m.Text, Line{U(cut(c, maxListLineRunes*2))})
			}
			ps = append(ps, part{key: "note", thread: targetNotification, msg: m})
		}
		return append(ps, desk...), nil
	case "repeat":
		ps := []part{{key: "card", update: targetNotification, msg: card}}
		// A reminder held up in delivery says nothing once the incident
		// was acknowledged or closed meanwhile: the card says how it is.
		if incidentOpen(inc) && inc.AckedBy == "" {
			ps = append(ps, part{key: "note", thread: targetNotification, msg: note(B("Reminder: "), T("incident "+inc.ID+" is still not acknowledged."))})
		}
		return append(ps, desk...), nil
	}
	return append([]part{{key: "card", dest: o.NotifyDest(), msg: card, anchor: targetNotification}}, desk...), nil
}
