package discord

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// interactionResponse is the answer to an interaction: the HTTP response
// body (HTTP interactions) or the callback body (gateway).
// https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object
type interactionResponse struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data any                               `json:"data,omitempty"`
}

// deferredData marks a deferred answer ephemeral.
type deferredData struct {
	Flags int `json:"flags"`
}

// interaction is one parsed interaction and how it will be answered.
type interaction struct {
	i       discordgo.Interaction
	channel *channelInfo // the partial channel Discord sends with it
	// values are a modal submission's, by custom_id (splitModal).
	values map[string]string
	// typed is the text typed into a modal's text inputs, in order: told
	// back with the form's errors, since Discord closes a modal on submit.
	typed []string
}

// parseInteraction reads an interaction payload the same way on both paths.
func parseInteraction(raw []byte) (*interaction, error) {
	var in interaction
	raw, in.values, in.typed = splitModal(raw)
	if err := json.Unmarshal(raw, &in.i); err != nil {
		return nil, fmt.Errorf("decode interaction: %w", err)
	}
	var extra struct {
		Channel *channelInfo `json:"channel"`
	}
	if err := json.Unmarshal(raw, &extra); err == nil {
		in.channel = extra.Channel
	}
	return &in, nil
}

// answer decides the response to an interaction within AckTimeout, calling
// the bot's handler. The responder it returns serves later answers; call
// sent() on it once the response has reached Discord.
func (a *Adapter) answer(ctx context.Context, in *interaction, source string) (interactionResponse, *responder) {
	i := &in.i
	r := &responder{a: a, appID: cmp.Or(i.AppID, a.cfg.AppID), token: i.Token, acked: make(chan struct{}),
		defersOriginal: i.Type == discordgo.InteractionApplicationCommand || (i.Type == discordgo.InteractionModalSubmit && i.Message == nil)}
	ctx = context.WithoutCancel(ctx)
	kind, resp := "unknown", a.ephemeral("This interaction is not supported.")
	if !serverInstalled(i) {
		resp := a.ephemeral(msgUserInstall)
		if i.Type == discordgo.InteractionApplicationCommandAutocomplete {
			// Autocomplete takes choices only: none.
			resp = interactionResponse{Type: discordgo.InteractionApplicationCommandAutocompleteResult, Data: map[string]any{"choices": []any{}}}
		}
		a.m.interactions.WithLabelValues(source, "user_install", strconv.Itoa(int(resp.Type))).Inc()
		return resp, r
	}
	switch i.Type {
	case discordgo.InteractionApplicationCommand:
		kind = "command"
		data, ok := i.Data.(discordgo.ApplicationCommandInteractionData)
		if !ok || data.Name != CommandName {
			resp = a.ephemeral("Unknown command: use /" + CommandName + ".")
			break
		}
		c := a.command(ctx, in, data, r)
		resp = a.within(ctx, r, false, "command", func() bot.Ack { return a.h.HandleCommand(ctx, c) })
	case discordgo.InteractionMessageComponent:
		kind = "component"
		act, ok := a.action(ctx, in, r)
		if !ok || act.Action == "" {
			resp = a.ephemeral("This button is not supported.")
			break
		}
		resp = a.within(ctx, r, true, "button", func() bot.Ack { return a.h.HandleAction(ctx, act) })
	case discordgo.InteractionModalSubmit:
		kind = "modal"
		sub, ok := a.submission(ctx, in, r)
		if !ok {
			resp = a.ephemeral("This form is not supported.")
			break
		}
		resp = a.submitWithin(ctx, r, i.Message != nil, in.typed, func() bot.SubmitAck { return a.h.HandleSubmit(ctx, sub) })
	case discordgo.InteractionApplicationCommandAutocomplete:
		kind = "autocomplete"
		resp = interactionResponse{Type: discordgo.InteractionApplicationCommandAutocompleteResult, Data: map[string]any{"choices": a.complete(ctx, in)}}
	}
	a.m.interactions.WithLabelValues(source, kind, strconv.Itoa(int(resp.Type))).Inc()
	return resp, r
}

