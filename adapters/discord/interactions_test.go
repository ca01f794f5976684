package discord_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// post sends a signed (or deliberately mis-signed) interaction to srv.
func post(t *testing.T, srv *httptest.Server, body []byte, ts, sig string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/discord/interactions", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if ts != "" {
		req.Header.Set("X-Signature-Timestamp", ts)
	}
	if sig != "" {
		req.Header.Set("X-Signature-Ed25519", sig)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func sign(priv ed25519.PrivateKey, ts string, body []byte) string {
	return hex.EncodeToString(ed25519.Sign(priv, append([]byte(ts), body...)))
}

func serve(t *testing.T, a *discord.Adapter) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /discord/interactions", a.InteractionsHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// Vector B of the shared samples: the PING body signed with RFC 8032 TEST 1.
const (
	vectorPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	vectorTS   = "1608597133"
	vectorSig  = "e0723ca3a8d8a4264a0968b8ed00da6a9a4ab703d65d15c0360ff659e81bbbb0dabcc8fdcc3fcccd0b068e935a432387a75dacd1ee335de77a5fd6fa7266ab03"
	vectorBody = `{"id":"787053080478613555","token":"ThisIsATokenFromDiscordThatIsVeryLong","type":1,"version":1}`
)

func TestHTTPInteractionSignature(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *discord.Config) {
		c.PublicKey = vectorPub
		c.Now = func() time.Time { return time.Unix(1608597133+30, 0) }
	})
	srv := serve(t, f.adapter)
	flipped := []byte(vectorSig)
	flipped[10] ^= 1
	// An /experts command, signed with the vector's key, by someone else's
	// key, or tampered after signing.
	_, raw, err := f.fake.Prepare(f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"ref": "EOD-1"}))
	require.NoError(t, err)
	command := string(raw)
	vectorKey := ed25519.NewKeyFromSeed(mustHex(t, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
	_, otherKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	tampered := strings.Replace(command, "EOD-1", "EOD-2", 1)
	require.NotEqual(t, command, tampered)
	tests := []struct {
		name   string
		body   string
		ts     string
		sig    string
		status int
		want   string
	}{
		{"valid PING gets PONG", vectorBody, vectorTS, vectorSig, 200, `{"type":1}`},
		{"invalid signature", vectorBody, vectorTS, string(flipped), 401, ""},
		{"tampered body", vectorBody + " ", vectorTS, vectorSig, 401, ""},
		{"tampered timestamp", vectorBody, "1608597134", vectorSig, 401, ""},
		{"no signature", vectorBody, vectorTS, "", 401, ""},
		{"no timestamp", vectorBody, "", vectorSig, 401, ""},
		{"signature not hex", vectorBody, vectorTS, "zz", 401, ""},
		{"command signed by another key", command, vectorTS, sign(otherKey, vectorTS, []byte(command)), 401, ""},
		{"command tampered after signing", tampered, vectorTS, sign(vectorKey, vectorTS, []byte(command)), 401, ""},
		{"command signed right", command, vectorTS, sign(vectorKey, vectorTS, []byte(command)), 200, ""},
	}
	for _, tt := range tests {
		status, body := post(t, srv, []byte(tt.body), tt.ts, tt.sig)
		require.Equal(t, tt.status, status, tt.name)
		if tt.want != "" {
			require.JSONEq(t, tt.want, string(body), tt.name)
		}
	}
	testwait.For(t, 5*time.Second, "the rightly signed command to reach the bot", func() bool { return f.h.commandCount() == 1 }, f.h)
	require.Equal(t, 1, f.h.commandCount(), "exactly the rightly signed command reached the bot")
}

func TestHTTPInteractionReplayIsRejected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	srv := serve(t, f.adapter)
	body := []byte(vectorBody)
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	status, _ := post(t, srv, body, old, sign(f.priv, old, body))
	require.Equal(t, 401, status, "a correctly signed but old request is a replay")
	now := strconv.FormatInt(time.Now().Unix(), 10)
	status, _ = post(t, srv, body, now, sign(f.priv, now, body))
	require.Equal(t, 200, status)
}

