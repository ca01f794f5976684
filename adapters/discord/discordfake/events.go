package discordfake

import (
	"time"
)

// Edits, deletions and joins, as the gateway delivers them.

// guildCreate is a GUILD_CREATE payload: the guild with its channels and
// threads, joined_at (when the bot joined) and its system channel (the
// first text channel here)
// (https://discord.com/developers/docs/events/gateway-events#guild-create).
func guildCreate(g Guild, chans, threads []Channel) map[string]any {
	joined := g.JoinedAt
	if joined.IsZero() {
		joined = defaultJoinedAt
	}
	var system any
	if len(g.Channels) > 0 {
		system = g.Channels[0]
	}
	return map[string]any{
		"id": g.ID, "name": "guild-" + g.ID, "unavailable": false, "member_count": 1,
		"joined_at": joined.UTC().Format("2006-01-02T15:04:05.000000+00:00"), "system_channel_id": system,
		"channels": chans, "threads": threads, "members": []any{}, "roles": []any{}, "emojis": []any{},
	}
}

// JoinGuild adds the bot to a new guild with text channels and dispatches
// its GUILD_CREATE, joined now, to every ready session, as Discord does
// when the bot is invited to a server.
func (s *Server) JoinGuild(g Guild) {
	if g.JoinedAt.IsZero() {
		g.JoinedAt = time.Now()
	}
	s.mu.Lock()
	s.opts.Guilds = append(s.opts.Guilds, g)
	var chans []Channel
	for _, c := range g.Channels {
		ch := Channel{ID: c, Type: 0, GuildID: g.ID, Name: "channel-" + c}
		s.channels[c] = ch
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	s.dispatchEach("GUILD_CREATE", func(intents int) (any, bool) {
		return guildCreate(g, chans, []Channel{}), intents&IntentGuilds != 0
	})
	s.changes.Notify()
}

// Edit changes the content of a person's message and dispatches
// MESSAGE_UPDATE with the whole message, as Discord does for an edit.
func (s *Server) Edit(messageID, content string) Message {
	s.mu.Lock()
	m, ok := s.messages[messageID]
	if !ok {
		s.mu.Unlock()
		s.t.Fatalf("discordfake: no message %s to edit", messageID)
		return Message{}
	}
	m.Content = content
	m.Edits++
	out := *m
	s.mu.Unlock()
	s.dispatchMessageEvent("MESSAGE_UPDATE", out)
	return out
}

// Delete deletes a message and dispatches MESSAGE_DELETE, which carries
// only its id, channel and guild
// (https://discord.com/developers/docs/events/gateway-events#message-delete).
func (s *Server) Delete(messageID string) {
	s.mu.Lock()
	m, ok := s.messages[messageID]
	if !ok {
		s.mu.Unlock()
		s.t.Fatalf("discordfake: no message %s to delete", messageID)
		return
	}
	delete(s.messages, messageID)
	for i, id := range s.order {
		if id == messageID {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	d := map[string]any{"id": m.ID, "channel_id": m.ChannelID}
	if m.GuildID != "" {
		d["guild_id"] = m.GuildID
	}
	guild := m.GuildID != ""
	s.mu.Unlock()
	s.dispatchEach("MESSAGE_DELETE", func(intents int) (any, bool) {
		return d, !guild || intents&IntentGuildMessages != 0
	})
}