// msgUserInstall answers an interaction of the app installed to a user
// rather than to the server.
const msgUserInstall = "threatdesk works where a server installed it, for that server's org: use /experts from the server's own install (ask its admins), not from apps added to your account."

// serverInstalled reports whether i comes through the app's install in
// its server (authorizing_integration_owners names the guild under
// GUILD_INSTALL; "0" in a direct message with the bot). One through a
// member's own install (USER_INSTALL only) would act for the server's org
// past what the server allows /experts, and after it removed the app.
// A payload without the field (older API versions) counts as the
// server's.
func serverInstalled(i *discordgo.Interaction) bool {
	owners := i.AuthorizingIntegrationOwners
	if owners == nil {
		return true
	}
	g, ok := owners[discordgo.ApplicationIntegrationGuildInstall]
	return ok && (i.GuildID == "" || g == i.GuildID)
}

// ephemeral is an immediate private note.
func (a *Adapter) ephemeral(text string) interactionResponse {
	p := render(bot.Message{Text: []bot.Line{{bot.T(text)}}})
	p.Flags = flagEphemeral
	return interactionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource, Data: p}
}

// within hands the interaction to the bot (call, through toBot); if its
// Ack is late the interaction is deferred and the Ack's message, when it
// comes, is sent as a followup. A panic in call is answered with msgBroke.
func (a *Adapter) within(ctx context.Context, r *responder, component bool, what string, call func() bot.Ack) interactionResponse {
	ch := make(chan bot.Ack, 1)
	if !a.life.GoWork(what, func(context.Context) error {
		var ack bot.Ack
		if err := a.toBot(what, func() error { ack = call(); return nil }); err != nil {
			ack = bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T(msgBroke)}}}, Private: true}
		}
		ch <- ack
		return nil
	}) {
		return a.ephemeral(msgStopping)
	}
	t := time.NewTimer(a.cfg.AckTimeout)
	defer t.Stop()
	select {
	case ack := <-ch:
		return a.ackResponse(r, component, ack)
	case <-t.C:
	}
	a.log.Warn("the bot did not acknowledge in time; deferring the answer", "after", a.cfg.AckTimeout)
	resp := a.ackResponse(r, component, bot.Ack{Private: true})
	a.life.GoWork("late answer", func(context.Context) error {
		ack := <-ch
		switch {
		case ack.Message != nil:
			_ = r.respondLogged(ctx, *ack.Message, ack.Private)
		case ack.Form != nil:
			_ = r.respondLogged(ctx, bot.Message{Text: []bot.Line{{bot.T("That took too long to open the form; please try again.")}}}, true)
		}
		return nil
	})
	return resp
}

// ackResponse maps the bot's Ack to Discord's response type: a form is a
// modal (9), a message is sent at once (4, ephemeral when private), else the
// answer is deferred: "thinking" for a command (5), a silent deferred update
// for a button (6).
func (a *Adapter) ackResponse(r *responder, component bool, ack bot.Ack) interactionResponse {
	if ack.Form != nil {
		modal, err := renderForm(*ack.Form)
		if err == nil {
			return interactionResponse{Type: discordgo.InteractionResponseModal, Data: modal}
		}
		a.log.Error("form cannot be shown on discord", "form", ack.Form.ID, "err", err)
		return a.ephemeral("This form cannot be shown on Discord.")
	}
	if ack.Message != nil {
		p := render(*ack.Message)
		if ack.Private {
			p.Flags = flagEphemeral
		}
		return interactionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource, Data: p}
	}
	if component {
		return interactionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	r.deferOriginal(ack.Private)
	resp := interactionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}
	if ack.Private {
		resp.Data = deferredData{Flags: flagEphemeral}
	}
	return resp
}

