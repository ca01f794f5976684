package slack_test

import (
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// TestStartedOnce: a second Start is an error, as for every service; so is
// a Start after Stop.
func TestStartedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	require.ErrorIs(t, f.adapter.Start(f.ctx), lifecycle.ErrStarted)
	require.NoError(t, f.adapter.Stop())
	require.ErrorIs(t, f.adapter.Start(f.ctx), lifecycle.ErrStopped)

	g := setup(t, setupOpts{})
	require.NoError(t, g.adapter.Stop(), "Stop before Start is safe")
}

// TestAPanicInTheHandlerIsAnswered: a handler that panics on a slash
// command or a form submission does not end the process: the person gets
// the generic answer (the form stays open, its text kept), the panic is
// counted, and the next event is handled.
func TestAPanicInTheHandlerIsAnswered(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	form := bot.Form{ID: "ask", Title: "Ask a threat expert", Submit: "Ask",
		Fields: []bot.FormField{{ID: "question", Label: "Your question", Kind: bot.InputParagraph, Required: true}}}
	var calls atomic.Int32
	f.rec.onCmd = func(bot.Command) bot.Ack {
		if calls.Add(1) == 1 {
			panic("command bug")
		}
		return bot.Ack{Form: &form}
	}
	f.rec.onSubmit = func(bot.Submission) bot.SubmitAck { panic("submit bug") }

	ack, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "ask", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	require.Contains(t, string(ack.Payload), "Something went wrong in threatdesk")
	require.EqualValues(t, 1, panicCount(t, f.reg, "slack"))

	_, err = f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "ask", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	waitFor(t, "the next command is handled: its form opens", func() bool { return len(f.fake.Views()) == 1 }, f.fake)

	p, err := f.fake.Submit(f.fake.Views()[0], analyst, map[string]string{"question": "is this lateral movement?"})
	require.NoError(t, err)
	ack, err = f.fake.Interactive(f.ctx, p)
	require.NoError(t, err)
	require.JSONEq(t, `{"response_action":"errors","errors":{"question":"Something went wrong in threatdesk; please try again."}}`, string(ack.Payload))
	require.EqualValues(t, 2, panicCount(t, f.reg, "slack"))

	// A thread reply whose hand-over panics is acknowledged and dropped (a
	// redelivery would only panic again); the next one is handed over.
	f.rec.mu.Lock()
	f.rec.panicReplies = 1
	f.rec.mu.Unlock()
	anchor, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Title: "EOD-9", Fallback: "EOD-9"})
	require.NoError(t, err)
	_, cb := f.fake.UserMessage(deskChannel, anchor.Message, expert, "met a bug")
	_, err = f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err, "acknowledged")
	_, cb = f.fake.UserMessage(deskChannel, anchor.Message, expert, "handed over")
	_, err = f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err)
	replies := f.rec.Replies()
	require.Len(t, replies, 1)
	require.Equal(t, "handed over", replies[0].Text)
	require.EqualValues(t, 3, panicCount(t, f.reg, "slack"))
	require.NoError(t, f.adapter.Stop(), "the panics stayed inside their boundary")
}

// panicCount reads threatdesk_panics_total{component}.
func panicCount(t testing.TB, reg prometheus.Gatherer, component string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == component {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("threatdesk_panics_total{component=%q} is not registered", component)
	return 0
}
