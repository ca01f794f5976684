package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

func httpPost(ctx context.Context, url, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// httpFixture serves the adapter's HTTP mode on a real socket.
func httpFixture(t *testing.T) (fixture, *httptest.Server) {
	t.Helper()
	f := setup(t, setupOpts{})
	srv := httptest.NewServer(f.adapter.Handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// TestSignatureVectors checks the fake's signer against the published vectors.
func TestSignatureVectors(t *testing.T) {
	t.Parallel()
	body := readSample(t, "slack-slash-command.txt")
	cases := []struct {
		name, secret, ts, body, want string
	}{
		{"slack docs example", "8f742231b10e8888abcd99yyyzzz85a5", "1531420618", string(body), "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"},
		{"slack-go vector", "e6b19c573432dcc6b075501d51b51bb8", "1531431954",
			`{"token":"aF5ynEYQH0dFN9imlgcADxDB","team_id":"XXXXXXXXX","api_app_id":"YYYYYYYYY","event":{"type":"app_mention","user":"AAAAAAAAA","text":"<@EEEEEEEEE> hello world","client_msg_id":"477cc591-ch73-a14z-4db8-g0cd76321bec","ts":"1531431954.000073","channel":"TTTTTTTTT","event_ts":"1531431954.000073"},"type":"event_callback","event_id":"TvBP7LRED7","event_time":1531431954,"authed_users":["EEEEEEEEE"]}`,
			"v0=adada4ed31709aef585c2580ca3267678c6a8eaeb7e0c1aca3ee57b656886b2c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, slackfake.Signer{Secret: tc.secret}.Sign(tc.ts, []byte(tc.body)))
		})
	}
	require.Len(t, body, 362)
}

func TestHTTPSignatures(t *testing.T) {
	t.Parallel()
	f, srv := httpFixture(t)
	signer := f.fake.Signer()
	cmdURL := srv.URL + "/slack/commands"
	form := "application/x-www-form-urlencoded"
	fresh := func() []byte {
		return slackfake.FormBody(f.fake.CommandPayload(slackfake.SlashCommand{Text: "status EOD-1", UserID: analyst, ChannelID: socChannel}))
	}

	// Valid.
	req, err := signer.Request(f.ctx, cmdURL, form, fresh(), time.Now())
	require.NoError(t, err)
	code, _ := do(t, req)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, f.rec.Commands(), 1)
	require.Equal(t, []string{"EOD-1"}, f.rec.Commands()[0].Args)

	// Replayed: the very same signed request again.
	body := fresh()
	at := time.Now()
	req, _ = signer.Request(f.ctx, cmdURL, form, body, at)
	code, _ = do(t, req)
	require.Equal(t, http.StatusOK, code)
	req, _ = signer.Request(f.ctx, cmdURL, form, body, at)
	code, resp := do(t, req)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Empty(t, strings.TrimSpace(string(resp)), "no detail")
	require.Len(t, f.rec.Commands(), 2)

	// The published example, replayed as sent in 2018: stale, refused.
	sample := readSample(t, "slack-slash-command.txt")
	req, _ = http.NewRequestWithContext(f.ctx, http.MethodPost, cmdURL, bytes.NewReader(sample))
	req.Header.Set("Content-Type", form)
	req.Header.Set("X-Slack-Request-Timestamp", "1531420618")
	req.Header.Set("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
	code, _ = do(t, req)
	require.Equal(t, http.StatusUnauthorized, code)

	cases := []struct {
		name   string
		signer slackfake.Signer
		at     time.Time
		tamper bool
		drop   bool
	}{
		{name: "wrong secret", signer: slackfake.Signer{Secret: "e6b19c573432dcc6b075501d51b51boo"}, at: time.Now()},
		{name: "tampered body", signer: signer, at: time.Now(), tamper: true},
		{name: "expired (6 minutes old)", signer: signer, at: time.Now().Add(-6 * time.Minute)},
		{name: "from the future", signer: signer, at: time.Now().Add(6 * time.Minute)},
		{name: "unsigned", signer: signer, at: time.Now(), drop: true},
	}
	for _, tc := range cases {
		body := fresh()
		req, err := tc.signer.Request(f.ctx, cmdURL, form, body, tc.at)
		require.NoError(t, err)
		if tc.tamper {
			req, _ = signer.Request(f.ctx, cmdURL, form, body, tc.at)
			sig := req.Header.Get("X-Slack-Signature")
			req, _ = http.NewRequestWithContext(f.ctx, http.MethodPost, cmdURL, bytes.NewReader(bytes.Replace(body, []byte("EOD-1"), []byte("EOD-2"), 1)))
			req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(tc.at.Unix(), 10))
			req.Header.Set("X-Slack-Signature", sig)
		}
		if tc.drop {
			req.Header.Del("X-Slack-Signature")
		}
		code, resp := do(t, req)
		require.Equal(t, http.StatusUnauthorized, code, tc.name)
		require.Empty(t, strings.TrimSpace(string(resp)), tc.name)
	}
	require.Len(t, f.rec.Commands(), 2, "nothing unsigned reached the bot")

	// Too big: refused before anything is parsed.
	big := append(fresh(), []byte("&pad="+strings.Repeat("x", 2<<20))...)
	req, _ = signer.Request(f.ctx, cmdURL, form, big, time.Now())
	code, _ = do(t, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
}

func TestHTTPEvents(t *testing.T) {
	t.Parallel()
	f, srv := httpFixture(t)
	signer := f.fake.Signer()
	evURL := srv.URL + "/slack/events"

	// url_verification, with Slack's own example.
	req, err := signer.Request(f.ctx, evURL, "application/json", readSample(t, "slack-url-verification.json"), time.Now())
	require.NoError(t, err)
	code, body := do(t, req)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`, string(body))

	// A thread reply, delivered, then retried twice by Slack.
	anchor, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Title: "EOD-3"})
	require.NoError(t, err)
	_, cb := f.fake.UserMessage(deskChannel, anchor.Message, expert, "on it")
	raw, err := json.Marshal(cb)
	require.NoError(t, err)
	for retry := range 3 {
		req, _ := signer.Request(f.ctx, evURL, "application/json", raw, time.Now().Add(time.Duration(retry)*time.Second))
		if retry > 0 {
			req.Header.Set("X-Slack-Retry-Num", strconv.Itoa(retry))
			req.Header.Set("X-Slack-Retry-Reason", "http_timeout")
		}
		code, _ := do(t, req)
		require.Equal(t, http.StatusOK, code)
	}
	// The documented sample reply, through HTTP.
	req, _ = signer.Request(f.ctx, evURL, "application/json", readSample(t, "slack-event-message-thread-reply.json"), time.Now())
	code, _ = do(t, req)
	require.Equal(t, http.StatusOK, code)

	// Handed over before each 200: the retried reply three times under one
	// key (the handler stores it once), the sample once.
	require.Len(t, f.rec.Replies(), 4)
	require.Len(t, f.rec.Distinct(), 2)
}

func TestHTTPInteractionsAndCommandAck(t *testing.T) {
	t.Parallel()
	f, srv := httpFixture(t)
	signer := f.fake.Signer()
	f.rec.onCmd = func(c bot.Command) bot.Ack {
		return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("Status of "), bot.U(strings.Join(c.Args, " "))}}}, Private: true}
	}
	req, _ := signer.Request(f.ctx, srv.URL+"/slack/commands", "application/x-www-form-urlencoded",
		slackfake.FormBody(f.fake.CommandPayload(slackfake.SlashCommand{Text: "status &lt;!here&gt;", UserID: analyst, ChannelID: socChannel})), time.Now())
	code, body := do(t, req)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"response_type":"ephemeral"`)
	require.Contains(t, texts(t, body), "&lt;!here&gt;")
	require.NotContains(t, texts(t, body), "<!here>")

	card, err := f.adapter.Post(f.ctx, bot.Dest{Channel: deskChannel}, bot.Message{Title: "EOD-4", Buttons: []bot.Button{{Action: bot.ActTake, Label: "Take", Value: "EOD-4"}}})
	require.NoError(t, err)
	p, err := f.fake.Press(deskChannel, card.Message, expert, "take")
	require.NoError(t, err)
	ib, err := slackfake.InteractionBody(p)
	require.NoError(t, err)
	req, _ = signer.Request(f.ctx, srv.URL+"/slack/interactions", "application/x-www-form-urlencoded", ib, time.Now())
	code, _ = do(t, req)
	require.Equal(t, http.StatusOK, code)
	acts := f.rec.Actions()
	require.Len(t, acts, 1)
	require.Equal(t, bot.ActTake, acts[0].Action)
	require.Equal(t, "EOD-4", acts[0].Value)

	// The view submission sample with inline errors.
	f.rec.onSubmit = func(bot.Submission) bot.SubmitAck {
		return bot.SubmitAck{Errors: map[string]string{"multi-line": "Too vague"}}
	}
	var vs map[string]any
	require.NoError(t, json.Unmarshal(readSample(t, "slack-view-submission.json"), &vs))
	ib, _ = slackfake.InteractionBody(vs)
	req, _ = signer.Request(f.ctx, srv.URL+"/slack/interactions", "application/x-www-form-urlencoded", ib, time.Now())
	code, body = do(t, req)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"response_action":"errors","errors":{"multi-line":"Too vague"}}`, string(body))
	require.Equal(t, "No onions", f.rec.Subs()[0].Values["multi-line"])

	// Unknown paths and methods.
	resp, err := http.Get(srv.URL + "/slack/commands")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestGridGuestPressFailsClosed: a Slack Connect guest of an Enterprise
// Grid (user.team_id the grid's E… id) pressing a button in a shared
// channel while conversations.info failed was taken for the channel's
// workspace, a member of its org (from a review; commands failed closed
// already). The press is not worked and the person told why; with Slack
// answering, the guest is of their own grid.
func TestGridGuestPressFailsClosed(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true, fake: slackfake.Options{
		Channels: []slackfake.Channel{{ID: "C0SHARED", Name: "shared-soc", ExtShared: true}},
		Users:    []slackfake.User{{ID: "U0GRIDGUEST", Name: "mallory", Team: "E0OTHERGRID"}},
	}})
	card, err := f.adapter.Post(f.ctx, bot.Dest{Channel: "C0SHARED"}, bot.Message{Title: "EOD-9", Buttons: []bot.Button{{Action: bot.ActTake, Label: "Take", Value: "EOD-9"}}})
	require.NoError(t, err)
	press := func() {
		t.Helper()
		p, err := f.fake.Press("C0SHARED", card.Message, "U0GRIDGUEST", "take")
		require.NoError(t, err)
		_, err = f.fake.Interactive(f.ctx, p)
		require.NoError(t, err)
	}
	f.fake.FailNext("conversations.info", 1, slackfake.Failure{Status: 503})
	press()
	require.True(t, testwait.Until(10*time.Second, func() bool {
		for _, r := range f.fake.Responses() {
			if strings.Contains(r.Text, "could not check with Slack which workspace you belong to") {
				return true
			}
		}
		return false
	}, f.fake), "told why")
	require.Empty(t, f.rec.Actions(), "not worked")

	press()
	require.True(t, testwait.Until(10*time.Second, func() bool { return len(f.rec.Actions()) == 1 }, f.fake))
	require.Equal(t, "E0OTHERGRID", f.rec.Actions()[0].User.Workspace, "a guest of their own grid")
}

// TestSSLCheckIsAnswered: Slack checks a distributed app's certificate by
// posting ssl_check=1 (no command) to its command URL; it was refused as
// unsigned, or worked as an empty command (from a review). It gets 200
// and nothing is done.
func TestSSLCheckIsAnswered(t *testing.T) {
	t.Parallel()
	f, srv := httpFixture(t)
	resp, err := http.Post(srv.URL+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("ssl_check=1&token=deprecated-verification-token"))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, f.rec.Commands())
	// A command is still signed.
	resp, err = http.Post(srv.URL+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("ssl_check=1&command=%2Fexperts&text=help"))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}
