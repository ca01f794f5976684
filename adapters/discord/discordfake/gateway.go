package discordfake

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
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
	opReconnect      = 7
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

// session is one gateway connection.
type session struct {
	conn    *websocket.Conn
	wmu     sync.Mutex
	token   string
	ready   bool
	intents int
	// gs is the gateway session it carries once identified or resumed;
	// dropped is set by DropSessions (s.mu).
	gs      *gwSession
	dropped bool
}

// write sends a frame that is not a dispatch (dispatches go through the
// gateway session, which numbers them).
func (c *session) write(op int, t string, d any) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return c.writeFrame(frame{Op: op, D: raw, T: t})
}

func (c *session) writeFrame(f frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteJSON(f)
}

// gwSession is a gateway session as Discord keeps it across connections:
// its id, the sequence of its dispatches and the recent ones, which a
// RESUME on a new connection replays.
// https://discord.com/developers/docs/events/gateway#resuming
type gwSession struct {
	id, token string
	intents   int

	mu      sync.Mutex // orders dispatches; guards the fields below
	seq     int64
	log     []frame
	conn    *session // the connection carrying it now; nil while detached
	invalid bool     // closed for good: no longer resumable
}

// maxReplay is how many dispatches a session keeps for a RESUME.
const maxReplay = 1000

// dispatch numbers an event, keeps it for a RESUME and sends it on the
// session's connection, if it has one now.
func (g *gwSession) dispatch(t string, d any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dispatchJSON(t, d)
}

// dispatchJSON is dispatch with g.mu held.
func (g *gwSession) dispatchJSON(t string, d any) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return g.dispatchLocked(t, raw)
}

func (g *gwSession) dispatchLocked(t string, raw json.RawMessage) error {
	g.seq++
	seq := g.seq
	f := frame{Op: opDispatch, D: raw, S: &seq, T: t}
	g.log = append(g.log, f)
	if len(g.log) > maxReplay {
		g.log = g.log[len(g.log)-maxReplay:]
	}
	if g.conn == nil {
		return nil
	}
	return g.conn.writeFrame(f)
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

// Resumes counts RESUME payloads accepted (sessions resumed on a new
// connection, their missed events replayed).
func (s *Server) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
}

