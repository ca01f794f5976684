package slackfake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// samples holds Slack's published payloads (see testdata/README.md).
const samples = "testdata/"

func setup(t *testing.T) (*slackfake.Server, *slack.Client) {
	t.Helper()
	s := slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}},
		Users:    []slackfake.User{{ID: "U1", Name: "alice", DisplayName: "Alice"}},
	})
	o := s.Options()
	return s, slack.New(o.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(o.AppToken))
}

// TestWebAPIWithSlackGo drives the fake with the real slack-go client.
func TestWebAPIWithSlackGo(t *testing.T) {
	t.Parallel()
	s, api := setup(t)
	ctx := t.Context()

	auth, err := api.AuthTestContext(ctx)
	require.NoError(t, err)
	require.Equal(t, "U0BOT", auth.UserID)
	require.Equal(t, "T0FAKE", auth.TeamID)

	ch, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("parent", false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*parent*", false, false), nil, nil)))
	require.NoError(t, err)
	require.Equal(t, "C1", ch)
	_, reply, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("child", false), slack.MsgOptionTS(ts))
	require.NoError(t, err)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("parent, edited", false))
	require.NoError(t, err)
	msgs, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: ts})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, "parent, edited", msgs[0].Text)
	require.Len(t, msgs[0].Blocks.BlockSet, 1, "an update without blocks keeps them, as Slack does")
	require.Equal(t, reply, msgs[1].Timestamp)
	require.Equal(t, ts, msgs[1].ThreadTimestamp)

	_, err = api.PostEphemeralContext(ctx, "C1", "U1", slack.MsgOptionText("psst", false))
	require.NoError(t, err)
	u, err := api.GetUserInfoContext(ctx, "U1")
	require.NoError(t, err)
	require.Equal(t, "Alice", u.Profile.DisplayName)

	view := slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Ask", false, false), CallbackID: "ask"}
	_, err = api.OpenViewContext(ctx, s.NewTrigger(), view)
	require.NoError(t, err)
	_, err = api.OpenViewContext(ctx, "made-up", view)
	require.ErrorContains(t, err, "invalid_trigger_id")

	_, _, err = api.PostMessageContext(ctx, "C404", slack.MsgOptionText("x", false))
	require.ErrorContains(t, err, "channel_not_found")

	s.FailNext("chat.postMessage", 1, slackfake.Failure{Status: 429, RetryAfter: 3 * time.Second})
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 3*time.Second, rl.RetryAfter)

	s.FailNext("chat.postMessage", 1, slackfake.Failure{Status: 503})
	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	var sc slack.StatusCodeError
	require.ErrorAs(t, err, &sc)
	require.Equal(t, 503, sc.Code)

	require.Len(t, s.Calls("chat.postMessage"), 5)
	bad := slack.New("xoxb-wrong", slack.OptionAPIURL(s.APIURL()))
	_, err = bad.AuthTestContext(ctx)
	require.ErrorContains(t, err, "invalid_auth")
}

// TestSocketModeHello checks the fake's hello against Slack's own and that
// apps.connections.open takes the app-level token only.
func TestSocketModeHello(t *testing.T) {
	t.Parallel()
	s, api := setup(t)
	ctx := t.Context()
	_, url, err := api.StartSocketModeContext(ctx)
	require.NoError(t, err)
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	require.NoError(t, err)
	defer ws.Close()
	var got map[string]any
	require.NoError(t, ws.ReadJSON(&got))

	raw, err := os.ReadFile(samples + "slack-socketmode-hello.json")
	require.NoError(t, err)
	var want map[string]any
	require.NoError(t, json.Unmarshal(raw, &want))
	require.Equal(t, keys(want), keys(got))
	require.Equal(t, keys(want["debug_info"].(map[string]any)), keys(got["debug_info"].(map[string]any)))

	bot := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(s.Options().BotToken))
	_, _, err = bot.StartSocketModeContext(ctx)
	require.ErrorContains(t, err, "not_allowed_token_type")
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSignerVectors checks the signer against Slack's published example.
func TestSignerVectors(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(samples + "slack-slash-command.txt")
	require.NoError(t, err)
	require.Equal(t, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
		slackfake.Signer{Secret: "8f742231b10e8888abcd99yyyzzz85a5"}.Sign("1531420618", body))
	// slack-go verifies what the signer signs.
	g := slackfake.Signer{Secret: "s3cret"}
	req, err := g.Request(t.Context(), "http://127.0.0.1/", "application/json", []byte(`{"a":1}`), time.Now())
	require.NoError(t, err)
	sv, err := slack.NewSecretsVerifier(req.Header, "s3cret")
	require.NoError(t, err)
	_, _ = sv.Write([]byte(`{"a":1}`))
	require.NoError(t, sv.Ensure())
}

