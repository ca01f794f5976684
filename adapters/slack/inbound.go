package slack

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// Delivery keys. A command, action or submission is keyed by its trigger_id
// (unique per user interaction, the same in a redelivery over either
// transport); an event by its event_id. The handler stores each event under
// its key, which is what makes a redelivery a no-op.
func interactionKey(trigger string) string { return "slack:t:" + trigger }
func eventKey(eventID string) string       { return "slack:e:" + eventID }
func messageKey(channel, ts string) string { return "slack:m:" + channel + ":" + ts }

// signatureKey is a signed request's replay key: the signature's bytes, not
// the header's text, so that the same signature written another way (hex
// in upper case) is the same key.
func signatureKey(sig []byte) string { return "slack:sig:" + hex.EncodeToString(sig) }

// replayed asks the replay cache whether key was seen. A cache failure is
// logged and treated as unseen: the request is signed and fresh, and the
// handler still deduplicates its work by delivery key.
func (a *Adapter) replayed(ctx context.Context, key string) bool {
	dup, err := a.cfg.Replays.Seen(ctx, key)
	if err != nil {
		a.log.Warn("replay cache unavailable; accepting the signed request", "err", err)
		return false
	}
	return dup
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
// acknowledgement payload (nil for an empty ack). A redelivery reaches the
// handler too, which finds its key stored and acknowledges it empty.
func (a *Adapter) handleCommand(ctx context.Context, transport string, sc slack.SlashCommand) any {
	key := interactionKey(sc.TriggerID)
	if sc.TriggerID == "" {
		key = ""
	}
	a.triggers.put(sc.TriggerID, triggerPlace{channel: sc.ChannelID, team: sc.TeamID})
	name, args, text := ParseCommandText(sc.Text)
	resp := &responder{a: a, url: sc.ResponseURL, channel: sc.ChannelID, user: sc.UserID, team: sc.TeamID}
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
	ack, late := a.callHandler("slash command", func() bot.Ack {
		ws, err := a.commandTeam(ctx, sc)
		if err != nil {
			a.log.Warn("slash command not worked: whose workspace the user is of is unknown", "channel", sc.ChannelID, "err", err)
			return bot.Ack{Message: plainMessage(msgWhoUnknown), Private: true}
		}
		cmd.User.Workspace = ws
		return a.handler.HandleCommand(ctx, cmd)
	})
	a.metrics.in(transport, "command", "handled")
	if late != nil {
		a.background("late answer", func(ctx context.Context) { a.finishLate(ctx, late, sc.TriggerID, resp) })
		return nil
	}
	return a.deliverAck(ack, sc.TriggerID, resp)
}

// callHandler hands an event to the bot (f, through toBot) and waits up to
// AckTimeout. When f is slower, it returns a channel that will carry f's
// Ack. A panic in f is answered with msgBroke.
func (a *Adapter) callHandler(what string, f func() bot.Ack) (bot.Ack, <-chan bot.Ack) {
	ch := make(chan bot.Ack, 1)
	if !a.life.GoWork(what, func(context.Context) error {
		var ack bot.Ack
		if err := a.toBot(what, func() error { ack = f(); return nil }); err != nil {
			ack = bot.Ack{Message: plainMessage(msgBroke), Private: true}
		}
		ch <- ack
		return nil
	}) {
		return bot.Ack{Message: plainMessage(msgStopping), Private: true}, nil
	}
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
		a.background("open form", func(ctx context.Context) { a.openForm(ctx, trigger, f, resp) })
	}
	if ack.Message == nil {
		return nil
	}
	payload := ackMessage(*ack.Message, ack.Private)
	if b, err := json.Marshal(payload); err != nil || len(b) > maxAckBytes {
		m, private := *ack.Message, ack.Private
		a.background("answer", func(ctx context.Context) {
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
func (a *Adapter) handleInteraction(ctx context.Context, transport string, cb slack.InteractionCallback) any {
	key := interactionKey(cb.TriggerID)
	switch {
	case cb.TriggerID != "":
	case cb.Type == slack.InteractionTypeViewSubmission && cb.View.ID != "":
		// A submission without a trigger_id is still one submission of
		// one version of a view: a redelivery carries the same.
		key = "slack:v:" + cb.View.ID + ":" + cb.View.Hash
	default:
		key = ""
	}
	kind := "action"
	if cb.Type == slack.InteractionTypeViewSubmission {
		kind = "submit"
	}
	channel := cmp.Or(cb.Channel.ID, cb.Container.ChannelID)
	// Whose the presser is (presserTeam) is told inside the answer's
	// time, with the handler.
	user := bot.User{Platform: bot.Slack, ID: cb.User.ID}
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 {
			a.metrics.in(transport, kind, "ignored")
			return nil
		}
		if channel != "" {
			a.triggers.put(cb.TriggerID, triggerPlace{channel: channel, team: cb.Team.ID})
		}
		act := cb.ActionCallback.BlockActions[0]
		resp := &responder{a: a, url: cb.ResponseURL, channel: channel, user: cb.User.ID, thread: cb.Container.ThreadTs, team: cb.Team.ID}
		msgTS := cmp.Or(cb.Container.MessageTs, cb.Message.Timestamp)
		actID, value := blockAction(act)
		action := bot.Action{
			User:    user,
			Action:  actID,
			Value:   value,
			Message: bot.Ref{Platform: bot.Slack, Workspace: cb.Team.ID, Channel: channel, Message: msgTS},
			Key:     key,
			Trigger: cb.TriggerID,
			Respond: resp,
		}
		ack, late := a.callHandler("button", func() bot.Ack {
			ws, err := a.presserTeam(ctx, cb, channel)
			if err != nil {
				a.log.Warn("button not worked: whose workspace the user is of is unknown", "channel", channel, "err", err)
				return bot.Ack{Message: plainMessage(msgWhoUnknown), Private: true}
			}
			action.User.Workspace = ws
			return a.handler.HandleAction(ctx, action)
		})
		a.metrics.in(transport, kind, "handled")
		if late != nil {
			a.background("late answer", func(ctx context.Context) { a.finishLate(ctx, late, cb.TriggerID, resp) })
			return nil
		}
		if ack.Form != nil {
			f := *ack.Form
			a.background("open form", func(ctx context.Context) { a.openForm(ctx, cb.TriggerID, f, resp) })
		}
		if ack.Message != nil {
			m, private := *ack.Message, ack.Private
			a.background("answer", func(ctx context.Context) {
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
					values[id] = strings.TrimSpace(cmp.Or(v.Value, v.SelectedOption.Value))
				}
			}
		}
		channel = cmp.Or(meta.Channel, channel)
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
			Respond: &responder{a: a, url: url, channel: channel, user: cb.User.ID, team: cb.Team.ID},
		}
		ch := make(chan bot.SubmitAck, 1)
		var sack bot.SubmitAck
		if a.life.GoWork("form submission", func(context.Context) error {
			var s bot.SubmitAck
			// A form carries no channel: the one it was opened from tells
			// whether its author is a guest.
			ws, err := a.presserTeam(ctx, cb, channel)
			if err != nil {
				a.log.Warn("form not worked: whose workspace the user is of is unknown", "channel", channel, "err", err)
				ch <- formError(values, msgWhoUnknown) // the form stays open, its text kept
				return nil
			}
			sub.User.Workspace = ws
			if err := a.toBot("form submission", func() error { s = a.handler.HandleSubmit(ctx, sub); return nil }); err != nil {
				s = formError(values, msgBroke) // the form stays open, its text kept
			}
			ch <- s
			return nil
		}) {
			select {
			case sack = <-ch:
			case <-time.After(a.cfg.AckTimeout):
				a.log.Warn("form handler slower than the acknowledgement deadline; closing the form")
			}
		} else {
			sack = formError(values, msgStopping)
		}
		a.metrics.in(transport, kind, "handled")
		if len(sack.Errors) > 0 {
			return slack.NewErrorsViewSubmissionResponse(viewErrors(sack.Errors, cb.View))
		}
		return nil
	default:
		a.metrics.in(transport, kind, "ignored")
		return nil
	}
}

// viewErrors keys a form's errors as Slack requires: by the block_id of an
// input block of the submitted view (else Slack refuses the answer and the
// person sees none of it). A field named by its action id goes to its
// block; one the view has not (a form of an older version, an error of
// the whole form) goes under the first input block.
func viewErrors(errs map[string]string, v slack.View) map[string]string {
	blockOf := map[string]string{}
	var first string
	if v.State != nil {
		for blockID, actions := range v.State.Values {
			blockOf[blockID] = blockID
			for actionID := range actions {
				blockOf[actionID] = cmp.Or(blockOf[actionID], blockID)
			}
		}
	}
	for _, b := range v.Blocks.BlockSet {
		if in, ok := b.(*slack.InputBlock); ok && blockOf[in.BlockID] != "" {
			first = in.BlockID
			break
		}
	}
	if first == "" && len(blockOf) > 0 {
		first = slices.Sorted(maps.Keys(blockOf))[0]
		first = blockOf[first]
	}
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		b := cmp.Or(blockOf[k], first, k)
		out[b] = strings.TrimSpace(out[b] + " " + errs[k])
	}
	return out
}

// plainMessage is a message of one line of text.
func plainMessage(text string) *bot.Message {
	return &bot.Message{Text: []bot.Line{{bot.T(text)}}}
}

// formError keeps a submitted form open, its text kept, with msg under one
// of its fields (the first by id).
func formError(values map[string]string, msg string) bot.SubmitAck {
	field := ""
	if ids := slices.Sorted(maps.Keys(values)); len(ids) > 0 {
		field = ids[0]
	}
	return bot.SubmitAck{Errors: map[string]string{field: msg}}
}

// outerEvent is an Events API callback, decoded by us (not slack-go) so that
// an inner event slack-go does not know cannot make us drop a delivery.
type outerEvent struct {
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	TeamID    string `json:"team_id"`
	EventID   string `json:"event_id"`
	// EventTime is when the event happened, in Unix seconds.
	EventTime int64 `json:"event_time"`
	// IsExtShared: the event is in a channel shared with another
	// organisation (Slack Connect).
	IsExtShared bool            `json:"is_ext_shared_channel"`
	Event       json.RawMessage `json:"event"`
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
	// Team is the author's workspace, as is UserTeam where Slack sends it
	// (a Slack Connect channel is read through one workspace's install,
	// the envelope's team_id, whoever wrote).
	Team     string `json:"team"`
	UserTeam string `json:"user_team"`
	Text     string `json:"text"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts"`
	// Files are the files posted with it (files.go).
	Files []messageFile `json:"files"`
	// Message and PreviousMessage are the message as it is now and as it
	// was, on subtype message_changed (and PreviousMessage on
	// message_deleted, with DeletedTS):
	// https://docs.slack.dev/reference/events/message/message_changed.
	Message         *messageEvent `json:"message"`
	PreviousMessage *messageEvent `json:"previous_message"`
	DeletedTS       string        `json:"deleted_ts"`
}

// handleEvent hands an Events API callback to the handler. It returns an
// error only when the event is a thread reply the handler could not store:
// then it must not be acknowledged, so that Slack delivers it again (Socket
// Mode: no ack; HTTP: a 5xx).
func (a *Adapter) handleEvent(ctx context.Context, transport string, raw []byte) error {
	var oe outerEvent
	if err := json.Unmarshal(raw, &oe); err != nil {
		a.metrics.in(transport, "event", "bad")
		a.log.Warn("undecodable event", "err", err)
		return nil
	}
	if oe.Type != "event_callback" {
		a.metrics.in(transport, "event", "ignored")
		return nil
	}
	var me messageEvent
	if err := json.Unmarshal(oe.Event, &me); err == nil && (me.Type == "app_uninstalled" || me.Type == "tokens_revoked") {
		return a.uninstallEvent(ctx, transport, oe, me.Type)
	}
	if me.Type == "channel_shared" || me.Type == "channel_unshared" {
		a.forgetShared(me.Channel)
		a.metrics.in(transport, "event", "handled")
		return nil
	}
	if err := json.Unmarshal(oe.Event, &me); err != nil || (me.Type != "message" && !greetingEvent(me.Type)) {
		a.metrics.in(transport, "event", "ignored")
		return nil
	}
	if greetingEvent(me.Type) {
		return a.greetingEvent(ctx, transport, oe)
	}
	reply, ok := a.reply(ctx, oe, me)
	if !ok {
		reply, ok = a.change(ctx, oe, me)
	}
	if !ok {
		a.metrics.in(transport, "event", "ignored")
		return nil
	}
	err := a.toBot("thread reply", func() error { return a.handler.HandleReply(ctx, reply) })
	if lifecycle.IsPanic(err) {
		// A bug (the stack is logged): a redelivery would only repeat it.
		a.metrics.in(transport, "event", "failed")
		a.log.Error("thread reply dropped: handing it to the bot panicked", "key", reply.Key, "err", err)
		return nil
	}
	if err != nil {
		a.metrics.in(transport, "event", "unstored")
		if reply.Change == "" {
			// Left to Slack's redelivery: newer replies of its thread must
			// not move the mark past it (catchup.go).
			a.holdThread(reply.Parent.Channel, reply.Parent.Message)
		}
		return fmt.Errorf("thread reply %s: %w", reply.Key, err)
	}
	a.metrics.in(transport, "event", "handled")
	return nil
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
	// Our own posts carry bot_id (above); the user id check is a second
	// guard, and must not hold the acknowledgement up if auth.test is slow.
	team := cmp.Or(oe.TeamID, me.Team)
	ictx, cancel := context.WithTimeout(ctx, identityWait)
	own := a.botUser(ictx, team)
	cancel()
	if own != "" && me.User == own {
		return bot.Reply{}, false
	}
	return bot.Reply{
		Parent:  bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: me.ThreadTS},
		Message: bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: me.TS},
		Author:  bot.User{Platform: bot.Slack, Workspace: authorTeam(oe, me, team), ID: me.User},
		Text:    ReadableText(me.Text),
		// Keyed on the message, not the event: a reply read back when the
		// adapter starts (catchup.go) is the same inbound work.
		Key:   messageKey(me.Channel, me.TS),
		Files: filesOf(me.Files),
		// Until the thread is read back after a start, its mark waits.
		HoldMark: a.holdsMark(me.Channel, me.ThreadTS),
	}, true
}