// submitWithin runs a form submission. Discord cannot keep a modal open with
// errors, so errors come back as a private note; otherwise the answer is
// deferred (silently when the modal came from a button).
func (a *Adapter) submitWithin(ctx context.Context, r *responder, fromMessage bool, typed []string, call func() bot.SubmitAck) interactionResponse {
	ch := make(chan bot.SubmitAck, 1)
	if !a.life.GoWork("form submission", func(context.Context) error {
		var ack bot.SubmitAck
		if err := a.toBot("form submission", func() error { ack = call(); return nil }); err != nil {
			ack = bot.SubmitAck{Errors: map[string]string{"": msgBroke}}
		}
		ch <- ack
		return nil
	}) {
		return a.ephemeral(msgStopping)
	}
	t := time.NewTimer(a.cfg.AckTimeout)
	defer t.Stop()
	var ack bot.SubmitAck
	select {
	case ack = <-ch:
	case <-t.C:
		a.life.GoWork("late form errors", func(context.Context) error {
			if late := <-ch; len(late.Errors) > 0 {
				_ = r.respondLogged(ctx, formErrors(late.Errors, typed), true)
			}
			return nil
		})
	}
	if len(ack.Errors) > 0 {
		resp := interactionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource}
		p := render(formErrors(ack.Errors, typed))
		p.Flags = flagEphemeral
		resp.Data = p
		return resp
	}
	if fromMessage {
		return interactionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	r.deferOriginal(true)
	return interactionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource, Data: deferredData{Flags: flagEphemeral}}
}