// TestTriggerExpires: a trigger_id older than its 3 seconds cannot open a view.
func TestTriggerExpires(t *testing.T) {
	t.Parallel()
	var violations []string
	s := slackfake.New(t, slackfake.Options{TriggerTTL: 10 * time.Millisecond, OnViolation: func(m string) { violations = append(violations, m) }})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	trig := s.NewTrigger()
	time.Sleep(20 * time.Millisecond)
	_, err := api.OpenViewContext(t.Context(), trig, slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Ask", false, false)})
	require.ErrorContains(t, err, "expired_trigger_id")
	require.Len(t, violations, 1)
}

// TestAckPayloadIsChecked: a slash command's answer carried in the Socket
// Mode ack is held to the rules of a posted message.
func TestAckPayloadIsChecked(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	s := slackfake.New(t, slackfake.Options{OnViolation: func(m string) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, m)
	}})
	o := s.Options()
	api := slack.New(o.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(o.AppToken))
	ctx := t.Context()
	_, url, err := api.StartSocketModeContext(ctx)
	require.NoError(t, err)
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	require.NoError(t, err)
	defer ws.Close()
	var hello map[string]any
	require.NoError(t, ws.ReadJSON(&hello))
	go func() {
		for {
			var env map[string]any
			if err := ws.ReadJSON(&env); err != nil {
				return
			}
			id, _ := env["envelope_id"].(string)
			_ = ws.WriteJSON(map[string]any{"envelope_id": id, "payload": map[string]any{"text": "hey <!channel>"}})
		}
	}()
	_, err = s.Command(ctx, slackfake.SlashCommand{Text: "help", UserID: "U1", ChannelID: "C1"})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 1)
	require.Contains(t, violations[0], "pings a whole channel")
}

// TestResponseURLLimits: a response URL takes five answers, as Slack's does;
// a sixth, or a URL the fake never issued, is refused.
func TestResponseURLLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	s := slackfake.New(t, slackfake.Options{OnViolation: func(m string) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, m)
	}})
	answer := func(url string) int {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"response_type":"ephemeral","text":"ok"}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	url := s.NewResponseURL()
	for range 5 {
		require.Equal(t, http.StatusOK, answer(url))
	}
	require.Equal(t, http.StatusNotFound, answer(url))
	require.Equal(t, http.StatusNotFound, answer(s.URL()+"/response/R999"))
	require.Len(t, s.Responses(), 5)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 2)
	require.Contains(t, violations[0], "used_url")
	require.Contains(t, violations[1], "invalid_url")
}

// TestMetadataAndHistory: a message keeps the metadata it was posted with;
// conversations.history (top-level messages, newest first) and
// conversations.replies (parent, then replies oldest first) return it only
// with include_all_metadata, and page with limit and cursor.
func TestMetadataAndHistory(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	s := slackfake.New(t, slackfake.Options{Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}}, OnViolation: func(v string) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, v)
	}})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	ctx := t.Context()
	meta := func(key string) slack.MsgOption {
		return slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "test_part", EventPayload: map[string]any{"key": key}})
	}
	_, parent, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("parent", false), meta("p"))
	require.NoError(t, err)
	var replies []string
	for i := range 3 {
		_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(parent), meta(string(rune('a'+i))))
		require.NoError(t, err)
		replies = append(replies, ts)
	}
	_, last, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("last", false))
	require.NoError(t, err)
	m, ok := s.Message("C1", parent)
	require.True(t, ok)
	require.JSONEq(t, `{"event_type":"test_part","event_payload":{"key":"p"}}`, string(m.Metadata))

	h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1"})
	require.NoError(t, err)
	require.Len(t, h.Messages, 2, "top-level messages only")
	require.Equal(t, last, h.Messages[0].Timestamp, "newest first")
	require.Empty(t, h.Messages[1].Metadata.EventType, "no metadata unless asked")

	h, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 1, IncludeAllMetadata: true})
	require.NoError(t, err)
	require.Len(t, h.Messages, 1)
	require.True(t, h.HasMore)
	h, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 1, IncludeAllMetadata: true,
		Cursor: h.ResponseMetaData.NextCursor})
	require.NoError(t, err)
	require.Equal(t, parent, h.Messages[0].Timestamp)
	require.Equal(t, "p", h.Messages[0].Metadata.EventPayload["key"])
	require.False(t, h.HasMore)

	h, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Oldest: parent})
	require.NoError(t, err)
	require.Len(t, h.Messages, 1, "oldest is exclusive")

	msgs, more, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: parent, Limit: 3, IncludeAllMetadata: true})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{parent, replies[0], replies[1]}, []string{msgs[0].Timestamp, msgs[1].Timestamp, msgs[2].Timestamp})
	require.Equal(t, "a", msgs[1].Metadata.EventPayload["key"])
	msgs, more, _, err = api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: parent, Limit: 3, Cursor: next})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, msgs, 1)
	require.Equal(t, replies[2], msgs[0].Timestamp)
	require.Empty(t, msgs[0].Metadata.EventType)

	_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false), slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "no_payload"}))
	require.ErrorContains(t, err, "invalid_metadata_format")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 1)
	require.Contains(t, violations[0], "metadata")
}

