package discordfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Interaction is one interaction the fake sent (gateway) or was told about
// (HTTP interactions), and how it was answered.
type Interaction struct {
	ID        string
	Token     string
	Type      int
	ChannelID string
	GuildID   string
	// FromMessage is set for components and for modals opened by one.
	FromMessage bool
	// Payload is the JSON dispatched.
	Payload json.RawMessage
	// Dispatched is when INTERACTION_CREATE was written to the gateway.
	Dispatched time.Time
	// Created is when the interaction happened: its token answers for
	// TokenLifetime from then.
	Created time.Time

	done      chan Callback
	responded bool
	overHTTP  bool
	original  string // message id of the original response
	Followups []string
}

// Callback is an interaction's initial response as the fake received it.
type Callback struct {
	Type int
	Data json.RawMessage
	At   time.Time
	// Latency is from dispatch to the callback's arrival.
	Latency time.Duration
}

// TokenLifetime is how long an interaction token answers: "Interaction
// tokens are valid for 15 minutes", after which Discord answers 401 with
// 50027 Invalid Webhook Token.
// https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages
const TokenLifetime = 15 * time.Minute

// Interaction types. https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-interaction-type
const (
	TypePing         = 1
	TypeCommand      = 2
	TypeComponent    = 3
	TypeAutocomplete = 4
	TypeModal        = 5
)

// Autocomplete limits. https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-autocomplete
const (
	MaxChoices      = 25
	MaxChoiceName   = 100
	MaxChoiceString = 100
)

// Wait returns the interaction's callback, or an error after timeout.
func (in *Interaction) Wait(timeout time.Duration) (Callback, error) {
	select {
	case c := <-in.done:
		in.done <- c
		return c, nil
	case <-time.After(timeout):
		return Callback{}, fmt.Errorf("interaction %s: no callback within %s", in.ID, timeout)
	}
}