// formErrors tells a submitted form's errors, and what was typed into it so
// that it is not lost with the closed modal.
func formErrors(errs map[string]string, typed []string) bot.Message {
	m := bot.Message{Text: []bot.Line{{bot.B("Please fix the form and submit it again:")}}}
	for f, e := range errs {
		if f == "" {
			m.Text = append(m.Text, bot.Line{bot.T(e)})
			continue
		}
		m.Text = append(m.Text, bot.Line{bot.T("• "), bot.B(f), bot.T(": " + e)})
	}
	if len(typed) > 0 {
		m.Text = append(m.Text, bot.Line{bot.B("What you wrote, to send it again:")})
		var ts []string
		for _, t := range typed {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		m.Quote = strings.Join(ts, "\n\n")
	}
	return m
}

// user returns who acted.
// The member may be ReadOnly there: member.permissions are Discord's
// computed permissions in the channel (a thread's when inThread), and a
// press needs only View Channel.
func user(i *discordgo.Interaction, inThread bool) bot.User {
	u := i.User
	nick := ""
	readOnly := false
	if i.Member != nil {
		u = i.Member.User
		nick = i.Member.Nick
		need := int64(discordgo.PermissionSendMessages)
		if inThread {
			need = discordgo.PermissionSendMessagesInThreads
		}
		readOnly = i.Member.Permissions != 0 && i.Member.Permissions&need == 0
	}
	if u == nil {
		return bot.User{Platform: bot.Discord, Workspace: i.GuildID, ReadOnly: readOnly}
	}
	return bot.User{Platform: bot.Discord, Workspace: i.GuildID, ID: u.ID, DisplayName: cmp.Or(nick, cmp.Or(u.GlobalName, u.Username)), ReadOnly: readOnly}
}

// where returns the channel an interaction acts in and, inside a thread,
// the thread's anchor: commands act for the parent channel's org.
func (a *Adapter) where(ctx context.Context, in *interaction) (string, *bot.Ref) {
	id := in.i.ChannelID
	c := channelInfo{}
	if in.channel != nil && in.channel.ID != "" {
		c = *in.channel
		a.rememberChannel(c)
	} else if cached, ok := a.cachedChannel(id); ok {
		c = cached
	}
	if c.isThread() && c.ParentID != "" {
		return c.ParentID, &bot.Ref{Platform: bot.Discord, Workspace: in.i.GuildID, Channel: c.ParentID, Message: id}
	}
	return id, nil
}

func (a *Adapter) cachedChannel(id string) (channelInfo, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.channels[id]
	return c, ok
}

func (a *Adapter) command(ctx context.Context, in *interaction, data discordgo.ApplicationCommandInteractionData, r *responder) bot.Command {
	i := &in.i
	ch, thread := a.where(ctx, in)
	c := bot.Command{
		User:     user(i, thread != nil),
		Channel:  ch,
		Thread:   thread,
		Options:  map[string]string{},
		Key:      "discord:" + i.ID,
		Respond:  r,
		Received: a.cfg.Now(),
	}
	verb, first, key, opts := invoked(data.Options)
	c.Name = verb
	c.Args = append(c.Args, first...)
	for _, o := range opts {
		c.Options[o.Name] = optionString(o)
	}
	for _, name := range optionOrder()[key] {
		if v, ok := c.Options[name]; ok && v != "" {
			c.Args = append(c.Args, v)
		}
	}
	c.Text = strings.Join(c.Args, " ")
	return c
}

func (a *Adapter) action(ctx context.Context, in *interaction, r *responder) (bot.Action, bool) {
	i := &in.i
	data, ok := i.Data.(discordgo.MessageComponentInteractionData)
	if !ok {
		return bot.Action{}, false
	}
	act, value := parseCustomID(data.CustomID)
	if value == "" && len(data.Values) > 0 {
		value = strings.Join(data.Values, ",")
	}
	ref := bot.Ref{Platform: bot.Discord, Workspace: i.GuildID, Channel: i.ChannelID}
	if i.Message != nil {
		ref.Channel = cmp.Or(i.Message.ChannelID, i.ChannelID)
		ref.Message = i.Message.ID
	}
	ch, thread := a.where(ctx, in)
	out := bot.Action{User: user(i, thread != nil), Action: act, Value: value, Message: ref, Key: "discord:" + i.ID, Respond: r}
	// A press in a thread acts for the thread's parent channel, as a
	// command there does.
	if thread != nil {
		out.Channel = ch
	}
	return out, true
}

func (a *Adapter) submission(ctx context.Context, in *interaction, r *responder) (bot.Submission, bool) {
	i := &in.i
	data, ok := i.Data.(discordgo.ModalSubmitInteractionData)
	if !ok {
		return bot.Submission{}, false
	}
	form, state, ok := parseFormCustomID(data.CustomID)
	if !ok {
		return bot.Submission{}, false
	}
	ch, thread := a.where(ctx, in)
	s := bot.Submission{User: user(i, thread != nil), FormID: form, State: state, Values: map[string]string{}, Channel: ch, Key: "discord:" + i.ID, Respond: r}
	for k, v := range in.values {
		s.Values[k] = v
	}
	for _, c := range data.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		for _, cc := range row.Components {
			if ti, ok := cc.(*discordgo.TextInput); ok {
				s.Values[ti.CustomID] = ti.Value
			}
		}
	}
	return s, true
}

// responder answers after the acknowledgement through the interaction
// webhook: the first answer fills a deferred "thinking" response, later
// ones are followups.
type responder struct {
	a     *Adapter
	appID string
	token string
	acked chan struct{}
	// defersOriginal: an empty Ack defers this interaction with a
	// "thinking" original response (a command, or a modal not opened from a
	// message) rather than as a silent update (a button).
	defersOriginal bool

	mu       sync.Mutex
	deferred bool
	private  bool
	used     bool
	sentOnce sync.Once
}

var (
	_ bot.Resumable = (*responder)(nil)
	_ bot.Resumer   = (*Adapter)(nil)
)

// responderState is a responder as the bot stores it with its event. The
// token answers the interaction for 15 minutes: the bot keeps it only until
// the event is settled.
type responderState struct {
	App      string `json:"app"`
	Token    string `json:"token"`
	Deferred bool   `json:"deferred"`
}