// authorTeam is the workspace of who wrote me. In a channel shared by
// Slack Connect it is the author's own (user_team, else team; an
// Enterprise Grid guest's may be the organisation's E… id), not the
// install's the event came through: a guest of another workspace is no
// member of the org, and the org's own members count whichever install
// Slack delivered it through. Elsewhere it is the install's: in an
// Enterprise Grid, user_team is a member's home workspace or the
// organisation's E… id, not the workspace of the channel.
func authorTeam(oe outerEvent, me messageEvent, install string) string {
	if t := cmp.Or(me.UserTeam, me.Team); oe.IsExtShared && t != "" {
		return t // a guest's, even an Enterprise Grid's E… id: no org's
	}
	return install
}

// presserTeam is the workspace of who pressed a button or submitted a
// form in channel, as authorTeam is a thread reply's: the user's own
// (user.team_id, a workspace or a grid's E… id) in a channel shared by
// Slack Connect, where the user may be a guest of another company, no
// member of the channel's org; elsewhere the interaction's (in an
// Enterprise Grid, user.team_id is a member's home workspace, not the
// channel's). Whether the channel is shared comes from conversations.info,
// kept a while. It fails closed: when Slack cannot say, the press is not
// worked (an Enterprise Grid guest's E… id was taken for the org's member
// then); a channel the bot cannot see takes the user's own team.
func (a *Adapter) presserTeam(ctx context.Context, cb slack.InteractionCallback, channel string) (string, error) {
	ut := cb.User.TeamID
	if ut == "" || ut == cb.Team.ID {
		return cb.Team.ID, nil
	}
	shared, err := a.sharedChannel(ctx, cb.Team.ID, channel)
	switch {
	case err != nil && slackCode(err) == "channel_not_found":
		return ut, nil
	case err != nil:
		return "", err
	case !shared:
		return cb.Team.ID, nil
	}
	return ut, nil
}

