package slackfake

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
)

// Direct messages, permalinks and mentions.
//
// conversations.open (https://docs.slack.dev/reference/methods/conversations.open)
// opens the app's direct conversation with one user, a channel D… that
// chat.postMessage then posts to; an unknown user gets user_not_found (when
// the fake knows its users), a Deactivated one user_disabled, the bot itself
// cannot_dm_bot. chat.getPermalink
// (https://docs.slack.dev/reference/methods/chat.getPermalink) answers a
// message's URL. Every post records whom it notifies (Message.Notified).

// conversationsOpen serves conversations.open with users (one user: a DM).
func (s *Server) conversationsOpen(req apiRequest) map[string]any {
	users := strings.Split(req.get("users"), ",")
	if req.get("users") == "" {
		if ch := req.get("channel"); ch != "" { // reopen a conversation by its id
			s.mu.Lock()
			defer s.mu.Unlock()
			if _, code := s.channelFor(ch, req.team); code != "" {
				return errResp(code)
			}
			return map[string]any{"ok": true, "channel": map[string]any{"id": ch}}
		}
		return errResp("users_list_not_supplied")
	}
	if len(users) != 1 {
		s.violate("conversations.open: threatdesk opens one-to-one conversations only, got users=%q", req.get("users"))
		return errResp("invalid_arguments")
	}
	user := strings.TrimSpace(users[0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if botUser, _ := s.bot(req.team); user == botUser {
		return errResp("cannot_dm_bot")
	}
	if u, ok := s.users[user]; len(s.users) > 0 && !ok {
		return errResp("user_not_found")
	} else if u.Deactivated {
		return errResp("user_disabled")
	} else if ok && or(u.Team, s.o.TeamID) != or(req.team, s.o.TeamID) {
		return errResp("user_not_found")
	}
	for _, c := range s.channels {
		if c.IM && c.User == user && s.teamOf(c.ID) == or(req.team, s.o.TeamID) {
			return map[string]any{"ok": true, "no_op": true, "already_open": true, "channel": map[string]any{"id": c.ID, "is_im": true, "user": user}}
		}
	}
	c := Channel{ID: s.nextID("D"), Name: "dm-" + user, Private: true, IM: true, User: user, Team: req.team}
	s.channels[c.ID] = c
	return map[string]any{"ok": true, "channel": map[string]any{"id": c.ID, "is_im": true, "user": user}}
}

// permalink serves chat.getPermalink.
func (s *Server) permalink(req apiRequest) map[string]any {
	ch, ts := req.get("channel"), req.get("message_ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, code := s.channelFor(ch, req.team); code == "channel_not_found" {
		return errResp(code)
	}
	m := s.find(ch, ts)
	if m == nil {
		return errResp("message_not_found")
	}
	return map[string]any{"ok": true, "channel": ch, "permalink": PermalinkOf(ch, ts, m.ThreadTS)}
}

// PermalinkOf is the URL chat.getPermalink gives a message of the fake.
func PermalinkOf(channel, ts, threadTS string) string {
	u := "https://fake.slack.com/archives/" + channel + "/p" + strings.ReplaceAll(ts, ".", "")
	if threadTS != "" && threadTS != ts {
		u += "?thread_ts=" + threadTS + "&cid=" + channel
	}
	return u
}

// DirectChannel returns the app's direct conversation with user, once
// opened.
func (s *Server) DirectChannel(user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.channels {
		if c.IM && c.User == user {
			return c.ID, true
		}
	}
	return "", false
}

// DirectMessages returns the messages posted to user's direct conversation.
func (s *Server) DirectMessages(user string) []Message {
	ch, ok := s.DirectChannel(user)
	if !ok {
		return nil
	}
	return s.Messages(ch)
}

// NotifiedOf returns the posts that notified user.
func (s *Server) NotifiedOf(user string) []Message {
	var out []Message
	for _, m := range s.Messages("") {
		if slices.Contains(m.Notified, user) {
			out = append(out, m)
		}
	}
	return out
}

// userMention is a user mention in mrkdwn; typed by a person it arrives
// escaped (&lt;@U…&gt;) and matches nothing.
var userMention = regexp.MustCompile(`<@([UW][A-Z0-9]+)(?:\|[^>]*)?>`)

// notified lists the users a message's text and blocks mention, each once.
func notified(text, blocks string) []string {
	var out []string
	add := func(s string) {
		for _, m := range userMention.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	add(text)
	var v any
	if blocks != "" && json.Unmarshal([]byte(blocks), &v) == nil {
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if x["type"] == "mrkdwn" {
					if t, ok := x["text"].(string); ok {
						add(t)
					}
				}
				// A rich text user element mentions its user; rich text
				// text elements are shown as written and mention no one.
				if u, ok := x["user_id"].(string); ok && x["type"] == "user" && !slices.Contains(out, u) {
					out = append(out, u)
				}
				for _, e := range x {
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(v)
	}
	return out
}
