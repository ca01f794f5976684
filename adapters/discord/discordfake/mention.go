package discordfake

import (
	"fmt"
	"regexp"
	"slices"
)

// Mentions checked against allowed_mentions
// (https://discord.com/developers/docs/resources/message#allowed-mentions-object):
// users lists at most 100 ids, never together with "users" in parse; a user
// mention in the content pings only when allowed; mentions in embeds never
// ping. The fake records whom each created message pinged
// (Message.Notified), and reports a listed user the content does not
// mention: allowed_mentions must name exactly the people a message is for.

// userMention is a user mention in message content: <@id> or <@!id>.
var userMention = regexp.MustCompile(`<@!?([0-9]{15,21})>`)

// contentMentions lists the users a content mentions, each once.
func contentMentions(content string) []string {
	var out []string
	for _, m := range userMention.FindAllStringSubmatch(content, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkAllowedUsers reports what is wrong with allowed_mentions.users.
func checkAllowedUsers(b MessageBody) []string {
	am := b.AllowedMentions
	if am == nil || len(am.Users) == 0 {
		return nil
	}
	var v []string
	if len(am.Users) > 100 {
		v = append(v, fmt.Sprintf("allowed_mentions.users lists %d users, limit 100", len(am.Users)))
	}
	if am.Parse != nil && slices.Contains(*am.Parse, "users") {
		v = append(v, `allowed_mentions: "users" in parse and a users list are mutually exclusive`)
	}
	content := ""
	if b.Content != nil {
		content = *b.Content
	}
	mentioned := contentMentions(content)
	for _, id := range am.Users {
		if !slices.Contains(mentioned, id) {
			v = append(v, fmt.Sprintf("allowed_mentions.users lists %s, whom the content does not mention (mentions in embeds never ping)", id))
		}
	}
	return v
}

// notified lists the users a message pings: its content's user mentions
// that allowed_mentions allows.
func notified(b MessageBody) []string {
	if b.Content == nil || b.AllowedMentions == nil {
		return nil
	}
	parseUsers := b.AllowedMentions.Parse != nil && slices.Contains(*b.AllowedMentions.Parse, "users")
	var out []string
	for _, id := range contentMentions(*b.Content) {
		if parseUsers || slices.Contains(b.AllowedMentions.Users, id) {
			out = append(out, id)
		}
	}
	return out
}

// DirectMessages returns the messages in the DM channel with user.
func (s *Server) DirectMessages(user string) []Message {
	s.mu.Lock()
	ch := ""
	for _, c := range s.channels {
		if c.Type == 1 && c.Name == "dm-"+user {
			ch = c.ID
		}
	}
	s.mu.Unlock()
	if ch == "" {
		return nil
	}
	return s.Messages(ch)
}

// NotifiedOf returns the messages that pinged user.
func (s *Server) NotifiedOf(user string) []Message {
	var out []Message
	for _, m := range s.AllMessages() {
		if slices.Contains(m.Notified, user) {
			out = append(out, m)
		}
	}
	return out
}