// msgWhoUnknown answers a slash command, a press or a form when Slack
// could not say whose workspace the user is of.
const msgWhoUnknown = "threatdesk could not check with Slack which workspace you belong to, so nothing was done. Please try again in a minute."

// commandTeam is the workspace of who typed a slash command. Its payload
// names only the install it came through (team_id), no user's own team:
// in a channel shared by Slack Connect the user may be a guest of another
// company, no member of the channel's org, so users.info tells (the
// user's team_id, a workspace or a grid's E… id, as presserTeam takes
// it). So it does in a channel the bot cannot see (channel_not_found: a
// private one it is not in, shared or not, which Slack does not say). It
// fails closed: when Slack cannot say whether the channel is shared, or
// whose the user is, the command is not worked. A direct message is no
// org's channel: it keeps the install's team.
func (a *Adapter) commandTeam(ctx context.Context, sc slack.SlashCommand) (string, error) {
	if sc.ChannelID == "" || strings.HasPrefix(sc.ChannelID, "D") {
		return sc.TeamID, nil
	}
	shared, err := a.sharedChannel(ctx, sc.TeamID, sc.ChannelID)
	switch {
	case err != nil && slackCode(err) != "channel_not_found":
		return "", err
	case err == nil && !shared:
		return sc.TeamID, nil
	}
	api, err := a.client(ctx, sc.TeamID)
	if err != nil {
		return "", fmt.Errorf("look up the team of user %q: %w", sc.UserID, err)
	}
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	u, err := api.GetUserInfoContext(cctx, sc.UserID)
	a.metrics.call("users.info", err)
	if err != nil {
		return "", fmt.Errorf("look up the team of user %q: %w", sc.UserID, a.failed(sc.TeamID, "users.info", err))
	}
	if u.TeamID == "" {
		return "", fmt.Errorf("look up the team of user %q: users.info names no team", sc.UserID)
	}
	return u.TeamID, nil
}