// Reconnect asks every identified connection to reconnect and resume
// (op 7 RECONNECT), as Discord does before it moves a session: events
// dispatched from then on are kept for the RESUME, which replays them.
// It returns how many were asked.
// https://discord.com/developers/docs/topics/gateway-events#reconnect
func (s *Server) Reconnect() int {
	s.mu.Lock()
	var conns []*session
	for c := range s.sessions {
		if c.ready && c.gs != nil {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		g := c.gs
		g.mu.Lock()
		if g.conn == c {
			g.conn = nil
		}
		err := c.write(opReconnect, "", nil)
		g.mu.Unlock()
		if err == nil {
			n++
		}
	}
	return n
}

// IdentifyTries counts IDENTIFY payloads sent, refused ones too (Discord
// resets a bot's token after 1,000 in a day).
func (s *Server) IdentifyTries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identifyTries
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

// DropSessions closes every gateway connection abruptly, and their
// sessions with them: the clients must identify again.
func (s *Server) DropSessions() {
	s.mu.Lock()
	conns := make([]*session, 0, len(s.sessions))
	for c := range s.sessions {
		c.dropped = true
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.Close()
	}
}

// Dispatch sends an event to every gateway session; it returns how many
// got it, or will on resuming.
func (s *Server) Dispatch(event string, d any) int {
	return s.dispatchEach(event, func(int) (any, bool) { return d, true })
}

// dispatchEach sends an event to every gateway session (a detached one
// keeps it for its RESUME) in the shape its intents allow (nothing when
// payload says so).
func (s *Server) dispatchEach(event string, payload func(intents int) (any, bool)) int {
	s.mu.Lock()
	gs := make([]*gwSession, 0, len(s.gw))
	for _, g := range s.gw {
		gs = append(gs, g)
	}
	s.mu.Unlock()
	n := 0
	for _, g := range gs {
		d, ok := payload(g.intents)
		if !ok {
			continue
		}
		if g.dispatch(event, d) == nil {
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
	d := messageObject(m)
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

// messageObject is m as Discord's message object
// (https://discord.com/developers/docs/resources/message#message-object);
// the gateway adds guild_id and member to it, the REST API does not.
func messageObject(m Message) map[string]any {
	return map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "author": m.Author, "content": m.Content, "embeds": m.Embeds,
		"components": m.Components, "type": m.Type, "timestamp": m.Created.UTC().Format(time.RFC3339Nano),
		"tts": false, "mention_everyone": false, "mentions": []any{}, "mention_roles": []any{}, "attachments": attachmentsJSON(m), "pinned": false,
	}
}

// SayWhileOffline posts a message as a user while no session of the bot is
// connected, or could resume to get it: it is stored (the REST API lists
// it) and no gateway event is sent for it. Use DropSessions after it to
// make the client identify again.
func (s *Server) SayWhileOffline(channelID string, u User, content string) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; !ok {
		s.users[u.ID] = u
	}
	c := s.channels[channelID]
	m := &Message{ID: s.nextID(), ChannelID: channelID, GuildID: c.GuildID, Author: u, Content: content, Created: time.Now()}
	s.store(m)
	return *m
}

// Say posts a message as a user (a human, or a bot when u.Bot) and
// dispatches MESSAGE_CREATE.
func (s *Server) Say(channelID string, u User, content string) Message {
	m := s.SayWhileOffline(channelID, u, content)
	s.dispatchMessage(m)
	return m
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
	var readErr error
	defer func() {
		s.mu.Lock()
		delete(s.sessions, c)
		if c.ready {
			s.live[c.token]--
		}
		g, dropped := c.gs, c.dropped
		s.mu.Unlock()
		_ = conn.Close()
		if g != nil {
			// A session outlives its connection unless the client closed
			// it with 1000 or 1001, or DropSessions killed it.
			// https://discord.com/developers/docs/events/gateway#disconnecting
			var ce *websocket.CloseError
			normal := errors.As(readErr, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway)
			g.mu.Lock()
			if g.conn == c {
				g.conn = nil
			}
			end := g.conn == nil && (normal || dropped)
			if end {
				g.invalid = true
			}
			g.mu.Unlock()
			if end {
				s.mu.Lock()
				if s.gw[g.id] == g {
					delete(s.gw, g.id)
				}
				s.mu.Unlock()
			}
		}
		s.changes.Notify()
	}()
	if err := c.write(opHello, "", map[string]any{"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds()}); err != nil {
		return
	}
	for {
		var f frame
		if readErr = conn.ReadJSON(&f); readErr != nil {
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
			s.mu.Lock()
			s.identifyTries++
			s.mu.Unlock()
			s.changes.Notify()
			if token != s.opts.Token {
				c.wmu.Lock()
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."))
				c.wmu.Unlock()
				return
			}
			if id.Intents&s.opts.DisallowedIntents != 0 {
				c.wmu.Lock()
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4014, "Disallowed intent(s)."))
				c.wmu.Unlock()
				return
			}
			s.mu.Lock()
			if !c.ready {
				c.ready, c.token = true, token
				s.identifies++
				s.live[token]++
				if s.live[token] > s.maxLive[token] {
					s.maxLive[token] = s.live[token]
				}
			}
			c.intents = id.Intents
			if old := c.gs; old != nil {
				delete(s.gw, old.id)
			}
			gs := &gwSession{id: "session-" + s.nextID(), token: token, intents: id.Intents, conn: c}
			gs.mu.Lock() // READY goes first: dispatches wait for it
			s.gw[gs.id], c.gs = gs, gs
			s.mu.Unlock()
			s.changes.Notify()
			err := s.ready(gs)
			gs.mu.Unlock()
			if err != nil {
				return
			}
		case opResume:
			var rs struct {
				Token     string `json:"token"`
				SessionID string `json:"session_id"`
				Seq       int64  `json:"seq"`
			}
			_ = json.Unmarshal(f.D, &rs)
			if strings.TrimPrefix(rs.Token, "Bot ") != s.opts.Token {
				c.wmu.Lock()
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."))
				c.wmu.Unlock()
				return
			}
			if !s.resume(c, rs.SessionID, rs.Seq) {
				// Not resumable (unknown, closed for good, or too far
				// behind): op 9 with d false, and the client identifies.
				if c.write(opInvalidSession, "", false) != nil {
					return
				}
			}
		}
	}
}

// resume attaches the session id to connection c, replays the dispatches
// after seq and sends RESUMED, as Discord does; it reports whether the
// session could be resumed.
// https://discord.com/developers/docs/events/gateway#resuming
func (s *Server) resume(c *session, id string, seq int64) bool {
	s.mu.Lock()
	g := s.gw[id]
	already := c.ready
	s.mu.Unlock()
	if g == nil || already {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.invalid || seq > g.seq || (len(g.log) > 0 && seq < *g.log[0].S-1) {
		return false
	}
	old := g.conn
	g.conn = c
	s.mu.Lock()
	c.ready, c.token, c.intents, c.gs = true, g.token, g.intents, g
	s.resumes++
	s.live[g.token]++
	if s.live[g.token] > s.maxLive[g.token] {
		s.maxLive[g.token] = s.live[g.token]
	}
	s.mu.Unlock()
	s.changes.Notify()
	if old != nil && old != c {
		_ = old.conn.Close() // a session runs on one connection at a time
	}
	for _, f := range g.log {
		if *f.S > seq {
			if c.writeFrame(f) != nil {
				return true
			}
		}
	}
	_ = g.dispatchLocked("RESUMED", json.RawMessage(`{"_trace":["discordfake"]}`))
	return true
}

// ready sends READY and a GUILD_CREATE per guild; gs.mu is held.
func (s *Server) ready(gs *gwSession) error {
	s.mu.Lock()
	joined := slices.Clone(s.opts.Guilds) // JoinGuild appends meanwhile
	guilds := []map[string]any{}
	for _, g := range joined {
		guilds = append(guilds, map[string]any{"id": g.ID, "unavailable": true})
	}
	bot := s.users[s.opts.BotID]
	sid := gs.id
	s.mu.Unlock()
	if err := gs.dispatchJSON("READY", map[string]any{
		"v": 10, "user": bot, "guilds": guilds, "session_id": sid, "resume_gateway_url": s.GatewayURL(),
		"application": map[string]any{"id": s.opts.AppID, "flags": 0}, "private_channels": []any{},
	}); err != nil {
		return err
	}
	for _, g := range joined {
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
		if err := gs.dispatchJSON("GUILD_CREATE", guildCreate(g, chans, threads)); err != nil {
			return err
		}
	}
	return nil
}
