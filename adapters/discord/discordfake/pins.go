package discordfake

import (
	"net/http"
)

// Pins: PUT /channels/{channel.id}/pins/{message.id}
// (https://discord.com/developers/docs/resources/message#pin-message-deprecated,
// the route discordgo's ChannelMessagePin uses) pins a message: 204, a
// message pinned already stays pinned (also 204); an unknown message is
// 10008; a channel holds at most 50 pins (30003). The bot needs the Pin
// Messages permission (1 << 51), which the fake does not model.

// maxPins is Discord's limit of pinned messages per channel.
const maxPins = 50

func (s *Server) pinMessage(w http.ResponseWriter, r *http.Request, _ []byte) {
	ch, id := r.PathValue("channel"), r.PathValue("message")
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok || m.ChannelID != ch {
		writeErr(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	if !s.pinned[id] {
		n := 0
		for mid := range s.pinned {
			if pm, ok := s.messages[mid]; ok && pm.ChannelID == ch {
				n++
			}
		}
		if n >= maxPins {
			writeErr(w, http.StatusBadRequest, 30003, "Maximum number of pins reached (50)")
			return
		}
		s.pinned[id] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// Pinned returns the pinned messages of channel.
func (s *Server) Pinned(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for id := range s.pinned {
		if m, ok := s.messages[id]; ok && m.ChannelID == channel {
			out = append(out, *m)
		}
	}
	return out
}