// sharedTTL is how long that a channel is shared by Slack Connect is
// kept; notSharedTTL, that it is not.
const (
	sharedTTL    = 10 * time.Minute
	notSharedTTL = time.Minute
)

// sharedChannel reports whether channel (of workspace team) is shared by
// Slack Connect (conversations.info's is_ext_shared), kept a while (sharedAt.ttl).
func (a *Adapter) sharedChannel(ctx context.Context, team, channel string) (bool, error) {
	if channel == "" {
		return false, errors.New("no channel to tell")
	}
	a.sharedMu.Lock()
	c, ok := a.shared[channel]
	a.sharedMu.Unlock()
	if ok && time.Since(c.at) < c.ttl() {
		return c.shared, nil
	}
	asked := time.Now()
	api, err := a.client(ctx, team)
	if err != nil {
		return false, err
	}
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	ch, err := api.GetConversationInfoContext(cctx, &slack.GetConversationInfoInput{ChannelID: channel})
	a.metrics.call("conversations.info", err)
	if err != nil {
		return false, fmt.Errorf("tell whether channel %s is shared: %w", channel, a.failed(team, "conversations.info", err))
	}
	a.sharedMu.Lock()
	if a.shared == nil {
		a.shared = map[string]sharedAt{}
	}
	// An answer asked before the channel was last shared or unshared is
	// not kept (it may say the old).
	if f, forgot := a.shared[channel]; !forgot || !f.forgot.After(asked) {
		a.shared[channel] = sharedAt{shared: ch.IsExtShared, at: time.Now()}
	}
	a.sharedMu.Unlock()
	return ch.IsExtShared, nil
}

