package slack_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
)

func TestSocketModeSlashCommand(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		text     string
		wantName string
		wantArgs []string
		wantText string
	}{
		{"alert with quoted question", `alert da6374 "is this lateral movement?"`, "alert", []string{"da6374", "is this lateral movement?"}, `da6374 "is this lateral movement?"`},
		{"assign with a mention", "assign EOD-3 <@U0EXPERT|eve>", "assign", []string{"EOD-3", "U0EXPERT"}, "EOD-3 @eve"},
		{"link and entities", "ask is &lt;script&gt; &amp; <https://evil.example/x|evil.example/x> bad?", "ask", []string{"is", "<script>", "&", "https://evil.example/x", "bad?"}, "is <script> & https://evil.example/x bad?"},
		{"bare", "", "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, setupOpts{socket: true})
			f.rec.onCmd = func(c bot.Command) bot.Ack {
				return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("Received: "), bot.U(c.Text)}}}, Private: true}
			}
			ack, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: tc.text, UserID: analyst, ChannelID: socChannel})
			require.NoError(t, err)
			require.Less(t, ack.Latency, time.Second)
			cmds := f.rec.Commands()
			require.Len(t, cmds, 1)
			c := cmds[0]
			require.Equal(t, tc.wantName, c.Name)
			require.Equal(t, tc.wantArgs, c.Args)
			require.Equal(t, tc.wantText, c.Text)
			require.Equal(t, analyst, c.User.ID)
			require.Equal(t, bot.Slack, c.User.Platform)
			require.Equal(t, "T0FAKE", c.User.Workspace)
			require.Equal(t, socChannel, c.Channel)
			require.NotEmpty(t, c.Trigger)
			require.NotEmpty(t, c.Key)
			// The answer rides in the ack payload, ephemeral and escaped.
			var payload struct {
				ResponseType string            `json:"response_type"`
				Text         string            `json:"text"`
				Blocks       []json.RawMessage `json:"blocks"`
			}
			require.NoError(t, json.Unmarshal(ack.Payload, &payload))
			require.Equal(t, "ephemeral", payload.ResponseType)
			require.NotEmpty(t, payload.Blocks)
			require.NotContains(t, string(ack.Payload), "<script>")
		})
	}
}

func TestSocketModeResponderAndForm(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	form := bot.Form{ID: "ask", State: "alert:da6374", Title: "Ask a threat expert", Submit: "Ask",
		Fields: []bot.FormField{{ID: "question", Label: "Your question", Kind: bot.InputParagraph, Required: true, MaxLength: 3000}}}
	f.rec.onCmd = func(bot.Command) bot.Ack { return bot.Ack{Form: &form} }
	f.rec.onSubmit = func(s bot.Submission) bot.SubmitAck {
		if len(s.Values["question"]) < 5 {
			return bot.SubmitAck{Errors: map[string]string{"question": "Please say a little more."}}
		}
		return bot.SubmitAck{}
	}
	_, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "ask", UserID: analyst, ChannelID: privChannel})
	require.NoError(t, err)
	waitFor(t, "views.open called with the trigger", func() bool { return len(f.fake.Views()) == 1 }, f.fake)
	view := f.fake.Views()[0]
	require.Equal(t, f.rec.Commands()[0].Trigger, view.TriggerID)

	// Too short: the modal stays open with the error inline.
	p, err := f.fake.Submit(view, analyst, map[string]string{"question": "hm"})
	require.NoError(t, err)
	ack, err := f.fake.Interactive(f.ctx, p)
	require.NoError(t, err)
	require.JSONEq(t, `{"response_action":"errors","errors":{"question":"Please say a little more."}}`, string(ack.Payload))

	p, err = f.fake.Submit(view, analyst, map[string]string{"question": "is this <!channel> lateral movement?"})
	require.NoError(t, err)
	ack, err = f.fake.Interactive(f.ctx, p)
	require.NoError(t, err)
	require.Empty(t, ack.Payload, "a valid submission closes the modal")
	subs := f.rec.Subs()
	require.Len(t, subs, 2)
	s := subs[1]
	require.Equal(t, "ask", s.FormID)
	require.Equal(t, "alert:da6374", s.State)
	require.Equal(t, privChannel, s.Channel, "the channel the form was opened from comes back")
	require.Equal(t, "is this <!channel> lateral movement?", s.Values["question"])

	// The responder answers privately in that channel (no response URL on a submission).
	require.NoError(t, s.Respond.Respond(f.ctx, bot.Message{Text: []bot.Line{{bot.T("Case EOD-1 opened: "), bot.U(s.Values["question"])}}}, true))
	msgs := f.fake.Messages(privChannel)
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].Ephemeral)
	require.Equal(t, analyst, msgs[0].To)
	require.Contains(t, texts(t, msgs[0].Blocks), "&lt;!channel&gt;")
}

