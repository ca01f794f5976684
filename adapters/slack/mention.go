package slack

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/threatdesk/threatdesk/bot"
)

// Mentions and dates, written by threatdesk only: user text is escaped
// (Escape), so "<@U123>" or "<!date^…>" typed by a user stays text.
//
// A message notifies exactly the users it lists (bot.Message.Mentions): a
// trusted span naming one of them becomes <@U…> in place
// (https://docs.slack.dev/messaging/formatting-message-text#mentioning-users),
// and the top-level text, which is what a notification shows, starts with
// their mentions. A span naming anyone else shows their name.

// userIDPattern is a Slack user id (U…, W… for Enterprise Grid).
var userIDPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// listed returns the users m notifies: valid Slack user ids, each once.
func listed(m bot.Message) []string {
	var out []string
	for _, id := range m.Mentions {
		if userIDPattern.MatchString(id) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// onlyListed returns m with the mention spans of users it does not list
// turned into their names.
func onlyListed(m bot.Message) bot.Message {
	ids := listed(m)
	fix := func(l bot.Line) bot.Line {
		if !slices.ContainsFunc(l, func(s bot.Span) bool { return s.Mention != "" }) {
			return l
		}
		out := slices.Clone(l)
		for i, s := range out {
			if s.Mention != "" && (s.Untrusted || !slices.Contains(ids, s.Mention)) {
				out[i].Mention = ""
			}
		}
		return out
	}
	m.Mentions = ids
	text := make([]bot.Line, len(m.Text))
	for i, l := range m.Text {
		text[i] = fix(l)
	}
	m.Text = text
	fields := make([]bot.Field, len(m.Fields))
	for i, f := range m.Fields {
		f.Value = fix(f.Value)
		fields[i] = f
	}
	m.Fields = fields
	secs := make([]bot.Section, len(m.Sections))
	for i, sec := range m.Sections {
		lines := make([]bot.Line, len(sec.Lines))
		for j, l := range sec.Lines {
			lines[j] = fix(l)
		}
		sec.Lines = lines
		secs[i] = sec
	}
	m.Sections = secs
	m.Footer = fix(m.Footer)
	return m
}

// mentionOf renders a trusted mention span of a listed user ("" for any
// other span; onlyListed has cleared the others).
func mentionOf(s bot.Span) string {
	if s.Mention == "" || s.Untrusted || !userIDPattern.MatchString(s.Mention) {
		return ""
	}
	return "<@" + s.Mention + ">"
}

// notifyText starts the top-level text: the mentions of the users m lists.
func notifyText(m bot.Message) string {
	var b strings.Builder
	for _, id := range listed(m) {
		b.WriteString("<@" + id + "> ")
	}
	return b.String()
}

// dateFormat shows a time in each reader's own time zone: "today 09:00",
// "Mar 9, 2026 09:00" (https://docs.slack.dev/messaging/formatting-message-text#date-formatting).
const dateFormat = "{date_short_pretty} {time}"

// dateOf renders a trusted time span as <!date^…>, with the span's text
// (the time in the configured zone, named) as the fallback.
func dateOf(s bot.Span) string {
	if s.Time.IsZero() || s.Untrusted {
		return ""
	}
	fallback := strings.NewReplacer("|", "¦", "^", "ˆ").Replace(Escape(s.Text))
	return "<!date^" + strconv.FormatInt(s.Time.Unix(), 10) + "^" + dateFormat + "|" + fallback + ">"
}
