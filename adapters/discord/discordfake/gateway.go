package discordfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Gateway opcodes. https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-opcodes
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opResume         = 6
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatAck   = 11
)

type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

type session struct {
	conn    *websocket.Conn
	wmu     sync.Mutex
	seq     int64
	token   string
	ready   bool
	intents int
}

func (c *session) write(op int, t string, d any) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := frame{Op: op, D: raw, T: t}
	if op == opDispatch {
		c.seq++
		seq := c.seq
		f.S = &seq
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteJSON(f)
}

// Sessions returns how many identified gateway sessions are open now for
// the bot token.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[s.opts.Token]
}

// MaxSessions returns the most identified sessions the bot token ever had
// open at once.
func (s *Server) MaxSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxLive[s.opts.Token]
}

// Identifies counts IDENTIFY payloads accepted.
func (s *Server) Identifies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identifies
}

// Intents returns the intents of the open sessions.
func (s *Server) Intents() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for c := range s.sessions {
		if c.ready {
			out = append(out, c.intents)
		}
	}
	return out
}

// WaitSessions waits until exactly n sessions are open.
func (s *Server) WaitSessions(n int, timeout time.Duration) bool {
	return testwait.Until(timeout, func() bool { return s.Sessions() == n }, s)
}

// DropSessions closes every gateway connection abruptly.
func (s *Server) DropSessions() {
	s.mu.Lock()
	conns := make([]*session, 0, len(s.sessions))
	for c := range s.sessions {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.Close()
	}
}

// Dispatch sends an event to every ready session; it returns how many got it.
func (s *Server) Dispatch(event string, d any) int {
	return s.dispatchEach(event, func(int) (any, bool) { return d, true })
}