func TestSocketModeButton(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	card := bot.Message{Title: "EOD-7 · Alert inquiry", Text: []bot.Line{{bot.U("question")}},
		Buttons: []bot.Button{{Action: bot.ActTake, Label: "Take", Value: "EOD-7", Style: bot.ButtonPrimary}, {Action: bot.ActAskEntity, Label: "a", Value: "d1"}, {Action: bot.ActAskEntity, Label: "b", Value: "d2"}}}
	ref, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, card)
	require.NoError(t, err)
	f.rec.onAction = func(a bot.Action) bot.Ack {
		return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("You took "), bot.U(a.Value)}}}, Private: true}
	}
	for _, tc := range []struct {
		press, action, value string
	}{{"take", "take", "EOD-7"}, {"ask_entity/1", "ask_entity", "d2"}} {
		p, err := f.fake.Press(deskChannel, ref.Message, expert, tc.press)
		require.NoError(t, err)
		_, err = f.fake.Interactive(f.ctx, p)
		require.NoError(t, err)
		acts := f.rec.Actions()
		require.NotEmpty(t, acts)
		a := acts[len(acts)-1]
		require.Equal(t, bot.ActionID(tc.action), a.Action)
		require.Equal(t, tc.value, a.Value)
		require.Equal(t, ref.Message, a.Message.Message)
		require.Equal(t, deskChannel, a.Message.Channel)
		require.Equal(t, expert, a.User.ID)
	}
	waitFor(t, "answers through the response URL", func() bool { return len(f.fake.Responses()) == 2 }, f.fake)
	require.Equal(t, "ephemeral", f.fake.Responses()[0].ResponseType)
}

func TestSocketModeThreadReplies(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	anchor, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Title: "EOD-9", Fallback: "EOD-9"})
	require.NoError(t, err)

	reply, cb := f.fake.UserMessage(deskChannel, anchor.Message, expert, "Looks like &lt;b&gt; PsExec, see <https://x.example/a|writeup>")
	_, err = f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err)
	// Slack redelivers the same event: the same key each time.
	_, err = f.fake.Event(f.ctx, cb, 1)
	require.NoError(t, err)
	_, err = f.fake.Event(f.ctx, cb, 2)
	require.NoError(t, err)

	// Ignored as new replies: our own message in the thread, another bot,
	// a top-level message; an edit is handed over as an edit (Change).
	own := f.fake.Callback("EvOWN", map[string]any{"type": "message", "channel": deskChannel, "user": "U0BOT", "text": "relay", "ts": "1.1", "thread_ts": anchor.Message, "channel_type": "channel"})
	other := f.fake.Callback("EvBOT", map[string]any{"type": "message", "subtype": "bot_message", "bot_id": "B9", "channel": deskChannel, "text": "x", "ts": "1.2", "thread_ts": anchor.Message, "channel_type": "channel"})
	_, top := f.fake.UserMessage(deskChannel, "", expert, "hello channel")
	edit := f.fake.Callback("EvEDIT", map[string]any{"type": "message", "subtype": "message_changed", "channel": deskChannel, "hidden": true, "ts": "1.3", "channel_type": "channel",
		"message": map[string]any{"type": "message", "user": expert, "text": "edited", "ts": reply.TS, "thread_ts": anchor.Message}})
	for _, cb := range []map[string]any{own, other, top, edit} {
		_, err := f.fake.Event(f.ctx, cb, 0)
		require.NoError(t, err)
	}
	edited := f.rec.Replies()[len(f.rec.Replies())-1]
	require.Equal(t, bot.ReplyEdited, edited.Change)
	require.Equal(t, "edited", edited.Text)
	require.Equal(t, reply.TS, edited.Message.Message)
	// A reply also sent to the channel (thread_broadcast), in a private channel.
	privAnchor, err := f.adapter.Post(f.ctx, bot.Dest{Channel: privChannel}, bot.Message{Fallback: "receipt", Text: []bot.Line{{bot.T("receipt")}}})
	require.NoError(t, err)
	bc := f.fake.Callback("EvBCAST", map[string]any{"type": "message", "subtype": "thread_broadcast", "channel": privChannel, "user": analyst,
		"text": "also to channel", "ts": "1700000000.000900", "thread_ts": privAnchor.Message, "channel_type": "group"})
	_, err = f.fake.Event(f.ctx, bc, 0)
	require.NoError(t, err)

	// Each event is handed over before its ack: the desk reply three times
	// under one key (the handler stores it once; see
	// TestRetriedEventProcessedOnceAcrossRestart), the broadcast once.
	require.Len(t, f.rec.Replies(), 5)
	rs := f.rec.Distinct()
	require.Len(t, rs, 3)
	byChannel := map[string]bot.Reply{}
	for _, r := range rs {
		if r.Change == "" {
			byChannel[r.Parent.Channel] = r
		}
	}
	r := byChannel[deskChannel]
	require.Equal(t, bot.Ref{Platform: bot.Slack, Workspace: "T0FAKE", Channel: deskChannel, Message: anchor.Message}, r.Parent)
	require.Equal(t, reply.TS, r.Message.Message)
	require.Equal(t, expert, r.Author.ID)
	require.Equal(t, "Looks like <b> PsExec, see writeup (https://x.example/a)", r.Text)
	require.NotEmpty(t, r.Key)
	b := byChannel[privChannel]
	require.Equal(t, privAnchor.Message, b.Parent.Message)
	require.Equal(t, "also to channel", b.Text)
}

