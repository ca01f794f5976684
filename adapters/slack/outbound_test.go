package slack_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
)

func TestPostEscapesUserText(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{})
	question := "<!channel> <!here> <@U123> is this lateral movement? a&b <https://evil.example|click>"
	m := bot.Message{
		Title:    "New question from <@U123>",
		Text:     []bot.Line{{bot.B("Question: "), bot.U(question)}},
		Fields:   []bot.Field{{Label: "Requester", Value: bot.Line{bot.U("<!everyone>")}}},
		Sections: []bot.Section{{Title: "Scope", Lines: []bot.Line{{bot.U("<@U123|boss>")}}}},
		Footer:   bot.Line{bot.U("<!here>")},
		Fallback: question,
	}
	ref, err := f.adapter.Post(f.ctx, bot.Dest{Channel: socChannel}, m)
	require.NoError(t, err) // the fake fails the test on any unescaped broadcast
	got, ok := f.fake.Message(socChannel, ref.Message)
	require.True(t, ok)
	all := got.Text + "\n" + texts(t, got.Blocks)
	for _, raw := range []string{"<!channel>", "<!here>", "<@U123>", "<!everyone>", "<@U123|boss>", "<https://evil.example|click>"} {
		require.NotContains(t, all, raw)
	}
	require.Contains(t, all, "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt;")
	require.Contains(t, all, "a&amp;b")
	require.Contains(t, got.Text, "&lt;!channel&gt;", "the notification text is escaped too")
	require.Empty(t, f.fake.Violations())
}

func TestPostThreadUpdatePrivate(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{})
	anchor, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Title: "EOD-1", Text: []bot.Line{{bot.T("new")}}})
	require.NoError(t, err)
	require.Equal(t, bot.Ref{Platform: bot.Slack, Workspace: "T0FAKE", Channel: deskChannel, Message: anchor.Message}, anchor)

	note, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel, Thread: &anchor}, bot.Message{Text: []bot.Line{{bot.T("Taken by eve")}}})
	require.NoError(t, err)
	replies := f.fake.Replies(deskChannel, anchor.Message)
	require.Len(t, replies, 1)
	require.Equal(t, note.Message, replies[0].TS)

	// A Dest with only the thread set posts in the anchor's channel.
	_, err = f.adapter.Post(f.ctx, bot.Dest{Thread: &anchor}, bot.Message{Text: []bot.Line{{bot.T("second")}}})
	require.NoError(t, err)
	require.Len(t, f.fake.Replies(deskChannel, anchor.Message), 2)

	require.NoError(t, f.adapter.Update(f.ctx, anchor, bot.Message{Title: "EOD-1", Text: []bot.Line{{bot.T("in progress")}}}))
	m, _ := f.fake.Message(deskChannel, anchor.Message)
	require.Equal(t, 1, m.Edits)
	require.Contains(t, texts(t, m.Blocks), "in progress")

	require.NoError(t, f.adapter.PostPrivate(f.ctx, bot.Dest{Channel: socChannel}, analyst, bot.Message{Text: []bot.Line{{bot.T("only you")}}}))
	eph := f.fake.Messages(socChannel)
	require.Len(t, eph, 1)
	require.True(t, eph[0].Ephemeral)
	require.Equal(t, analyst, eph[0].To)

	name, err := f.adapter.UserName(f.ctx, "T0FAKE", analyst)
	require.NoError(t, err)
	require.Equal(t, "alice", name)
	name, err = f.adapter.UserName(f.ctx, "T0FAKE", expert)
	require.NoError(t, err)
	require.Equal(t, "Eve Expert", name, "real name when there is no display name")
	_, err = f.adapter.UserName(f.ctx, "T0FAKE", analyst)
	require.NoError(t, err)
	require.Len(t, f.fake.Calls("users.info"), 2, "display names are cached")

	// conversations.replies on the fake sees the thread.
	require.Len(t, f.fake.Calls("chat.postMessage"), 3)
}

func TestDeliveryErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		channel    string
		fail       *slackfake.Failure
		kind       bot.ErrorKind
		code       string
		operator   string
		retryAfter time.Duration
	}{
		{name: "unknown channel", channel: "C0NOPE", kind: bot.Permanent, code: "channel_not_found", operator: "check the channel id"},
		{name: "not a member", channel: outChannel, kind: bot.Permanent, code: "not_in_channel", operator: "invite it"},
		{name: "missing scope", channel: socChannel, fail: &slackfake.Failure{Status: 200, Error: "missing_scope"}, kind: bot.Permanent, code: "missing_scope", operator: "OAuth & Permissions"},
		{name: "invalid auth", channel: socChannel, fail: &slackfake.Failure{Status: 200, Error: "invalid_auth"}, kind: bot.Permanent, code: "invalid_auth", operator: "reinstall"},
		{name: "rate limited", channel: socChannel, fail: &slackfake.Failure{Status: 429, RetryAfter: 7 * time.Second}, kind: bot.RateLimited, code: "ratelimited", retryAfter: 7 * time.Second},
		{name: "server error", channel: socChannel, fail: &slackfake.Failure{Status: 500}, kind: bot.Temporary, code: "http_500"},
		{name: "slack internal error", channel: socChannel, fail: &slackfake.Failure{Status: 200, Error: "internal_error"}, kind: bot.Temporary, code: "internal_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, setupOpts{})
			if tc.fail != nil {
				f.fake.FailNext("chat.postMessage", 1, *tc.fail)
			}
			_, err := f.adapter.Post(f.ctx, bot.Dest{Channel: tc.channel}, bot.Message{Text: []bot.Line{{bot.T("hi")}}})
			require.Error(t, err)
			var de *bot.DeliveryError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.kind, de.Kind)
			require.Equal(t, tc.code, de.Code)
			require.Contains(t, de.Operator, tc.operator)
			kind, wait := bot.Classify(err)
			require.Equal(t, tc.kind, kind)
			require.Equal(t, tc.retryAfter, wait)
			opts := f.fake.Options()
			require.NotContains(t, err.Error(), opts.BotToken)
			require.NotContains(t, err.Error(), "xoxb-")
		})
	}
}

func TestBlockKitLimits(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{})
	long := strings.Repeat("é<ü>&", 1500) // multi-byte, and every char but two needs escaping
	var lines []bot.Line
	for i := range 80 {
		lines = append(lines, bot.Line{bot.U(fmt.Sprintf("%d %s", i, long))})
	}
	var buttons []bot.Button
	for i := range 60 {
		buttons = append(buttons, bot.Button{Action: bot.ActAskEntity, Label: strings.Repeat("L", 100), Value: fmt.Sprintf("device-%d", i)})
	}
	var fields []bot.Field
	for i := range 23 {
		fields = append(fields, bot.Field{Label: "f", Value: bot.Line{bot.U(fmt.Sprint(i, long))}})
	}
	m := bot.Message{
		Title:    strings.Repeat("T", 300),
		Severity: bot.SeverityCritical,
		Text:     lines,
		Fields:   fields,
		Sections: []bot.Section{{Title: "Devices", Lines: lines[:5], More: 12}},
		Buttons:  buttons,
		Footer:   bot.Line{bot.U(long)},
		Fallback: long + long,
	}
	ref, err := f.adapter.Post(f.ctx, bot.Dest{Channel: socChannel}, m)
	require.NoError(t, err)
	require.Empty(t, f.fake.Violations(), "the fake checks every limit")
	got, _ := f.fake.Message(socChannel, ref.Message)
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal(got.Blocks, &blocks))
	require.Len(t, blocks, 50)
	require.Equal(t, "context", blocks[49]["type"], "a note says the message was shortened")

	// A short card keeps all its buttons, 25 to a row, with unique action ids.
	ref, err = f.adapter.Post(f.ctx, bot.Dest{Channel: socChannel}, bot.Message{Title: "scope", Buttons: buttons})
	require.NoError(t, err)
	got, _ = f.fake.Message(socChannel, ref.Message)
	require.NoError(t, json.Unmarshal(got.Blocks, &blocks))
	var rows []int
	for _, b := range blocks {
		if b["type"] == "actions" {
			rows = append(rows, len(b["elements"].([]any)))
		}
	}
	require.Equal(t, []int{25, 25, 10}, rows)
	require.Empty(t, f.fake.Violations())
}

func TestFakeEnforcesLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	f := setup(t, setupOpts{fake: slackfake.Options{OnViolation: func(m string) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, m)
	}}})
	_ = f
	post := func(form map[string]string) string {
		body := slackfake.FormBody(form)
		resp, err := httpPost(f.ctx, f.fake.APIURL()+"chat.postMessage", "application/x-www-form-urlencoded", body)
		require.NoError(t, err)
		var out struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(resp, &out))
		return out.Error
	}
	tok := f.fake.Options().BotToken
	many := make([]map[string]any, 51)
	for i := range many {
		many[i] = map[string]any{"type": "divider"}
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name string
		form map[string]string
		code string
		want string
	}{
		{"51 blocks", map[string]string{"token": tok, "channel": socChannel, "text": "x", "blocks": string(manyJSON)}, "invalid_blocks", "51 blocks"},
		{"long section", map[string]string{"token": tok, "channel": socChannel, "text": "x", "blocks": `[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("a", 3001) + `"}}]`}, "invalid_blocks", "3001 characters"},
		{"broadcast", map[string]string{"token": tok, "channel": socChannel, "text": "hey <!channel>"}, "", "pings a whole channel"},
		{"thread that does not exist", map[string]string{"token": tok, "channel": socChannel, "text": "x", "thread_ts": "123.456"}, "thread_not_found", "thread_ts"},
		{"unknown channel", map[string]string{"token": tok, "channel": "C404", "text": "x"}, "channel_not_found", ""},
		{"empty message as slack-go sends it", map[string]string{"token": tok, "channel": socChannel, "text": "", "blocks": "[]"}, "no_text", "neither text nor blocks"},
		{"empty button label", map[string]string{"token": tok, "channel": socChannel, "text": "x", "blocks": `[{"type":"actions","elements":[{"type":"button","action_id":"a","text":{"type":"plain_text","text":""}}]}]`}, "invalid_blocks", "text object is empty"},
		{"bad token", map[string]string{"token": "xoxb-wrong", "channel": socChannel, "text": "x"}, "invalid_auth", ""},
	}
	for _, tc := range cases {
		mu.Lock()
		before := len(violations)
		mu.Unlock()
		require.Equal(t, tc.code, post(tc.form), tc.name)
		mu.Lock()
		got := strings.Join(violations[before:], "\n")
		mu.Unlock()
		if tc.want != "" {
			require.Contains(t, got, tc.want, tc.name)
		}
	}
}

// TestRateLimitStorm posts 3 messages to each of 4 channels while the fake
// answers a storm of 429s. The pacing (one message per second per channel)
// and retrying belong to the bot's delivery worker; here a small worker per
// channel stands in for it, driving Post directly and honouring RetryAfter.
// Every message arrives exactly once and the fake never sees two posts to
// one channel within a second.
func TestStartChecksTheToken(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{cfg: func(c *adapter.Config) { c.BotToken = "xoxb-revoked" }})
	err := f.adapter.Start(f.ctx)
	require.Error(t, err)
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.Permanent, kind)
	require.Contains(t, err.Error(), "reinstall the app")
	require.NotContains(t, err.Error(), "xoxb-revoked")

	// Slack down at start-up: started anyway.
	g := setup(t, setupOpts{})
	g.fake.FailNext("auth.test", 1, slackfake.Failure{Status: 503})
	require.NoError(t, g.adapter.Start(g.ctx))
}

// TestFindPosted: Post carries the part's key in the message metadata, and
// FindPosted finds the message by it in the channel's history or in a
// thread, asking Slack for the metadata.
func TestFindPosted(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{})
	since := time.Now()
	card, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel, Key: "td1.desk"}, bot.Message{Title: "EOD-1"})
	require.NoError(t, err)
	m, ok := f.fake.Message(deskChannel, card.Message)
	require.True(t, ok)
	require.JSONEq(t, `{"event_type":"threatdesk_part","event_payload":{"key":"td1.desk"}}`, string(m.Metadata))
	note, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel, Thread: &card, Key: "td2.desk.note"}, bot.Message{Text: []bot.Line{{bot.T("taken")}}})
	require.NoError(t, err)
	_, err = f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Text: []bot.Line{{bot.T("no key")}}})
	require.NoError(t, err)

	got, found, err := f.adapter.FindPosted(f.ctx, bot.Dest{Channel: deskChannel, Key: "td1.desk"}, since)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, card, got)
	got, found, err = f.adapter.FindPosted(f.ctx, bot.Dest{Channel: deskChannel, Thread: &card, Key: "td2.desk.note"}, since)
	require.NoError(t, err)
	require.True(t, found, "a thread reply is found in its thread")
	require.Equal(t, note.Message, got.Message)
	for _, d := range []bot.Dest{
		{Channel: deskChannel, Key: "td2.desk.note"},           // replies are not in the channel's history
		{Channel: deskChannel, Key: "td9.desk"},                // never posted
		{Channel: socChannel, Key: "td1.desk"},                 // another channel
		{Channel: deskChannel, Thread: &card, Key: "td1.desk"}, // the parent is not a reply
	} {
		_, found, err := f.adapter.FindPosted(f.ctx, d, since)
		require.NoError(t, err)
		require.False(t, found, "%+v", d)
	}
	for _, c := range append(f.fake.Calls("conversations.history"), f.fake.Calls("conversations.replies")...) {
		require.Equal(t, "1", c.Form.Get("include_all_metadata"))
		require.NotEmpty(t, c.Form.Get("oldest"))
	}

	_, _, err = f.adapter.FindPosted(f.ctx, bot.Dest{Channel: outChannel, Key: "td1.desk"}, since)
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.Permanent, kind, "a channel the app cannot read: %v", err)
}
