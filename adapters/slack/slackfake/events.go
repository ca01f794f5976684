package slackfake

import (
	"encoding/json"
)

// Edits, deletions, invitations and the App Home, as Slack delivers them.

// maxHomeBlocks is the most blocks a Home tab view holds
// (https://docs.slack.dev/reference/block-kit/blocks: 100 in modals and
// Home tabs).
const maxHomeBlocks = 100

// viewsPublish is views.publish: it stores user_id's Home tab view
// (https://docs.slack.dev/reference/methods/views.publish).
func (s *Server) viewsPublish(req apiRequest) map[string]any {
	user := req.get("user_id")
	view, _ := req.json["view"].(map[string]any)
	if user == "" || view == nil {
		return errResp("invalid_arguments")
	}
	if view["type"] != "home" {
		s.violate("views.publish: view type %v, want home", view["type"])
		return errResp("invalid_arguments")
	}
	blocks, _ := view["blocks"].([]any)
	if len(blocks) > maxHomeBlocks {
		s.violate("views.publish: %d blocks, Slack allows %d", len(blocks), maxHomeBlocks)
		return errResp("invalid_arguments")
	}
	var bs []map[string]any
	for _, b := range blocks {
		m, _ := b.(map[string]any)
		bs = append(bs, m)
	}
	if !s.checkBlocks("views.publish", bs, false) {
		return errResp("invalid_arguments")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[user]; !ok || or(u.Team, s.o.TeamID) != or(req.team, s.o.TeamID) {
		return errResp("user_not_found")
	}
	raw, _ := json.Marshal(view)
	s.homes[user] = raw
	out := map[string]any{}
	for k, v := range view {
		out[k] = v
	}
	out["id"], out["team_id"], out["type"] = s.nextID("V"), or(req.team, s.o.TeamID), "home"
	return map[string]any{"ok": true, "view": out}
}

// Home returns the Home tab view published for user, if any.
func (s *Server) Home(user string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.homes[user]
	return v, ok
}

// HomeOpened returns the app_home_opened callback of user opening the
// app's Home tab; it carries the view published for them, if any
// (https://docs.slack.dev/reference/events/app_home_opened).
func (s *Server) HomeOpened(user string) map[string]any {
	s.mu.Lock()
	evID := s.nextID("Ev")
	view, published := s.homes[user]
	ts := s.nextTS()
	s.mu.Unlock()
	ev := map[string]any{"type": "app_home_opened", "user": user, "channel": "D" + user[1:], "tab": "home", "event_ts": ts}
	if published {
		var v map[string]any
		_ = json.Unmarshal(view, &v)
		ev["view"] = v
	}
	return s.Callback(evID, ev)
}

// Invite adds user (the app's bot user, by default) to channel and returns
// the member_joined_channel callback Slack sends the app
// (https://docs.slack.dev/reference/events/member_joined_channel).
func (s *Server) Invite(channel, user, inviter string) map[string]any {
	s.mu.Lock()
	c := s.channels[channel]
	team := s.teamOf(channel)
	if botUser, _ := s.bot(team); user == "" || user == botUser {
		user = botUser
		c.NotMember = false
		s.channels[channel] = c
	}
	evID := s.nextID("Ev")
	ts := s.nextTS()
	s.mu.Unlock()
	ctype := "C"
	if c.Private {
		ctype = "G"
	}
	ev := map[string]any{"type": "member_joined_channel", "user": user, "channel": channel, "channel_type": ctype,
		"team": team, "event_ts": ts}
	if inviter != "" {
		ev["inviter"] = inviter
	}
	return s.CallbackFor(team, evID, ev)
}

// UserEdit changes the text of a person's stored message and returns the
// message_changed callback, with the message as it is and as it was
// (https://docs.slack.dev/reference/events/message/message_changed).
func (s *Server) UserEdit(channel, ts, text string) map[string]any {
	s.mu.Lock()
	m := s.find(channel, ts)
	if m == nil {
		s.mu.Unlock()
		s.t.Fatalf("slackfake: no message %s in %s to edit", ts, channel)
		return nil
	}
	prev := userMsgJSON(m)
	m.Text = text
	m.Edits++
	now := s.nextTS()
	cur := userMsgJSON(m)
	cur["edited"] = map[string]any{"user": m.User, "ts": now}
	evID := s.nextID("Ev")
	c := s.channels[channel]
	s.mu.Unlock()
	ev := map[string]any{"type": "message", "subtype": "message_changed", "hidden": true, "channel": channel,
		"channel_type": channelType(c), "ts": now, "event_ts": now, "message": cur, "previous_message": prev}
	return s.Callback(evID, ev)
}

// UserDelete deletes a person's stored message and returns the
// message_deleted callback
// (https://docs.slack.dev/reference/events/message/message_deleted).
func (s *Server) UserDelete(channel, ts string) map[string]any {
	s.mu.Lock()
	var prev map[string]any
	for i, m := range s.messages {
		if m.Channel == channel && m.TS == ts {
			prev = userMsgJSON(m)
			s.messages = append(s.messages[:i:i], s.messages[i+1:]...)
			break
		}
	}
	if prev == nil {
		s.mu.Unlock()
		s.t.Fatalf("slackfake: no message %s in %s to delete", ts, channel)
		return nil
	}
	now := s.nextTS()
	evID := s.nextID("Ev")
	c := s.channels[channel]
	s.mu.Unlock()
	ev := map[string]any{"type": "message", "subtype": "message_deleted", "hidden": true, "channel": channel,
		"channel_type": channelType(c), "ts": now, "event_ts": now, "deleted_ts": ts, "previous_message": prev}
	return s.Callback(evID, ev)
}

func channelType(c Channel) string {
	if c.Private {
		return "group"
	}
	return "channel"
}

// userMsgJSON is a person's message as events carry it.
func userMsgJSON(m *Message) map[string]any {
	out := map[string]any{"type": "message", "user": m.User, "text": m.Text, "ts": m.TS}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if m.BotID != "" {
		out["bot_id"] = m.BotID
	}
	return out
}