func TestSocketModeAcksWhatSlackGoCannotParse(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	cases := []struct {
		name string
		raw  string
	}{
		{"unknown envelope type", `{"envelope_id":"env-unknown","type":"something_new","payload":{},"accepts_response_payload":false,"retry_attempt":0}`},
		{"slash command payload of the wrong shape", `{"envelope_id":"env-badcmd","type":"slash_commands","payload":"oops","accepts_response_payload":true}`},
		{"interactive payload of the wrong shape", `{"envelope_id":"env-badint","type":"interactive","payload":[1,2],"accepts_response_payload":false}`},
	}
	for _, tc := range cases {
		var env slackfake.Envelope
		require.NoError(t, json.Unmarshal([]byte(tc.raw), &env), tc.name)
		ack, err := f.fake.Send(f.ctx, env, []byte(tc.raw))
		require.NoError(t, err, tc.name)
		require.Equal(t, env.EnvelopeID, ack.EnvelopeID, tc.name)
	}
	require.Empty(t, f.rec.Commands())
}

func TestSocketModeSamples(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})

	// The real app_mention envelope is acknowledged (and ignored: not a thread reply).
	raw := readSample(t, "slack-socketmode-events-api-app-mention.json")
	var env slackfake.Envelope
	require.NoError(t, json.Unmarshal(raw, &env))
	ack, err := f.fake.Send(f.ctx, env, raw)
	require.NoError(t, err)
	require.Equal(t, "c67a03d0-4094-4744-90ca-d286e00a3ab1", ack.EnvelopeID)

	// The documented thread reply becomes a Reply whose parent is the thread's anchor.
	var cb map[string]any
	require.NoError(t, json.Unmarshal(readSample(t, "slack-event-message-thread-reply.json"), &cb))
	_, err = f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err)
	waitFor(t, "reply from the sample", func() bool { return len(f.rec.Replies()) == 1 }, f.rec)
	r := f.rec.Replies()[0]
	require.Equal(t, bot.Ref{Platform: bot.Slack, Workspace: "T123ABC456", Channel: "C123ABC456", Message: "1493305433.915644"}, r.Parent)
	require.Equal(t, "1493305444.920992", r.Message.Message)
	require.Equal(t, "U5678", r.Author.ID)
	require.Equal(t, "foo", r.Text)

	// The view submission sample: values by block id.
	var vs map[string]any
	require.NoError(t, json.Unmarshal(readSample(t, "slack-view-submission.json"), &vs))
	vs["trigger_id"] = "sample-trigger"
	_, err = f.fake.Interactive(f.ctx, vs)
	require.NoError(t, err)
	subs := f.rec.Subs()
	require.Len(t, subs, 1)
	require.Equal(t, "No onions", subs[0].Values["multi-line"])
	require.Equal(t, "C1AB2C3DE", subs[0].Values["target_channel"])
	require.Equal(t, "W12A3BCDEF", subs[0].User.ID)

	// The block_actions sample (a select in a view, no button): handled, acknowledged.
	var ba map[string]any
	require.NoError(t, json.Unmarshal(readSample(t, "slack-block-actions.json"), &ba))
	_, err = f.fake.Interactive(f.ctx, ba)
	require.NoError(t, err)
	acts := f.rec.Actions()
	require.Len(t, acts, 1)
	require.Equal(t, bot.ActionID("multi_convos"), acts[0].Action)

	// The fake's hello has the fields of Slack's.
	var hello map[string]any
	require.NoError(t, json.Unmarshal(readSample(t, "slack-socketmode-hello.json"), &hello))
	require.Contains(t, hello, "connection_info")
}