func TestHTTPInteractionCommandThenFollowup(t *testing.T) {
	t.Parallel()
	f := setup(t)
	srv := serve(t, f.adapter)
	respond := make(chan bot.Responder, 1)
	f.h.onCommand = func(c bot.Command) bot.Ack {
		respond <- c.Respond
		return bot.Ack{Private: true}
	}
	in, raw, err := f.fake.Prepare(f.fake.CommandPayload(channelID, analystID, "experts", "alert",
		map[string]any{"id": "da637", "question": "is this @everyone lateral movement?"}))
	require.NoError(t, err)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	status, body := post(t, srv, raw, ts, sign(f.priv, ts, raw))
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"type":5,"data":{"flags":64}}`, string(body))
	require.NoError(t, f.fake.AnsweredOverHTTP(in, body))

	c := f.h.lastCommand(t)
	require.Equal(t, "alert", c.Name)
	require.Equal(t, map[string]string{"id": "da637", "question": "is this @everyone lateral movement?"}, c.Options)
	require.Equal(t, []string{"da637", "is this @everyone lateral movement?"}, c.Args)
	require.Equal(t, channelID, c.Channel)
	require.Equal(t, bot.User{Platform: bot.Discord, Workspace: guildID, ID: analystID, DisplayName: "Alice (SOC)"}, c.User)
	require.Equal(t, "discord:"+in.ID, c.Key)

	r := <-respond
	require.NoError(t, r.Respond(context.Background(), bot.Message{Text: []bot.Line{{bot.T("Case "), bot.B("EOD-1"), bot.T(" opened")}}}, true))
	orig, ok := f.fake.OriginalResponse(in)
	require.True(t, ok)
	require.Equal(t, "Case **EOD-1** opened", orig.Content)
	require.NoError(t, r.Respond(context.Background(), bot.Message{Text: []bot.Line{{bot.T("second")}}}, false))
	fu := f.fake.FollowupMessages(in)
	require.Len(t, fu, 1)
	require.Equal(t, "second", fu[0].Content)
	require.Zero(t, fu[0].Flags&64, "public followup")
	require.Empty(t, f.fake.Violations())
}

func TestGatewayInteractions(t *testing.T) {
	t.Parallel()
	form := &bot.Form{ID: "ask", State: "inc-7", Title: "Ask a threat expert", Submit: "Send", Fields: []bot.FormField{
		{ID: "question", Label: "Question", Kind: bot.InputParagraph, Required: true, MinLength: 10, MaxLength: 1500},
	}}
	card := bot.Message{Title: "Case EOD-1", Buttons: []bot.Button{{Action: bot.ActTake, Value: "EOD-1", Label: "Take", Style: bot.ButtonPrimary}}}
	tests := []struct {
		name    string
		payload func(f fixture, cardMsg discordfake.Message) map[string]any
		prepare func(h *handler)
		want    int
		check   func(t *testing.T, f fixture, cb discordfake.Callback)
	}{
		{"command opens a modal", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.CommandPayload(channelID, analystID, "experts", "ask", nil)
		}, func(h *handler) { h.onCommand = func(bot.Command) bot.Ack { return bot.Ack{Form: form} } }, 9,
			func(t *testing.T, _ fixture, cb discordfake.Callback) {
				var m discordfake.ModalBody
				require.NoError(t, json.Unmarshal(cb.Data, &m))
				require.Equal(t, "f:ask:inc-7", m.CustomID)
				require.Equal(t, "question", m.Components[0].Components[0].CustomID)
			}},
		{"command answered privately at once", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.CommandPayload(channelID, analystID, "experts", "help", nil)
		}, func(h *handler) {
			h.onCommand = func(bot.Command) bot.Ack {
				return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("help text")}}}, Private: true}
			}
		}, 4, func(t *testing.T, _ fixture, cb discordfake.Callback) {
			var m discordfake.MessageBody
			require.NoError(t, json.Unmarshal(cb.Data, &m))
			require.Equal(t, 64, m.Flags)
			require.Equal(t, "help text", *m.Content)
		}},
		{"command deferred publicly", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"})
		}, nil, 5, func(t *testing.T, f fixture, cb discordfake.Callback) {
			require.Equal(t, "status", f.h.lastCommand(t).Name)
		}},
		{"button is a deferred update", func(f fixture, m discordfake.Message) map[string]any {
			return f.fake.ComponentPayload(m, analystID, "take:EOD-1")
		}, nil, 6, func(t *testing.T, f fixture, _ discordfake.Callback) {
			f.h.mu.Lock()
			defer f.h.mu.Unlock()
			require.Len(t, f.h.actions, 1)
			a := f.h.actions[0]
			require.Equal(t, bot.ActTake, a.Action)
			require.Equal(t, "EOD-1", a.Value)
			require.Equal(t, channelID, a.Message.Channel)
			require.NotEmpty(t, a.Message.Message)
		}},
		{"modal submit from a button", func(f fixture, m discordfake.Message) map[string]any {
			return f.fake.ModalPayload(channelID, analystID, "f:conclude:EOD-1", map[string]string{"answer": "benign"}, &m)
		}, nil, 6, func(t *testing.T, f fixture, _ discordfake.Callback) {
			f.h.mu.Lock()
			defer f.h.mu.Unlock()
			require.Len(t, f.h.submits, 1)
			s := f.h.submits[0]
			require.Equal(t, "conclude", s.FormID)
			require.Equal(t, "EOD-1", s.State)
			require.Equal(t, map[string]string{"answer": "benign"}, s.Values)
		}},
		{"modal errors come back privately", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.ModalPayload(channelID, analystID, "f:ask:", map[string]string{"question": "why did ws-1 beacon out?"}, nil)
		}, func(h *handler) {
			h.onSubmit = func(bot.Submission) bot.SubmitAck {
				return bot.SubmitAck{Errors: map[string]string{"question": "too short"}}
			}
		}, 4, func(t *testing.T, _ fixture, cb discordfake.Callback) {
			var m discordfake.MessageBody
			require.NoError(t, json.Unmarshal(cb.Data, &m))
			require.Equal(t, 64, m.Flags)
			require.Contains(t, *m.Content, "too short")
			// Discord closed the modal: what was typed comes back with the errors.
			require.Contains(t, *m.Content, "What you wrote, to send it again:**\n>>> why did ws-1 beacon out?")
		}},
		{"slow handler is deferred in time", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.CommandPayload(channelID, analystID, "experts", "credits", nil)
		}, func(h *handler) {
			h.onCommand = func(bot.Command) bot.Ack {
				time.Sleep(700 * time.Millisecond)
				return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("late answer")}}}}
			}
		}, 5, func(t *testing.T, f fixture, cb discordfake.Callback) {
			require.Less(t, cb.Latency, 3*time.Second)
			testwait.For(t, 5*time.Second, "the late answer", func() bool {
				for _, m := range f.fake.Messages(channelID) {
					if m.Content == "late answer" {
						return true
					}
				}
				return false
			}, f.fake)
		}},
		{"autocomplete suggests cases", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.AutocompletePayload(channelID, analystID, "experts", "status", "case", "eod-1")
		}, func(h *handler) {
			h.onComplete = func(u bot.User, channel, typed string) []bot.Choice {
				if u.ID != analystID || channel != channelID || typed != "eod-1" {
					return nil
				}
				return []bot.Choice{{Name: "EOD-1 · New · is this @everyone lateral?", Value: "EOD-1"}, {Name: "EOD-12 · In progress", Value: "EOD-12"}}
			}
		}, 8, func(t *testing.T, _ fixture, cb discordfake.Callback) {
			require.JSONEq(t, `{"choices":[{"name":"EOD-1 · New · is this @everyone lateral?","value":"EOD-1"},{"name":"EOD-12 · In progress","value":"EOD-12"}]}`, string(cb.Data))
		}},
		{"unknown command", func(f fixture, _ discordfake.Message) map[string]any {
			return f.fake.CommandPayload(channelID, analystID, "cardsearch", "", map[string]any{"cardname": "x"})
		}, nil, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(c *discord.Config) { c.AckTimeout = 300 * time.Millisecond })
			if tt.prepare != nil {
				tt.prepare(f.h)
			}
			f.start(t)
			ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, card)
			require.NoError(t, err)
			m, _ := f.fake.Message(ref.Message)
			in, err := f.fake.Interact(tt.payload(f, m))
			require.NoError(t, err)
			cb, err := in.Wait(5 * time.Second)
			require.NoError(t, err)
			require.Equal(t, tt.want, cb.Type, string(cb.Data))
			if tt.check != nil {
				tt.check(t, f, cb)
			}
			require.Empty(t, f.fake.Violations())
		})
	}
}

func TestCommandInThreadActsForParentChannel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-1"})
	require.NoError(t, err)
	in, err := f.fake.Interact(f.fake.CommandPayload(ref.Message, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	c := f.h.lastCommand(t)
	require.Equal(t, channelID, c.Channel)
	require.Equal(t, &bot.Ref{Platform: bot.Discord, Workspace: guildID, Channel: channelID, Message: ref.Message}, c.Thread)
}

// TestPressInThreadActsForParentChannel: a button on a message inside a
// thread (a private answer to a command run there) acts for the parent
// channel's org, as the command did; the message stays where it is.
func TestPressInThreadActsForParentChannel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ctx := context.Background()
	anchor, err := f.adapter.Post(ctx, bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("card")}}, ThreadName: "Incident 7"})
	require.NoError(t, err)
	inThread, err := f.adapter.Post(ctx, bot.Dest{Channel: channelID, Thread: &anchor},
		bot.Message{Text: []bot.Line{{bot.T("quiet incidents")}}, Buttons: []bot.Button{{Action: bot.ActNotifyNow, Label: "Notify now", Value: "7"}}})
	require.NoError(t, err)
	m, ok := f.fake.Message(inThread.Message)
	require.True(t, ok)
	require.NotEqual(t, channelID, m.ChannelID, "the message is in the thread")
	in, err := f.fake.Interact(f.fake.ComponentPayload(m, analystID, customIDWithPrefix(m, "notify_now:")))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	require.Len(t, f.h.actions, 1)
	a := f.h.actions[0]
	require.Equal(t, channelID, a.Channel, "acts for the parent channel")
	require.Equal(t, m.ChannelID, a.Message.Channel, "the message is where it is")
}

func TestDeferredAnswerIsClosedWhenTheBotNeverAnswers(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *discord.Config) { c.DeferredTimeout = 200 * time.Millisecond })
	f.start(t)
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "credits", nil))
	require.NoError(t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 5, cb.Type)
	testwait.For(t, 5*time.Second, "the deferred answer closed, no endless \"thinking...\"", func() bool {
		m, ok := f.fake.OriginalResponse(in)
		return ok && m.Content == "Done."
	}, f.fake)
}

func TestGatewayReconnectsWhenDiscordDropsIt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	f.fake.DropSessions()
	testwait.For(t, 15*time.Second, "a new session after the drop", func() bool { return f.fake.Identifies() >= 2 && f.fake.Sessions() == 1 }, f.fake)
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 1, f.fake.MaxSessions())
}

// TestGatewayResumesWhenDiscordAsksToReconnect: on op 7 RECONNECT the
// adapter's gateway resumes its session (no new IDENTIFY, so no READY and
// no GUILD_CREATE again), and an interaction dispatched while it
// reconnects still reaches it, replayed on the RESUME.
func TestGatewayResumesWhenDiscordAsksToReconnect(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	require.Equal(t, 1, f.fake.Reconnect())
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
	require.NoError(t, err)
	testwait.For(t, 15*time.Second, "the session resumed", func() bool { return f.fake.Resumes() == 1 && f.fake.Sessions() == 1 }, f.fake)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	in, err = f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 1, f.fake.Identifies())
	require.Empty(t, f.fake.Violations())
}

func TestMalformedInteractionsAreNotFatal(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	srv := serve(t, f.adapter)
	tests := []struct {
		body   string
		status int
	}{
		{`{"id":"1","token":"t","type":2}`, 400},
		{`{"id":"2","token":"t","type":3,"data":null}`, 200},
		{`{"id":"3","token":"t","type":5,"data":{"custom_id":"not-a-form"}}`, 200},
		{`{"id":"4","token":"t","type":42}`, 200},
	}
	for _, tt := range tests {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		status, out := post(t, srv, []byte(tt.body), ts, sign(f.priv, ts, []byte(tt.body)))
		require.Equal(t, tt.status, status, tt.body)
		if status == 200 {
			require.Contains(t, string(out), `"flags":64`, tt.body)
		}
	}
	// The gateway survives the same payloads and keeps answering.
	for _, raw := range []string{`{"id":"5","token":"t5","type":2}`, `{"id":"6","token":"t6","type":3,"data":null}`} {
		_, err := f.fake.InteractRaw([]byte(raw))
		require.NoError(t, err)
	}
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 1, f.fake.Sessions())
	require.Equal(t, 1, f.fake.Identifies())
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestPrivateAnswerAfterPublicDeferral: the first followup after a deferral
// edits the "thinking" message, ignoring its flags, so a private answer to a
// publicly deferred command must never go there: the thinking message is
// closed with a neutral note and the answer follows as an ephemeral message.
func TestPrivateAnswerAfterPublicDeferral(t *testing.T) {
	t.Parallel()
	f := setup(t)
	respond := make(chan bot.Responder, 1)
	f.h.onCommand = func(c bot.Command) bot.Ack {
		respond <- c.Respond
		return bot.Ack{} // deferred publicly
	}
	f.start(t)
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 5, cb.Type)
	require.NoError(t, (<-respond).Respond(context.Background(), bot.Message{Text: []bot.Line{{bot.U("secret answer")}}}, true))

	orig, ok := f.fake.OriginalResponse(in)
	require.True(t, ok)
	require.NotContains(t, orig.Content, "secret answer", "the public message never carries the private answer")
	require.Zero(t, orig.Flags&64, "the deferred message stays public")
	var private []discordfake.Message
	for _, m := range f.fake.FollowupMessages(in) {
		if strings.Contains(m.Content, "secret answer") {
			private = append(private, m)
		}
	}
	require.Len(t, private, 1)
	require.Equal(t, 64, private[0].Flags&64, "the answer is ephemeral")
}

// slowReplays is a replay cache that answers only when its context ends.
type slowReplays struct{}

func (slowReplays) Seen(ctx context.Context, _ string) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// TestSlowReplayCheckLeavesTimeToAnswer: Discord allows 3 seconds for an
// interaction's answer. With the replay check's database slow, the check
// gives up after replayWait and the answer (here deferred, the handler
// being slow too) still goes in time. The check waited up to its store's
// 2 s before AckTimeout's 2 s even began: 4 s, and Discord showed "The
// application did not respond".
func TestSlowReplayCheckLeavesTimeToAnswer(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *discord.Config) { c.Replays = slowReplays{}; c.AckTimeout = 500 * time.Millisecond })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.h.mu.Lock()
	f.h.onCommand = func(bot.Command) bot.Ack { <-release; return bot.Ack{Private: true} }
	f.h.mu.Unlock()
	srv := serve(t, f.adapter)
	_, raw, err := f.fake.Prepare(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
	require.NoError(t, err)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	start := time.Now()
	status, body := post(t, srv, raw, ts, sign(f.priv, ts, raw))
	took := time.Since(start)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Less(t, took, 1800*time.Millisecond, "replayWait (300 ms) and AckTimeout (500 ms), not the store's seconds")
	require.JSONEq(t, `{"type":5,"data":{"flags":64}}`, string(body), "deferred")
}

// interactionCount reads threatdesk_discord_interactions_total{kind}.
func interactionCount(t testing.TB, reg prometheus.Gatherer, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_discord_interactions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestUserInstalledInteractionIsRefused: /experts through a member's own
// install of the app (authorizing_integration_owners names only the
// user) is not the server's: it was handed to the bot as the server's
// org, past the server's say over /experts and after it removed the app
// (from a review). The server's install, alone or beside the user's, acts.
func TestUserInstalledInteractionIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	run := func(owners map[string]string) discordfake.Callback {
		t.Helper()
		p := f.fake.CommandPayload(channelID, analystID, "experts", "credits", nil)
		p["authorizing_integration_owners"] = owners
		in, err := f.fake.Interact(p)
		require.NoError(t, err)
		cb, err := in.Wait(5 * time.Second)
		require.NoError(t, err)
		return cb
	}
	cb := run(map[string]string{"1": analystID})
	require.Equal(t, 4, cb.Type)
	require.Contains(t, string(cb.Data), "works where a server installed it")
	f.h.mu.Lock()
	require.Empty(t, f.h.commands, "nothing was handed to the bot")
	f.h.mu.Unlock()
	run(map[string]string{"0": "1000000000000000999"}) // another server's install
	f.h.mu.Lock()
	require.Empty(t, f.h.commands)
	f.h.mu.Unlock()

	run(map[string]string{"0": guildID, "1": analystID})
	require.Equal(t, guildID, f.h.lastCommand(t).User.Workspace)
	require.Equal(t, float64(2), interactionCount(t, f.reg, "user_install"))
}

// TestStaleInteractionIsDropped: an interaction a resumed session replays
// after Discord's 3 seconds (the person was shown "The application did
// not respond") is dropped, not worked: it opened the case the person was
// told failed, and they asked again (from a review). A fresh one is
// worked.
func TestStaleInteractionIsDropped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	const discordEpoch = 1420070400000
	old := f.fake.CommandPayload(channelID, analystID, "experts", "credits", nil)
	old["id"] = strconv.FormatInt((time.Now().Add(-30*time.Second).UnixMilli()-discordEpoch)<<22, 10)
	in, err := f.fake.Interact(old)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return interactionCount(t, f.reg, "stale") == 1 }, 10*time.Second, 10*time.Millisecond)
	_, err = in.Wait(100 * time.Millisecond)
	require.Error(t, err, "no answer: Discord failed it already")

	in, err = f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "credits", nil))
	require.NoError(t, err)
	_, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	require.Len(t, f.h.commands, 1, "only the fresh one was worked")
}

// TestPostStaysInItsServer: one bot token reaches every server the bot is
// in. A channel id of another customer's server in an org's config
// carried the org's cases there (from a review): a post or edit for a
// server goes only to its own channels, and the error says what to fix.
func TestPostStaysInItsServer(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const otherGuild, otherChan = "1000000000000000501", "1000000000000000502"
	f.fake.JoinGuild(discordfake.Guild{ID: otherGuild, Channels: []string{otherChan}})
	f.start(t)
	ctx := context.Background()
	_, err := f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: otherChan},
		bot.Message{Title: "Contoso: hands-on-keyboard attack on ws-017", ThreadName: "EOD-1"})
	var de *bot.DeliveryError
	require.ErrorAs(t, err, &de)
	require.Equal(t, bot.Permanent, de.Kind)
	require.Contains(t, de.Operator, "another Discord server")
	require.Empty(t, f.fake.Messages(otherChan))

	ref, err := f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}, bot.Message{Title: "In its own server", ThreadName: "EOD-2"})
	require.NoError(t, err)
	_, err = f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: ref.Message, Thread: &ref}, bot.Message{Title: "In its thread"})
	require.NoError(t, err)
	require.NoError(t, f.adapter.Update(ctx, ref, bot.Message{Title: "Edited in its own server"}))
	other := ref
	other.Workspace = otherGuild
	require.ErrorAs(t, f.adapter.Update(ctx, other, bot.Message{Title: "Edited for another server"}), &de)
}
