package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Delivery keys. A command, action or submission is keyed by its trigger_id
// (unique per user interaction, the same in a redelivery over either
// transport); an event by its event_id.
func interactionKey(trigger string) string { return "slack:t:" + trigger }
func eventKey(eventID string) string       { return "slack:e:" + eventID }
func signatureKey(sig string) string       { return "slack:sig:" + sig }

// seen asks the deduper whether key was processed. A deduper failure is
// logged and treated as unseen: losing a redelivery is worse than doing it twice.
func (a *Adapter) seen(ctx context.Context, key string) bool {
	if key == "" {
		return false
	}
	dup, err := a.cfg.Deduper.Seen(ctx, key)
	if err != nil {
		a.log.Warn("deduplication unavailable; processing the delivery", "err", err)
		return false
	}
	return dup
}

// record notes key in the background (first deliveries of commands and
// interactions: their acknowledgement should not wait on the database).
func (a *Adapter) record(key string) {
	if key == "" {
		return
	}
	a.background(func(ctx context.Context) { _ = a.seen(ctx, key) })
}

// commandAck is the body of a slash command's acknowledgement (Socket Mode
// ack payload, or the HTTP response).
type commandAck struct {
	ResponseType string        `json:"response_type,omitempty"`
	Text         string        `json:"text,omitempty"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
}

func ackMessage(m bot.Message, private bool) *commandAck {
	blocks, text := RenderBlocks(m)
	rt := slack.ResponseTypeInChannel
	if private {
		rt = slack.ResponseTypeEphemeral
	}
	return &commandAck{ResponseType: rt, Text: text, Blocks: blocks}
}

// maxAckBytes is Slack's limit on a Socket Mode response; bigger answers go
// through the response URL.
const maxAckBytes = 20*1024 - 512

// handleCommand turns a slash command into a bot.Command and returns the
// acknowledgement payload (nil for an empty ack). retry says this is a
// redelivery that may have been processed already.
func (a *Adapter) handleCommand(ctx context.Context, transport string, sc slack.SlashCommand, retry bool) any {
	key := interactionKey(sc.TriggerID)
	if sc.TriggerID == "" {
		key = ""
	}
	if retry && a.seen(ctx, key) {
		a.metrics.in(transport, "command", "duplicate")
		return nil
	}
	a.triggers.put(sc.TriggerID, sc.ChannelID)
	name, args, text := ParseCommandText(sc.Text)
	resp := &responder{a: a, url: sc.ResponseURL, channel: sc.ChannelID, user: sc.UserID}
	cmd := bot.Command{
		User:     bot.User{Platform: bot.Slack, Workspace: sc.TeamID, ID: sc.UserID},
		Channel:  sc.ChannelID,
		Name:     name,
		Args:     args,
		Text:     text,
		Key:      key,
		Trigger:  sc.TriggerID,
		Respond:  resp,
		Received: time.Now(),
	}
	ack, late := a.callHandler(func() bot.Ack { return a.handler.HandleCommand(ctx, cmd) })
	if !retry {
		a.record(key)
	}
	a.metrics.in(transport, "command", "handled")
	if late != nil {
		a.background(func(ctx context.Context) { a.finishLate(ctx, late, sc.TriggerID, resp) })
		return nil
	}
	return a.deliverAck(ack, sc.TriggerID, resp)
}

// callHandler runs f and waits up to AckTimeout. When f is slower, it
// returns a channel that will carry f's Ack.
func (a *Adapter) callHandler(f func() bot.Ack) (bot.Ack, <-chan bot.Ack) {
	ch := make(chan bot.Ack, 1)
	go func() { ch <- f() }()
	t := time.NewTimer(a.cfg.AckTimeout)
	defer t.Stop()
	select {
	case ack := <-ch:
		return ack, nil
	case <-t.C:
		a.log.Warn("handler slower than the acknowledgement deadline; answering through the response URL")
		return bot.Ack{}, ch
	}
}

func (a *Adapter) finishLate(ctx context.Context, late <-chan bot.Ack, trigger string, resp *responder) {
	select {
	case ack := <-late:
		if ack.Form != nil {
			a.openForm(ctx, trigger, *ack.Form, resp)
		}
		if ack.Message != nil {
			if err := resp.Respond(ctx, *ack.Message, ack.Private); err != nil {
				a.log.Warn("late answer not delivered", "err", err)
			}
		}
	case <-ctx.Done():
	}
}

// deliverAck opens an Ack's form (views.open, at once) and returns its
// message as a command acknowledgement payload when it fits.
func (a *Adapter) deliverAck(ack bot.Ack, trigger string, resp *responder) any {
	if ack.Form != nil {
		f := *ack.Form
		a.background(func(ctx context.Context) { a.openForm(ctx, trigger, f, resp) })
	}
	if ack.Message == nil {
		return nil
	}
	payload := ackMessage(*ack.Message, ack.Private)
	if b, err := json.Marshal(payload); err != nil || len(b) > maxAckBytes {
		m, private := *ack.Message, ack.Private
		a.background(func(ctx context.Context) {
			if err := resp.Respond(ctx, m, private); err != nil {
				a.log.Warn("answer not delivered", "err", err)
			}
		})
		return nil
	}
	return payload
}

func (a *Adapter) openForm(ctx context.Context, trigger string, f bot.Form, resp *responder) {
	if err := a.OpenForm(ctx, trigger, f); err != nil {
		a.log.Warn("form not opened", "form", f.ID, "err", err)
		_ = resp.Respond(ctx, bot.Message{Text: []bot.Line{{bot.T("The form could not open in time. Please try again.")}}}, true)
	}
}

// handleInteraction handles a block_actions or view_submission payload and
// returns the acknowledgement payload (nil for an empty ack).
func (a *Adapter) handleInteraction(ctx context.Context, transport string, cb slack.InteractionCallback, retry bool) any {
	key := interactionKey(cb.TriggerID)
	if cb.TriggerID == "" {
		key = ""
	}
	kind := "action"
	if cb.Type == slack.InteractionTypeViewSubmission {
		kind = "submit"
	}
	if retry && a.seen(ctx, key) {
		a.metrics.in(transport, kind, "duplicate")
		return nil
	}
	channel := cmpOr(cb.Channel.ID, cb.Container.ChannelID)
	user := bot.User{Platform: bot.Slack, Workspace: cb.Team.ID, ID: cb.User.ID}
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 {
			a.metrics.in(transport, kind, "ignored")
			return nil
		}
		if channel != "" {
			a.triggers.put(cb.TriggerID, channel)
		}
		act := cb.ActionCallback.BlockActions[0]
		resp := &responder{a: a, url: cb.ResponseURL, channel: channel, user: cb.User.ID, thread: cb.Container.ThreadTs}
		msgTS := cmpOr(cb.Container.MessageTs, cb.Message.Timestamp)
		action := bot.Action{
			User:    user,
			Action:  actionOf(act.ActionID),
			Value:   act.Value,
			Message: bot.Ref{Platform: bot.Slack, Workspace: cb.Team.ID, Channel: channel, Message: msgTS},
			Key:     key,
			Trigger: cb.TriggerID,
			Respond: resp,
		}
		ack, late := a.callHandler(func() bot.Ack { return a.handler.HandleAction(ctx, action) })
		if !retry {
			a.record(key)
		}
		a.metrics.in(transport, kind, "handled")
		if late != nil {
			a.background(func(ctx context.Context) { a.finishLate(ctx, late, cb.TriggerID, resp) })
			return nil
		}
		if ack.Form != nil {
			f := *ack.Form
			a.background(func(ctx context.Context) { a.openForm(ctx, cb.TriggerID, f, resp) })
		}
		if ack.Message != nil {
			m, private := *ack.Message, ack.Private
			a.background(func(ctx context.Context) {
				if err := resp.Respond(ctx, m, private); err != nil {
					a.log.Warn("answer to a button not delivered", "err", err)
				}
			})
		}
		return nil
	case slack.InteractionTypeViewSubmission:
		var meta formMeta
		if cb.View.PrivateMetadata != "" {
			if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil {
				meta.State = cb.View.PrivateMetadata
			}
		}
		values := map[string]string{}
		if cb.View.State != nil {
			for blockID, actions := range cb.View.State.Values {
				for actionID, v := range actions {
					id := blockID
					if len(actions) > 1 {
						id = actionID
					}
					values[id] = strings.TrimSpace(cmpOr(v.Value, v.SelectedOption.Value))
				}
			}
		}
		channel = cmpOr(meta.Channel, channel)
		url := ""
		if len(cb.ResponseURLs) > 0 {
			url = cb.ResponseURLs[0].ResponseURL
		}
		sub := bot.Submission{
			User:    user,
			FormID:  cb.View.CallbackID,
			State:   meta.State,
			Values:  values,
			Channel: channel,
			Key:     key,
			Respond: &responder{a: a, url: url, channel: channel, user: cb.User.ID},
		}
		ch := make(chan bot.SubmitAck, 1)
		go func() { ch <- a.handler.HandleSubmit(ctx, sub) }()
		var sack bot.SubmitAck
		select {
		case sack = <-ch:
		case <-time.After(a.cfg.AckTimeout):
			a.log.Warn("form handler slower than the acknowledgement deadline; closing the form")
		}
		if !retry {
			a.record(key)
		}
		a.metrics.in(transport, kind, "handled")
		if len(sack.Errors) > 0 {
			return slack.NewErrorsViewSubmissionResponse(sack.Errors)
		}
		return nil
	default:
		a.metrics.in(transport, kind, "ignored")
		return nil
	}
}

// outerEvent is an Events API callback, decoded by us (not slack-go) so that
// an inner event slack-go does not know cannot make us drop a delivery.
type outerEvent struct {
	Type      string          `json:"type"`
	Challenge string          `json:"challenge"`
	TeamID    string          `json:"team_id"`
	EventID   string          `json:"event_id"`
	Event     json.RawMessage `json:"event"`
}

// messageEvent is the part of a message event the bot needs
// (https://docs.slack.dev/reference/events/message).
type messageEvent struct {
	Type        string `json:"type"`
	SubType     string `json:"subtype"`
	Channel     string `json:"channel"`
	ChannelType string `json:"channel_type"`
	User        string `json:"user"`
	BotID       string `json:"bot_id"`
	Team        string `json:"team"`
	Text        string `json:"text"`
	TS          string `json:"ts"`
	ThreadTS    string `json:"thread_ts"`
}

// handleEvent processes an Events API callback (already acknowledged).
func (a *Adapter) handleEvent(ctx context.Context, transport string, raw []byte) {
	var oe outerEvent
	if err := json.Unmarshal(raw, &oe); err != nil {
		a.metrics.in(transport, "event", "bad")
		a.log.Warn("undecodable event", "err", err)
		return
	}
	if oe.Type != "event_callback" {
		a.metrics.in(transport, "event", "ignored")
		return
	}
	var me messageEvent
	if err := json.Unmarshal(oe.Event, &me); err != nil || me.Type != "message" {
		a.metrics.in(transport, "event", "ignored")
		return
	}
	reply, ok := a.reply(ctx, oe, me)
	if !ok {
		a.metrics.in(transport, "event", "ignored")
		return
	}
	if a.seen(ctx, reply.Key) {
		a.metrics.in(transport, "event", "duplicate")
		return
	}
	a.metrics.in(transport, "event", "handled")
	a.handler.HandleReply(ctx, reply)
}

// reply turns a message event into a thread reply, or says to ignore it: not
// in a thread, not from a channel or private channel, from a bot (ours or
// another), or an edit or deletion.
func (a *Adapter) reply(ctx context.Context, oe outerEvent, me messageEvent) (bot.Reply, bool) {
	switch me.SubType {
	case "", "thread_broadcast", "file_share":
	default:
		return bot.Reply{}, false // bot_message, message_changed, message_deleted, channel_join, ...
	}
	switch me.ChannelType {
	case "channel", "group", "":
	default:
		return bot.Reply{}, false
	}
	if me.ThreadTS == "" || me.ThreadTS == me.TS || me.User == "" || me.BotID != "" {
		return bot.Reply{}, false
	}
	if own, err := a.identity(ctx); err == nil && me.User == own {
		return bot.Reply{}, false
	}
	team := cmpOr(oe.TeamID, me.Team)
	return bot.Reply{
		Parent:  bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: me.ThreadTS},
		Message: bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: me.TS},
		Author:  bot.User{Platform: bot.Slack, Workspace: team, ID: me.User},
		Text:    ReadableText(me.Text),
		Key:     eventKey(oe.EventID),
	}, true
}

// ReadableText decodes message text as Slack sends it into what a person
// reads: entities decoded, <@U123|name> as @name, links as their URL.
func ReadableText(raw string) string {
	return strings.Join(joinWords(tokens(raw)), "")
}

// responder answers after the acknowledgement: through the response URL
// when there is one, otherwise with chat.postEphemeral / chat.postMessage.
type responder struct {
	a       *Adapter
	url     string
	channel string
	user    string
	thread  string
}

// Respond implements bot.Responder.
func (r *responder) Respond(ctx context.Context, m bot.Message, private bool) error {
	if r.url != "" {
		err := r.viaURL(ctx, m, private)
		if err == nil {
			return nil
		}
		r.a.log.Info("response URL failed; posting through the Web API", "err", err)
	}
	dest := bot.Dest{Platform: bot.Slack, Channel: r.channel}
	if r.thread != "" {
		dest.Thread = &bot.Ref{Platform: bot.Slack, Channel: r.channel, Message: r.thread}
	}
	if private {
		return r.a.PostPrivate(ctx, dest, r.user, m)
	}
	_, err := r.a.Post(ctx, dest, m)
	return err
}

func (r *responder) viaURL(ctx context.Context, m bot.Message, private bool) error {
	rt := slack.ResponseTypeInChannel
	if private {
		rt = slack.ResponseTypeEphemeral
	}
	opts := append(msgOptions(m), slack.MsgOptionResponseURL(r.url, rt))
	ctx, cancel := r.a.callCtx(ctx)
	defer cancel()
	_, _, err := r.a.api.PostMessageContext(ctx, "", opts...)
	r.a.metrics.call("response_url", err)
	if err != nil {
		return fmt.Errorf("answer through the response URL: %w", classify("response_url", err))
	}
	return nil
}