// member builds an interaction's member object.
// Its permissions are the member's in channel, computed as Discord does.
func (s *Server) member(userID, channel string) map[string]any {
	s.mu.Lock()
	u, ok := s.users[userID]
	roles := append([]string{}, s.memberRoles[userID]...)
	perms := s.permissionsIn(userID, channel)
	s.mu.Unlock()
	if !ok {
		u = User{ID: userID, Username: "user" + userID}
	}
	return map[string]any{"user": u, "nick": nilIfEmpty(u.Nick), "roles": roles, "permissions": strconv.FormatInt(perms, 10),
		"joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false}
}

// permissionsIn computes user's permissions in channel (a thread: its
// parent's) as Discord documents it: the guild's owner has all; else
// @everyone's (EveryonePermissions, or the guild's role of its id) and
// the member's roles', Administrator meaning all; then the channel's
// overwrites: @everyone's, the member's roles' together, the member's own,
// each denying then allowing. s.mu is held.
// https://discord.com/developers/docs/topics/permissions#permission-overwrites
func (s *Server) permissionsIn(user, channel string) int64 {
	const all, admin = int64(1)<<50 - 1, int64(1) << 3
	c := s.channels[channel]
	if p, ok := s.channels[c.ParentID]; ok && c.ParentID != "" {
		c = p
	}
	g := c.GuildID
	if user == GuildOwnerID {
		return all
	}
	bits := func(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
	perms := bits(EveryonePermissions)
	for _, r := range s.roles[g] {
		if r.ID == g || slices.Contains(s.memberRoles[user], r.ID) {
			perms |= bits(r.Permissions)
		}
	}
	if perms&admin != 0 {
		return all
	}
	var roleDeny, roleAllow int64
	for _, o := range c.PermissionOverwrites {
		switch {
		case o.Type == 0 && o.ID == g:
			perms = perms&^bits(o.Deny) | bits(o.Allow)
		case o.Type == 0 && slices.Contains(s.memberRoles[user], o.ID):
			roleDeny, roleAllow = roleDeny|bits(o.Deny), roleAllow|bits(o.Allow)
		}
	}
	perms = perms&^roleDeny | roleAllow
	for _, o := range c.PermissionOverwrites {
		if o.Type == 1 && o.ID == user {
			perms = perms&^bits(o.Deny) | bits(o.Allow)
		}
	}
	return perms
}

// CommandPayload builds a /command interaction with one subcommand.
func (s *Server) CommandPayload(channelID, userID, command, sub string, options map[string]any) map[string]any {
	opts := []map[string]any{}
	for k, v := range options {
		t := 3
		switch v.(type) {
		case bool:
			t = 5
		case int, float64:
			t = 4
		}
		opts = append(opts, map[string]any{"name": k, "type": t, "value": v})
	}
	data := map[string]any{"id": "1200000000000000001", "name": command, "type": 1}
	if sub != "" {
		data["options"] = s.nest(command, sub, opts)
	} else {
		data["options"] = opts
	}
	return s.basePayload(TypeCommand, channelID, userID, data, nil)
}

// nest wraps a subcommand's options as Discord sends them: in the
// subcommand, and in its group when the registered command files the
// subcommand in one. sub may name the group itself ("case take").
func (s *Server) nest(command, sub string, opts any) []any {
	inner := func(name string) map[string]any { return map[string]any{"name": name, "type": 1, "options": opts} }
	if g, name, ok := strings.Cut(sub, " "); ok {
		return []any{map[string]any{"name": g, "type": 2, "options": []any{inner(name)}}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cmds := range s.commands {
		for _, c := range cmds {
			if c.Name != command {
				continue
			}
			for _, o := range c.Options {
				if o.Type != 2 {
					continue
				}
				for _, so := range o.Options {
					if so.Name == sub {
						return []any{map[string]any{"name": o.Name, "type": 2, "options": []any{inner(sub)}}}
					}
				}
			}
		}
	}
	return []any{inner(sub)}
}

// AutocompletePayload builds an autocomplete request: the user is typing
// typed into option of /command sub.
func (s *Server) AutocompletePayload(channelID, userID, command, sub, option, typed string) map[string]any {
	opt := map[string]any{"name": option, "type": 3, "value": typed, "focused": true}
	data := map[string]any{"id": "1200000000000000001", "name": command, "type": 1,
		"options": s.nest(command, sub, []any{opt})}
	return s.basePayload(TypeAutocomplete, channelID, userID, data, nil)
}

// ComponentPayload builds a button press on a stored message.
func (s *Server) ComponentPayload(m Message, userID, customID string) map[string]any {
	return s.basePayload(TypeComponent, m.ChannelID, userID, map[string]any{"custom_id": customID, "component_type": 2}, &m)
}

// ModalPayload builds a modal submission; m is the message whose button
// opened the modal, or nil.
func (s *Server) ModalPayload(channelID, userID, customID string, values map[string]string, m *Message) map[string]any {
	rows := []any{}
	for k, v := range values {
		rows = append(rows, map[string]any{"type": 1, "components": []any{map[string]any{"type": 4, "custom_id": k, "value": v}}})
	}
	return s.basePayload(TypeModal, channelID, userID, map[string]any{"custom_id": customID, "components": rows}, m)
}

func (s *Server) basePayload(typ int, channelID, userID string, data map[string]any, m *Message) map[string]any {
	c, _ := s.Channel(channelID)
	p := map[string]any{
		"type": typ, "data": data, "channel_id": channelID, "application_id": s.opts.AppID,
		"version": 1, "locale": "en-US", "app_permissions": "442368", "channel": c,
	}
	// In a server, the member; in a direct message, the user. The app is
	// installed to the server (GUILD_INSTALL's value: the guild, "0" in a
	// direct message with the bot).
	if c.GuildID != "" {
		p["guild_id"], p["member"], p["context"] = c.GuildID, s.member(userID, channelID), 0
		p["authorizing_integration_owners"] = map[string]string{"0": c.GuildID}
	} else {
		p["user"], p["context"] = s.member(userID, channelID)["user"], 1
		p["authorizing_integration_owners"] = map[string]string{"0": "0"}
	}
	if m != nil {
		p["message"] = m
	}
	return p
}

// register records an interaction payload, filling id and token.
func (s *Server) register(p map[string]any) (*Interaction, []byte, error) {
	s.mu.Lock()
	if _, ok := p["id"]; !ok {
		p["id"] = s.nextID()
	}
	if _, ok := p["token"]; !ok {
		p["token"] = "itoken-" + s.nextID()
	}
	s.mu.Unlock()
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	in, err := s.registerRaw(raw)
	return in, raw, err
}

func (s *Server) registerRaw(raw []byte) (*Interaction, error) {
	var h struct {
		ID        string          `json:"id"`
		Token     string          `json:"token"`
		Type      int             `json:"type"`
		ChannelID string          `json:"channel_id"`
		GuildID   string          `json:"guild_id"`
		Message   json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.ID == "" || h.Token == "" {
		return nil, fmt.Errorf("interaction needs an id and a token: %v", err)
	}
	in := &Interaction{ID: h.ID, Token: h.Token, Type: h.Type, ChannelID: h.ChannelID, GuildID: h.GuildID,
		FromMessage: len(h.Message) > 0 && string(h.Message) != "null", Payload: raw, done: make(chan Callback, 1), Created: s.now()}
	s.mu.Lock()
	s.interactions[in.ID] = in
	s.byToken[in.Token] = in
	s.mu.Unlock()
	return in, nil
}

// Interact dispatches INTERACTION_CREATE with payload p (see CommandPayload
// and friends) to the gateway sessions.
func (s *Server) Interact(p map[string]any) (*Interaction, error) {
	in, raw, err := s.register(p)
	if err != nil {
		return nil, err
	}
	return in, s.dispatchInteraction(in, raw)
}

// InteractRaw dispatches a verbatim interaction payload (such as the shared
// samples) to the gateway sessions.
func (s *Server) InteractRaw(raw []byte) (*Interaction, error) {
	in, err := s.registerRaw(raw)
	if err != nil {
		return nil, err
	}
	return in, s.dispatchInteraction(in, raw)
}

func (s *Server) dispatchInteraction(in *Interaction, raw []byte) error {
	s.mu.Lock()
	in.Dispatched = s.now()
	s.mu.Unlock()
	if n := s.Dispatch("INTERACTION_CREATE", json.RawMessage(raw)); n == 0 {
		return errors.New("no gateway session to dispatch to")
	}
	return nil
}

// Prepare registers an interaction delivered over HTTP (signed by the test)
// and returns its raw JSON.
func (s *Server) Prepare(p map[string]any) (*Interaction, []byte, error) { return s.register(p) }

// PrepareRaw registers a verbatim interaction delivered over HTTP.
func (s *Server) PrepareRaw(raw []byte) (*Interaction, error) { return s.registerRaw(raw) }

// AnsweredOverHTTP records the HTTP response an adapter gave to an
// interaction delivered over HTTP, validating it as a callback.
func (s *Server) AnsweredOverHTTP(in *Interaction, resp []byte) error {
	status, err := s.acceptCallback(in, resp, true)
	if err != nil {
		return fmt.Errorf("HTTP %d: %w", status, err)
	}
	return nil
}

// Interaction returns a known interaction by id.
func (s *Server) Interaction(id string) (*Interaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.interactions[id]
	return in, ok
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	in, ok := s.interactions[r.PathValue("id")]
	s.mu.Unlock()
	if !ok || in.Token != r.PathValue("token") {
		writeErr(w, 404, 10062, "Unknown interaction")
		return
	}
	status, err := s.acceptCallback(in, body, false)
	if err != nil {
		// Errors that carry Discord's own code ("40060: ...") answer with it;
		// the rest are form-body errors (50035).
		code, msg := 50035, err.Error()
		if c, rest, ok := strings.Cut(msg, ": "); ok {
			if n, e := strconv.Atoi(c); e == nil {
				code, msg = n, rest
			}
		}
		writeErr(w, status, code, msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// acceptCallback validates and records an initial response.
func (s *Server) acceptCallback(in *Interaction, body []byte, overHTTP bool) (int, error) {
	now := s.now()
	var cb struct {
		Type int             `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &cb); err != nil {
		s.violate("interaction callback", []string{"not JSON: " + err.Error()})
		return 400, err
	}
	s.mu.Lock()
	if in.responded {
		s.mu.Unlock()
		return 400, errors.New("40060: Interaction has already been acknowledged")
	}
	if !overHTTP && !in.Dispatched.IsZero() && now.Sub(in.Dispatched) > s.opts.InteractionDeadline {
		s.mu.Unlock()
		s.violate("interaction callback", []string{fmt.Sprintf("answered after %s, Discord allows %s", now.Sub(in.Dispatched), s.opts.InteractionDeadline)})
		return 404, errors.New("10062: Unknown interaction")
	}
	s.mu.Unlock()
	where := fmt.Sprintf("interaction %s callback type %d", in.ID, cb.Type)
	var v []string
	// An autocomplete takes only its choices (8), a PING only PONG (1).
	switch {
	case in.Type == TypeAutocomplete && cb.Type != 8:
		v = append(v, "an autocomplete interaction takes only APPLICATION_COMMAND_AUTOCOMPLETE_RESULT (8)")
	case in.Type == TypePing && cb.Type != 1:
		v = append(v, "a PING takes only PONG (1)")
	}
	switch cb.Type {
	case 1:
		if in.Type != TypePing {
			v = append(v, "PONG answers only a PING")
		}
	case 4, 7:
		var b MessageBody
		if err := json.Unmarshal(cb.Data, &b); err != nil {
			v = append(v, "data is not a message")
		} else {
			if p := pings(b); len(p) > 0 {
				s.mu.Lock()
				s.pings = append(s.pings, p...)
				s.mu.Unlock()
			}
			v = append(v, validateMessage(b, cb.Type == 7)...)
			if cb.Type == 7 && !in.FromMessage {
				v = append(v, "UPDATE_MESSAGE needs an interaction on a message")
			}
			if len(v) == 0 && cb.Type == 4 {
				s.mu.Lock()
				m := &Message{ID: s.nextID(), ChannelID: in.ChannelID, GuildID: in.GuildID, Author: s.users[s.opts.BotID],
					Content: deref(b.Content), Embeds: b.Embeds, Components: b.Components, Flags: b.Flags, Type: 20, Interaction: in.ID, Created: now}
				s.store(m)
				in.original = m.ID
				s.mu.Unlock()
			}
		}
	case 5:
		var d struct {
			Flags int `json:"flags"`
		}
		_ = json.Unmarshal(cb.Data, &d)
		if in.Type != TypeCommand && in.Type != TypeComponent && in.Type != TypeModal {
			v = append(v, "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE does not answer this interaction type")
		}
		s.mu.Lock()
		m := &Message{ID: s.nextID(), ChannelID: in.ChannelID, GuildID: in.GuildID, Author: s.users[s.opts.BotID],
			Content: "", Flags: d.Flags | 1<<7, Type: 20, Interaction: in.ID, Created: now}
		s.store(m)
		in.original = m.ID
		s.mu.Unlock()
	case 6:
		if !in.FromMessage {
			v = append(v, "DEFERRED_UPDATE_MESSAGE needs an interaction on a message")
		}
	case 8:
		if in.Type != TypeAutocomplete {
			v = append(v, "autocomplete result answers only autocomplete")
		}
		var d struct {
			Choices []struct {
				Name  string `json:"name"`
				Value any    `json:"value"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(cb.Data, &d); err != nil {
			v = append(v, "data is not a list of choices")
		}
		if len(d.Choices) > MaxChoices {
			v = append(v, fmt.Sprintf("%d choices, at most %d", len(d.Choices), MaxChoices))
		}
		for _, c := range d.Choices {
			if n := utf8.RuneCountInString(c.Name); n < 1 || n > MaxChoiceName {
				v = append(v, fmt.Sprintf("choice name of %d characters, 1 to %d", n, MaxChoiceName))
			}
			if sv, ok := c.Value.(string); ok && utf8.RuneCountInString(sv) > MaxChoiceString {
				v = append(v, fmt.Sprintf("choice value of %d characters, at most %d", utf8.RuneCountInString(sv), MaxChoiceString))
			}
		}
	case 9:
		if in.Type == TypeModal || in.Type == TypePing {
			v = append(v, "a modal cannot answer a modal submit or a PING")
		}
		var m ModalBody
		if err := json.Unmarshal(cb.Data, &m); err != nil {
			v = append(v, "data is not a modal")
		} else {
			v = append(v, validateModal(m)...)
		}
	default:
		v = append(v, fmt.Sprintf("unknown response type %d", cb.Type))
	}
	if len(v) > 0 {
		s.violate(where, v)
		return 400, errors.New("Invalid Form Body")
	}
	s.mu.Lock()
	in.responded, in.overHTTP = true, overHTTP
	lat := time.Duration(0)
	if !in.Dispatched.IsZero() {
		lat = now.Sub(in.Dispatched)
	}
	s.mu.Unlock()
	in.done <- Callback{Type: cb.Type, Data: cb.Data, At: now, Latency: lat}
	return 204, nil
}

// byWebhook finds an answered interaction by its webhook token.
func (s *Server) byWebhook(w http.ResponseWriter, r *http.Request) (*Interaction, bool) {
	if r.PathValue("app") != s.opts.AppID {
		writeErr(w, 404, 10015, "Unknown Webhook")
		return nil, false
	}
	s.mu.Lock()
	in, ok := s.byToken[r.PathValue("token")]
	responded := ok && in.responded
	s.mu.Unlock()
	if !ok {
		writeErr(w, 404, 10015, "Unknown Webhook")
		return nil, false
	}
	if age := s.now().Sub(in.Created); age > TokenLifetime {
		// Not a violation: an answer may well come too late, and the
		// adapter must cope. Discord answers every use of the token so.
		writeErr(w, http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		return nil, false
	}
	if !responded {
		s.violate("webhook", []string{"followup before the interaction was acknowledged"})
		writeErr(w, 404, 10015, "Unknown Webhook")
		return nil, false
	}
	return in, true
}

func (s *Server) followup(w http.ResponseWriter, r *http.Request, body []byte) {
	in, ok := s.byWebhook(w, r)
	if !ok {
		return
	}
	b, atts, _, ok := s.readMessage(w, r, "followup", body, false)
	if !ok {
		return
	}
	s.mu.Lock()
	// Directly after a deferred response (type 5), a followup edits the
	// "thinking" message and its flags are ignored, as Discord does:
	// https://discord.com/developers/docs/interactions/receiving-and-responding#create-followup-message
	if orig, ok := s.messages[in.original]; ok && orig.Flags&(1<<7) != 0 {
		flags := orig.Flags &^ (1 << 7)
		apply(orig, b)
		attach(orig, atts, nil)
		orig.Flags = flags
		in.Followups = append(in.Followups, orig.ID)
		out := *orig
		s.mu.Unlock()
		writeJSON(w, 200, out)
		return
	}
	m := &Message{ID: s.nextID(), ChannelID: in.ChannelID, GuildID: in.GuildID, Author: s.users[s.opts.BotID],
		Content: deref(b.Content), Embeds: b.Embeds, Components: b.Components, Flags: b.Flags, Type: 19, Interaction: in.ID, Created: time.Now(),
		Attachments: atts}
	s.store(m)
	in.Followups = append(in.Followups, m.ID)
	out := *m
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

func (s *Server) webhookMessage(in *Interaction, id string) (*Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "@original" {
		id = in.original
	}
	m, ok := s.messages[id]
	return m, ok && m.Interaction == in.ID
}

func (s *Server) editWebhookMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	in, ok := s.byWebhook(w, r)
	if !ok {
		return
	}
	m, ok := s.webhookMessage(in, r.PathValue("message"))
	if !ok {
		writeErr(w, 404, 10008, "Unknown Message")
		return
	}
	b, atts, listed, ok := s.readMessage(w, r, "edit interaction message", body, true)
	if !ok {
		return
	}
	s.mu.Lock()
	apply(m, b)
	attach(m, atts, listed)
	m.Flags &^= 1 << 7 // no longer loading
	out := *m
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

func (s *Server) deleteWebhookMessage(w http.ResponseWriter, r *http.Request, _ []byte) {
	in, ok := s.byWebhook(w, r)
	if !ok {
		return
	}
	m, ok := s.webhookMessage(in, r.PathValue("message"))
	if !ok {
		writeErr(w, 404, 10008, "Unknown Message")
		return
	}
	s.mu.Lock()
	delete(s.messages, m.ID)
	for i, id := range s.order {
		if id == m.ID {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// OriginalResponse returns the message that answers an interaction (type 4,
// or type 5 once edited).
func (s *Server) OriginalResponse(in *Interaction) (Message, bool) {
	s.mu.Lock()
	id := in.original
	s.mu.Unlock()
	return s.Message(id)
}

// FollowupMessages returns an interaction's followups.
func (s *Server) FollowupMessages(in *Interaction) []Message {
	s.mu.Lock()
	ids := append([]string(nil), in.Followups...)
	s.mu.Unlock()
	var out []Message
	for _, id := range ids {
		if m, ok := s.Message(id); ok {
			out = append(out, m)
		}
	}
	return out
}