// ResumeState implements bot.Resumable. The bot stores an event only when
// it acknowledges it empty and private, so the interaction is then deferred
// privately when defersOriginal says it is deferred at all.
func (r *responder) ResumeState() (json.RawMessage, error) {
	return json.Marshal(responderState{App: r.appID, Token: r.token, Deferred: r.defersOriginal})
}

// Resume implements bot.Resumer: it rebuilds, in this process or another
// replica, a responder for an interaction acknowledged earlier.
func (a *Adapter) Resume(state json.RawMessage) (bot.Responder, error) {
	var st responderState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("discord responder state: %w", err)
	}
	if st.App == "" || st.Token == "" {
		return nil, errors.New("discord responder state: no application id or interaction token")
	}
	r := &responder{a: a, appID: st.App, token: st.Token, acked: make(chan struct{}), defersOriginal: st.Deferred,
		deferred: st.Deferred, private: true}
	close(r.acked)
	return r, nil
}

func (r *responder) deferOriginal(private bool) {
	r.mu.Lock()
	r.deferred, r.private = true, private
	r.mu.Unlock()
}

// sent records that the initial response reached Discord.
func (r *responder) sent(ok bool) {
	r.sentOnce.Do(func() {
		close(r.acked)
		r.mu.Lock()
		deferred := r.deferred
		r.mu.Unlock()
		if ok && deferred {
			r.a.life.GoWork("deferred answer watchdog", func(ctx context.Context) error {
				t := time.NewTimer(r.a.cfg.DeferredTimeout)
				defer t.Stop()
				select {
				case <-t.C:
					r.watchdog(ctx)
				case <-r.a.life.Stopping(): // not worth holding Stop up for
				}
				return nil
			})
		}
	})
}

// watchdog replaces a deferred answer the bot never filled.
func (r *responder) watchdog(ctx context.Context) {
	r.mu.Lock()
	if r.used {
		r.mu.Unlock()
		return
	}
	r.used = true
	r.mu.Unlock()
	_, err := r.a.doInteraction(ctx, "edit original response", http.MethodPatch,
		discordgo.EndpointWebhookMessage(r.appID, r.token, "@original"), render(bot.Message{Text: []bot.Line{{bot.T("Done.")}}}))
	if err != nil {
		r.a.log.Debug("could not close a deferred answer", "err", err)
	}
}

func (r *responder) respondLogged(ctx context.Context, m bot.Message, private bool) error {
	err := r.Respond(ctx, m, private)
	if err != nil {
		r.a.log.Warn("interaction followup failed", "err", err)
	}
	return err
}

// Respond implements bot.Responder.
func (r *responder) Respond(ctx context.Context, m bot.Message, private bool) error {
	select {
	case <-r.acked:
	case <-ctx.Done():
		return fmt.Errorf("answer interaction: %w", ctx.Err())
	}
	r.mu.Lock()
	first := r.deferred && !r.used
	samePrivacy := r.private == private
	r.used = true
	r.mu.Unlock()
	p := render(m)
	if first {
		orig := discordgo.EndpointWebhookMessage(r.appID, r.token, "@original")
		if samePrivacy {
			_, err := r.a.doInteraction(ctx, "edit original response", http.MethodPatch, orig, p)
			return err
		}
		// A deferred answer keeps the privacy it was deferred with, and the
		// first followup after a deferral edits it (its flags ignored:
		// https://discord.com/developers/docs/interactions/receiving-and-responding#create-followup-message).
		// So close the "thinking" message with a neutral note first; only
		// then is the followup a message of its own with its own privacy.
		// Should that edit fail, a private answer is not sent at all rather
		// than risk it landing in a public message.
		note := "Done: the answer is in the channel."
		if private {
			note = "Done: you have the answer privately."
		}
		if _, err := r.a.doInteraction(ctx, "close the deferred response", http.MethodPatch, orig, render(bot.Message{Text: []bot.Line{{bot.T(note)}}})); err != nil && private {
			return fmt.Errorf("private answer not sent, the deferred public response could not be closed first: %w", err)
		}
	}
	if private {
		p.Flags = flagEphemeral
	}
	_, err := r.a.doInteraction(ctx, "followup", http.MethodPost, discordgo.EndpointWebhookToken(r.appID, r.token)+"?wait=true", p)
	return err
}