// dispatchEach sends an event to every ready session in the shape its
// intents allow (nothing when payload says so).
func (s *Server) dispatchEach(event string, payload func(intents int) (any, bool)) int {
	s.mu.Lock()
	conns := make([]*session, 0, len(s.sessions))
	for c := range s.sessions {
		if c.ready {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		d, ok := payload(c.intents)
		if !ok {
			continue
		}
		if c.write(opDispatch, event, d) == nil {
			n++
		}
	}
	return n
}

// Gateway intents the fake honours.
// https://discord.com/developers/docs/events/gateway#gateway-intents
const (
	IntentGuilds         = 1 << 0
	IntentGuildMessages  = 1 << 9
	IntentMessageContent = 1 << 15
)

// dispatchMessage sends MESSAGE_CREATE for a stored message.
func (s *Server) dispatchMessage(m Message) { s.dispatchMessageEvent("MESSAGE_CREATE", m) }

// dispatchMessageEvent sends MESSAGE_CREATE or MESSAGE_UPDATE (the same
// message object, with edited_timestamp) for a stored message
// (https://discord.com/developers/docs/events/gateway-events#message-update).
func (s *Server) dispatchMessageEvent(event string, m Message) {
	d := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "author": m.Author, "content": m.Content, "embeds": m.Embeds,
		"components": m.Components, "type": m.Type, "timestamp": m.Created.UTC().Format(time.RFC3339Nano),
		"tts": false, "mention_everyone": false, "mentions": []any{}, "mention_roles": []any{}, "attachments": attachmentsJSON(m), "pinned": false,
	}
	if m.GuildID != "" {
		d["guild_id"] = m.GuildID
		d["member"] = map[string]any{"roles": []string{}, "joined_at": "2024-01-01T00:00:00.000000+00:00", "nick": nilIfEmpty(m.Author.Nick)}
	}
	if event == "MESSAGE_UPDATE" {
		d["edited_timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	own := m.Author.ID == s.opts.BotID
	s.dispatchEach(event, func(intents int) (any, bool) {
		if m.GuildID != "" && intents&IntentGuildMessages == 0 {
			return nil, false // guild messages need GUILD_MESSAGES
		}
		if intents&IntentMessageContent != 0 || own {
			return d, true
		}
		// Without the privileged MESSAGE_CONTENT intent the text is blank.
		blank := make(map[string]any, len(d))
		for k, v := range d {
			blank[k] = v
		}
		blank["content"], blank["embeds"], blank["components"], blank["attachments"] = "", []any{}, []any{}, []any{}
		return blank, true
	})
}

// Say posts a message as a user (a human, or a bot when u.Bot) and
// dispatches MESSAGE_CREATE.
func (s *Server) Say(channelID string, u User, content string) Message {
	s.mu.Lock()
	if _, ok := s.users[u.ID]; !ok {
		s.users[u.ID] = u
	}
	c := s.channels[channelID]
	m := &Message{ID: s.nextID(), ChannelID: channelID, GuildID: c.GuildID, Author: u, Content: content, Created: time.Now()}
	s.store(m)
	out := *m
	s.mu.Unlock()
	s.dispatchMessage(out)
	return out
}

// serveGateway speaks enough of the gateway protocol for discordgo.
func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &session{conn: conn}
	s.mu.Lock()
	s.sessions[c] = true
	s.mu.Unlock()
	s.changes.Notify()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, c)
		if c.ready {
			s.live[c.token]--
		}
		s.mu.Unlock()
		_ = conn.Close()
		s.changes.Notify()
	}()
	if err := c.write(opHello, "", map[string]any{"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds()}); err != nil {
		return
	}
	for {
		var f frame
		if err := conn.ReadJSON(&f); err != nil {
			return
		}
		switch f.Op {
		case opHeartbeat:
			if c.write(opHeartbeatAck, "", nil) != nil {
				return
			}
		case opIdentify:
			var id struct {
				Token   string `json:"token"`
				Intents int    `json:"intents"`
			}
			_ = json.Unmarshal(f.D, &id)
			token := strings.TrimPrefix(id.Token, "Bot ")
			if token != s.opts.Token {
				c.wmu.Lock()
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."))
				c.wmu.Unlock()
				return
			}
			if !c.ready {
				s.mu.Lock()
				c.ready, c.token, c.intents = true, token, id.Intents
				s.identifies++
				s.live[token]++
				if s.live[token] > s.maxLive[token] {
					s.maxLive[token] = s.live[token]
				}
				s.mu.Unlock()
				s.changes.Notify()
			}
			if err := s.ready(c); err != nil {
				return
			}
		case opResume:
			// Sessions are not resumable here: the client identifies again.
			if c.write(opInvalidSession, "", false) != nil {
				return
			}
		}
	}
}

// ready sends READY and a GUILD_CREATE per guild.
func (s *Server) ready(c *session) error {
	s.mu.Lock()
	guilds := []map[string]any{}
	for _, g := range s.opts.Guilds {
		guilds = append(guilds, map[string]any{"id": g.ID, "unavailable": true})
	}
	bot := s.users[s.opts.BotID]
	sid := "session-" + s.nextID()
	s.mu.Unlock()
	if err := c.write(opDispatch, "READY", map[string]any{
		"v": 10, "user": bot, "guilds": guilds, "session_id": sid, "resume_gateway_url": s.GatewayURL(),
		"application": map[string]any{"id": s.opts.AppID, "flags": 0}, "private_channels": []any{},
	}); err != nil {
		return err
	}
	for _, g := range s.opts.Guilds {
		s.mu.Lock()
		var chans, threads []Channel
		for _, ch := range s.channels {
			if ch.GuildID != g.ID {
				continue
			}
			if ch.Type == 11 || ch.Type == 12 {
				threads = append(threads, ch)
			} else {
				chans = append(chans, ch)
			}
		}
		s.mu.Unlock()
		if err := c.write(opDispatch, "GUILD_CREATE", guildCreate(g, chans, threads)); err != nil {
			return err
		}
	}
	return nil
}