func TestSocketModeReconnects(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	require.Equal(t, 1, f.fake.Opens())
	f.fake.Disconnect()
	// (Connections alone is 1 again before the new connection is made, when
	// the old one is still open: count the connections made.)
	waitFor(t, "reconnected after disconnect", func() bool {
		return f.fake.Opens() == 2 && f.fake.Accepted() == 2 && f.fake.Connections() == 1
	}, f.fake)
	f.fake.Drop()
	waitFor(t, "reconnected after a dropped socket", func() bool {
		return f.fake.Opens() == 3 && f.fake.Accepted() == 3 && f.fake.Connections() == 1
	}, f.fake)
	_, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "help", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	require.Len(t, f.rec.Commands(), 1)
	require.NoError(t, f.adapter.Stop())
	require.NoError(t, f.adapter.Stop(), "idempotent")
	waitFor(t, "stopped", func() bool { return f.fake.Connections() == 0 }, f.fake)
}

// TestSocketModeRedeliveryReachesTheHandler: the adapter keeps no record of
// deliveries of its own; a redelivered command reaches the handler, which
// recognises its key (the same trigger_id) and acknowledges it empty (see
// TestRedeliveredCommandOpensOneCase for the real bot doing so).
func TestSocketModeRedeliveryReachesTheHandler(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	payload := f.fake.CommandPayload(slackfake.SlashCommand{Text: "ask anything odd?", UserID: analyst, ChannelID: socChannel})
	_, err := f.fake.Send(f.ctx, slackfake.Envelope{EnvelopeID: "env-1", Type: "slash_commands", Payload: payload, AcceptsResponsePayload: true}, nil)
	require.NoError(t, err)
	ack, err := f.fake.Send(f.ctx, slackfake.Envelope{EnvelopeID: "env-1", Type: "slash_commands", Payload: payload, AcceptsResponsePayload: true, RetryAttempt: 1, RetryReason: "timeout"}, nil)
	require.NoError(t, err)
	require.Empty(t, ack.Payload)
	cmds := f.rec.Commands()
	require.Len(t, cmds, 2)
	require.Equal(t, cmds[0].Key, cmds[1].Key, "a redelivery carries the same key")

	// Metrics are on the registry passed in, under threatdesk_.
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	require.True(t, names["threatdesk_slack_ack_seconds"])
	require.True(t, names["threatdesk_slack_inbound_total"])
	require.True(t, names["threatdesk_slack_socket_mode_connected"])
}

// TestSlowHandlerStillAcksInTime: a handler slower than the ack deadline
// does not make Slack wait; its answer follows through the response URL.
func TestSlowHandlerStillAcksInTime(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true, cfg: func(c *adapter.Config) { c.AckTimeout = 100 * time.Millisecond }})
	f.rec.onCmd = func(bot.Command) bot.Ack {
		time.Sleep(1500 * time.Millisecond)
		return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("late answer")}}}, Private: true}
	}
	ack, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "cases", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	require.Less(t, ack.Latency, time.Second, "acked long before the handler's 1.5 s")
	require.Empty(t, ack.Payload)
	waitFor(t, "the late answer goes through the response URL", func() bool { return len(f.fake.Responses()) == 1 }, f.fake)
	require.Equal(t, "ephemeral", f.fake.Responses()[0].ResponseType)
}

// TestSocketModeReconnectBackoff: when apps.connections.open fails (a 500,
// then invalid_auth, which makes slack-go give up), the adapter keeps
// trying with backoff and comes back.
func TestSocketModeReconnectBackoff(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	f.fake.FailNext("apps.connections.open", 1, slackfake.Failure{Status: 500})
	f.fake.FailNext("apps.connections.open", 1, slackfake.Failure{Status: 200, Error: "invalid_auth"})
	f.fake.Drop()
	waitFor(t, "back after failures", func() bool {
		return f.fake.Opens() == 2 && f.fake.Accepted() == 2 && f.fake.Connections() == 1
	}, f.fake)
	require.GreaterOrEqual(t, len(f.fake.Calls("apps.connections.open")), 3)
	_, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "help", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
}
