package discord

import (
	"slices"
	"strings"

	"github.com/threatdesk/threatdesk/bot"
)

// Mentions, written by threatdesk only: user text is escaped (escape breaks
// "<@…>" up), and allowed_mentions lists exactly the users a message is
// meant for (bot.Message.Mentions), so Discord pings them and nobody else.
// Mentions ping from the content only, never from embeds, so a card's
// content is the mentions of the people it is for.

// maxAllowedUsers is allowed_mentions.users' limit.
const maxAllowedUsers = 100

// listed returns the users m notifies: Discord ids, each once, at most 100.
func listed(m bot.Message) []string {
	var out []string
	for _, id := range m.Mentions {
		if bot.IsDiscordID(id) && !slices.Contains(out, id) && len(out) < maxAllowedUsers {
			out = append(out, id)
		}
	}
	return out
}

// onlyListed returns m with the mention spans of users not in ids (or in
// untrusted spans) turned into their names.
func onlyListed(m bot.Message, ids []string) bot.Message {
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
	return m
}

// mentionOf renders a trusted mention span of a listed user ("" for any
// other span).
func mentionOf(s bot.Span) string {
	if s.Mention == "" || s.Untrusted || !bot.IsDiscordID(s.Mention) {
		return ""
	}
	return "<@" + s.Mention + ">"
}

// notifyLine mentions the users body does not mention yet, to put first.
func notifyLine(users []string, body string) string {
	var b strings.Builder
	for _, id := range users {
		if !strings.Contains(body, "<@"+id+">") {
			b.WriteString("<@" + id + "> ")
		}
	}
	return b.String()
}