// staleInteraction is how old an interaction from the gateway (by its
// id's time) may be and still be worked. Discord shows "The application
// did not respond" for one not answered within 3 seconds, and a session
// resumed after a dead connection replays those it missed: worked then,
// a case would open that the person was told failed, and they ask again.
// (Two seconds more than Discord's allow for the clocks' difference.)
const staleInteraction = 5 * time.Second

// onGatewayInteraction answers an INTERACTION_CREATE from the gateway by
// POSTing the response to the interaction callback.
func (a *Adapter) onGatewayInteraction(ctx context.Context, raw []byte) {
	start := a.cfg.Now()
	in, err := parseInteraction(raw)
	if err != nil {
		a.log.Warn("bad interaction from the gateway", "err", err)
		return
	}
	if t, err := discordgo.SnowflakeTimestamp(in.i.ID); err == nil && start.Sub(t) > staleInteraction {
		// Discord told the person it failed; they may try again.
		a.m.interactions.WithLabelValues("gateway", "stale", "none").Inc()
		a.log.Warn("interaction too old to answer, dropped (a resumed session replays what it missed)", "interaction", in.i.ID, "age", start.Sub(t).Round(time.Millisecond))
		return
	}
	resp, r := a.answer(ctx, in, "gateway")
	_, err = a.doInteraction(ctx, "interaction callback", http.MethodPost, discordgo.EndpointInteractionResponse(in.i.ID, in.i.Token), resp)
	r.sent(err == nil)
	a.m.ackSeconds.WithLabelValues("gateway").Observe(a.cfg.Now().Sub(start).Seconds())
	if err != nil {
		a.log.Warn("interaction callback failed", "interaction", in.i.ID, "err", err)
	}
}

// maxInteractionBody bounds an HTTP interaction's body.
const maxInteractionBody = 1 << 20

// InteractionsHandler serves POST /discord/interactions: the Ed25519
// signature over timestamp + raw body is checked before anything is parsed
// (401 otherwise), PING gets PONG, and everything else takes the same path
// as the gateway, the answer going back in the HTTP response. It works on
// every replica, leader or not.
func (a *Adapter) InteractionsHandler() http.Handler {
	return http.HandlerFunc(a.serveInteraction)
}