// TestHoldAnswer: the fake stores a post and withholds its answer: the
// client never learns the message's ts, though the message is there.
func TestHoldAnswer(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		s, _ := setup(t)
		o := s.Options()
		api := slack.New(o.BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionHTTPClient(&http.Client{Timeout: 300 * time.Millisecond}))
		held := s.HoldAnswer(func(m slackfake.Message) bool { return m.Text == "held" }, drop)
		_, _, err := api.PostMessageContext(t.Context(), "C1", slack.MsgOptionText("not held", false))
		require.NoError(t, err)
		_, _, err = api.PostMessageContext(t.Context(), "C1", slack.MsgOptionText("held", false))
		require.Error(t, err, "drop %v: no answer", drop)
		m := <-held
		require.Equal(t, "held", m.Text)
		require.Len(t, s.Messages("C1"), 2, "the message is stored all the same")
		calls := s.Calls("chat.postMessage")
		require.Zero(t, calls[1].Status, "recorded as unanswered")
		_, _, err = api.PostMessageContext(t.Context(), "C1", slack.MsgOptionText("held", false))
		require.NoError(t, err, "a hold catches one post")
	}
}

// TestSendTo: with two Socket Mode connections open (two replicas), an
// envelope goes on the connection the test names, oldest first, and is
// acknowledged there.
func TestSendTo(t *testing.T) {
	t.Parallel()
	s, api := setup(t)
	ctx := t.Context()
	names := []string{"first", "second"}
	got := make(chan string, 4)
	for i, name := range names {
		_, url, err := api.StartSocketModeContext(ctx)
		require.NoError(t, err)
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = ws.Close() })
		var hello map[string]any
		require.NoError(t, ws.ReadJSON(&hello))
		require.Equal(t, float64(i+1), hello["num_connections"])
		go func() {
			for {
				var env map[string]any
				if err := ws.ReadJSON(&env); err != nil {
					return
				}
				id, _ := env["envelope_id"].(string)
				got <- name + " " + id
				_ = ws.WriteJSON(map[string]any{"envelope_id": id})
			}
		}()
	}
	for n, conn := range []int{1, 0, 1} {
		env := slackfake.Envelope{EnvelopeID: fmt.Sprintf("env-%d", n), Type: "events_api", Payload: map[string]any{}}
		ack, err := s.SendTo(ctx, conn, env, nil)
		require.NoError(t, err)
		require.Equal(t, env.EnvelopeID, ack.EnvelopeID)
		require.Equal(t, names[conn]+" "+env.EnvelopeID, <-got)
	}
	_, err := s.SendTo(ctx, 2, slackfake.Envelope{Type: "events_api"}, nil)
	require.ErrorContains(t, err, "no Socket Mode connection 2: 2 open")
}

// TestHistoryOfADistributedApp: an app distributed outside the Marketplace
// reads conversations.history and conversations.replies once per interval
// each in a workspace (Slack: a minute), 15 messages a page at most.
func TestHistoryOfADistributedApp(t *testing.T) {
	t.Parallel()
	s := slackfake.New(t, slackfake.Options{Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}}, HistoryInterval: time.Hour})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	ctx := t.Context()
	_, parent, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("parent", false))
	require.NoError(t, err)
	for range 20 {
		_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(parent))
		require.NoError(t, err)
	}
	replies, more, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parent, Limit: 200})
	require.NoError(t, err)
	require.Len(t, replies, 15, "15 at most, whatever limit asks")
	require.True(t, more)
	_, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1"})
	require.NoError(t, err, "history has an allowance of its own")

	_, _, _, err = api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parent})
	var rl *slack.RateLimitedError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, time.Hour, rl.RetryAfter)
	require.Equal(t, 1, s.RateLimited())
}