// forgetShared drops what sharedChannel kept of channel: Slack said it
// was shared or unshared by Slack Connect (channel_shared,
// channel_unshared), so the next press or command asks again. (The event
// reaches one replica; the others ask again within notSharedTTL.)
func (a *Adapter) forgetShared(channel string) {
	a.sharedMu.Lock()
	if a.shared == nil {
		a.shared = map[string]sharedAt{}
	}
	a.shared[channel] = sharedAt{forgot: time.Now()}
	a.sharedMu.Unlock()
}

// sharedAt is a kept answer of sharedChannel, or when it was forgotten.
type sharedAt struct {
	shared bool
	at     time.Time
	forgot time.Time
}

// ttl is how long the answer is kept: a channel not shared is asked about
// again sooner, since becoming shared lets guests in (and the event that
// says so reaches one replica only).
func (c sharedAt) ttl() time.Duration {
	if c.at.IsZero() {
		return 0
	}
	if !c.shared {
		return notSharedTTL
	}
	return sharedTTL
}

// ReadableText decodes message text as Slack sends it into what a person
// reads: entities decoded, <@U123|name> as @name, links as their URL.
func ReadableText(raw string) string {
	return strings.Join(joinWords(tokens(raw)), "")
}

// identityWait bounds the auth.test an event's acknowledgement may wait
// for (once per process; the answer is kept).
const identityWait = 500 * time.Millisecond