func (a *Adapter) serveInteraction(w http.ResponseWriter, req *http.Request) {
	start := a.cfg.Now()
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if a.pub == nil {
		http.Error(w, "discord HTTP interactions are not enabled: set DISCORD_PUBLIC_KEY", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxInteractionBody))
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	sig, ok := a.verify(req.Header, body)
	if !ok {
		a.m.interactions.WithLabelValues("http", "unsigned", "401").Inc()
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return
	}
	if a.replayed(req.Context(), sig) {
		a.m.interactions.WithLabelValues("http", "replayed", "401").Inc()
		a.log.Info("replayed interaction refused")
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return
	}
	var head struct {
		Type discordgo.InteractionType `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		http.Error(w, "bad interaction JSON", http.StatusBadRequest)
		return
	}
	if head.Type == discordgo.InteractionPing {
		a.m.interactions.WithLabelValues("http", "ping", "1").Inc()
		writeJSON(w, interactionResponse{Type: discordgo.InteractionResponsePong})
		return
	}
	in, err := parseInteraction(body)
	if err != nil {
		http.Error(w, "bad interaction JSON", http.StatusBadRequest)
		return
	}
	resp, r := a.answer(req.Context(), in, "http")
	err = writeJSON(w, resp)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	r.sent(err == nil)
	a.m.ackSeconds.WithLabelValues("http").Observe(a.cfg.Now().Sub(start).Seconds())
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(b)
	return err
}

// verify checks Discord's Ed25519 signature over timestamp + body, and that
// the timestamp is recent (a replay of an old request fails; a replay of a
// recent one is replayed's to catch). It returns the signature's bytes.
func (a *Adapter) verify(h http.Header, body []byte) ([]byte, bool) {
	sig, err := hex.DecodeString(h.Get("X-Signature-Ed25519"))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, false
	}
	ts := h.Get("X-Signature-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, false
	}
	if age := a.cfg.Now().Sub(time.Unix(sec, 0)); age > a.cfg.SignatureMaxAge || age < -a.cfg.SignatureMaxAge {
		return nil, false
	}
	msg := make([]byte, 0, len(ts)+len(body))
	msg = append(append(msg, ts...), body...)
	return sig, ed25519.Verify(a.pub, msg, sig)
}

// ReplayCache remembers signed HTTP interactions so that a replay within
// SignatureMaxAge is refused: Seen records key and reports whether it had
// been recorded before. The bot implements it on its inbound table
// (bot.Bot.Seen), so that a replay is refused on every replica.
type ReplayCache interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// replayed reports whether a verified request's signature was seen before.
// The key is the signature's bytes (Ed25519 signatures have one encoding,
// Go's verifier refuses the others), so the same request spelled otherwise
// is the same key. A cache failure is logged and the request let through:
// the bot still deduplicates the work by interaction id.
//
// The check may take replayWait at most: Discord allows 3 seconds for the
// answer, and AckTimeout is counted after it. One not told in time is
// accepted (the bot keys the work on the interaction's id, so a replay is
// still not done twice).
func (a *Adapter) replayed(ctx context.Context, sig []byte) bool {
	ctx, cancel := context.WithTimeout(ctx, replayWait)
	defer cancel()
	dup, err := a.cfg.Replays.Seen(ctx, "discord:sig:"+hex.EncodeToString(sig))
	if err != nil {
		a.log.Warn("replay cache unavailable or slow; accepting the signed interaction", "err", err)
		return false
	}
	return dup
}

// replayWait bounds the replay check of an HTTP interaction.
const replayWait = 300 * time.Millisecond

// memoryReplays is the default ReplayCache: in memory, for one process.
type memoryReplays struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]time.Time
}

// maxMemoryReplays bounds the in-memory replay cache; past it the expired
// keys are dropped, then the oldest.
const maxMemoryReplays = 100000

func (c *memoryReplays) Seen(_ context.Context, key string) (bool, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.m[key]; ok && now.Sub(at) <= c.ttl {
		return true, nil
	}
	if len(c.m) >= maxMemoryReplays {
		var oldest string
		for k, at := range c.m {
			if now.Sub(at) > c.ttl {
				delete(c.m, k)
			} else if oldest == "" || at.Before(c.m[oldest]) {
				oldest = k
			}
		}
		if len(c.m) >= maxMemoryReplays {
			delete(c.m, oldest)
		}
	}
	c.m[key] = now
	return false, nil
}

// complete suggests case references for the focused option when the bot can
// (bot.Completer), within the interaction's 3 seconds; anything else gets no
// suggestions.
func (a *Adapter) complete(ctx context.Context, in *interaction) []map[string]string {
	out := []map[string]string{}
	c, ok := a.h.(bot.Completer)
	data, isCmd := in.i.Data.(discordgo.ApplicationCommandInteractionData)
	if !ok || !isCmd {
		return out
	}
	_, _, _, opts := invoked(data.Options)
	for _, o := range opts {
		if !o.Focused || o.Name != "case" {
			continue
		}
		ch, thread := a.where(ctx, in)
		for _, choice := range c.CompleteCases(ctx, user(&in.i, thread != nil), ch, optionString(o)) {
			out = append(out, map[string]string{"name": choice.Name, "value": choice.Value})
		}
	}
	return out
}