// responder answers after the acknowledgement: through the response URL
// when there is one, otherwise with chat.postEphemeral / chat.postMessage.
type responder struct {
	a       *Adapter
	url     string
	channel string
	user    string
	thread  string
	// team is the workspace the event came from: its token answers.
	team string
}

var (
	_ bot.Resumable = (*responder)(nil)
	_ bot.Resumer   = (*Adapter)(nil)
)

// responderState is a responder as stored with its event. The response URL
// lets anyone post into the conversation for 30 minutes: the bot keeps it
// only until the event is settled.
type responderState struct {
	URL     string `json:"url,omitempty"`
	Channel string `json:"channel"`
	User    string `json:"user"`
	Thread  string `json:"thread,omitempty"`
	Team    string `json:"team,omitempty"`
}

// ResumeState implements bot.Resumable.
func (r *responder) ResumeState() (json.RawMessage, error) {
	return json.Marshal(responderState{URL: r.url, Channel: r.channel, User: r.user, Thread: r.thread, Team: r.team})
}

// Resume implements bot.Resumer: it rebuilds a responder, in this process or
// another replica, from ResumeState's output.
func (a *Adapter) Resume(state json.RawMessage) (bot.Responder, error) {
	var st responderState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("slack responder state: %w", err)
	}
	if st.URL == "" && (st.Channel == "" || st.User == "") {
		return nil, errors.New("slack responder state: neither a response URL nor a channel and user")
	}
	return &responder{a: a, url: st.URL, channel: st.Channel, user: st.User, thread: st.Thread, team: st.Team}, nil
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
	dest := bot.Dest{Platform: bot.Slack, Workspace: r.team, Channel: r.channel}
	if r.thread != "" {
		dest.Thread = &bot.Ref{Platform: bot.Slack, Workspace: r.team, Channel: r.channel, Message: r.thread}
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
