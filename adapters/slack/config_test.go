package slack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok socket", Config{BotToken: "xoxb-1", AppToken: "xapp-1"}, ""},
		{"ok http", Config{BotToken: "xoxb-1", SigningSecret: "s"}, ""},
		{"no bot token", Config{AppToken: "xapp-1"}, "SLACK_BOT_TOKEN is empty"},
		{"user token", Config{BotToken: "xoxp-secret-value", AppToken: "xapp-1"}, "SLACK_BOT_TOKEN must start with xoxb-"},
		{"app token swapped", Config{BotToken: "xoxb-1", AppToken: "xoxb-secret-value"}, "SLACK_APP_TOKEN must start with xapp-"},
		{"no way in", Config{BotToken: "xoxb-1"}, "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"},
		{"bad url", Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "slack.com/api"}, `SLACK_API_URL "slack.com/api" must be an http(s) URL`},
		// README: SLACK_API_URL ends in a slash. The adapter once added a
		// missing one while internal/config refused it.
		{"client id alone", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientID: "123.456"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"},
		{"client secret alone", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientSecret: "secret-value"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"},
		{"add to slack without a store", Config{BotToken: "xoxb-1", AppToken: "xapp-1", ClientID: "123.456", ClientSecret: "secret-value"}, "needs the database and THREATDESK_SECRET_KEY"},
		{"no trailing slash", Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "http://127.0.0.1:1/api"}, `SLACK_API_URL "http://127.0.0.1:1/api" must end with a slash`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, nil, nil, nopHandler{})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "secret-value", "never repeats a token")
		})
	}
	a, err := New(Config{BotToken: "xoxb-1", AppToken: "xapp-1"}, nil, nil, nopHandler{})
	require.NoError(t, err)
	require.Equal(t, DefaultAPIURL, a.cfg.APIURL, "the default base")
	require.NoError(t, Config{}.WithDefaults().Validate(), "Slack not configured is not an error")
	require.NoError(t, Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "http://127.0.0.1:1/api/"}.WithDefaults().Validate())
}

type nopHandler struct{}

func (nopHandler) HandleCommand(_ context.Context, _ bot.Command) bot.Ack { return bot.Ack{} }
func (nopHandler) HandleAction(_ context.Context, _ bot.Action) bot.Ack   { return bot.Ack{} }
func (nopHandler) HandleSubmit(_ context.Context, _ bot.Submission) bot.SubmitAck {
	return bot.SubmitAck{}
}
func (nopHandler) HandleReply(_ context.Context, _ bot.Reply) error { return nil }

// markHandler is a handler that lists one case thread to read back.
type markHandler struct {
	nopHandler
	threads []bot.ThreadMark
}

func (h markHandler) CaseThreads(context.Context, bot.Platform, time.Time, int) ([]bot.ThreadMark, error) {
	return h.threads, nil
}

func (markHandler) MarkRead(context.Context, bot.Ref, string) {}

// TestRepliesHoldTheirMarkUntilReadBack: from the adapter's creation until
// its catch-up has read the case threads back, every thread reply holds
// its thread's mark (one arriving over HTTP before Start included); a
// catch-up cut short does not count; a thread Slack says is gone does not
// hold marks after it.
func TestRepliesHoldTheirMarkUntilReadBack(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":false,"error":"thread_not_found"}`))
	}))
	defer srv.Close()
	h := markHandler{threads: []bot.ThreadMark{{Parent: bot.Ref{Platform: bot.Slack, Workspace: "T1", Channel: "C1", Message: "1700000000.000100"}, After: "1700000000.000100"}}}
	a, err := New(Config{BotToken: "xoxb-1", SigningSecret: "s", APIURL: srv.URL + "/api/"}, nil, nil, h)
	require.NoError(t, err)
	require.True(t, a.holdsMark("C2", "1700000000.000200"), "not read back yet")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.catchUp(ctx)
	require.False(t, a.caughtUp.Load(), "a catch-up cut short does not count as done")
	require.True(t, a.holdsMark("C2", "1700000000.000200"))
	a.catchUp(context.Background())
	require.True(t, a.caughtUp.Load())
	require.False(t, a.holdsMark("C2", "1700000000.000200"), "read back")
	require.False(t, a.holdsMark("C1", "1700000000.000100"), "a thread that is gone holds nothing")
}

// failingHandler refuses to store thread replies, as the bot does when its
// database cannot be reached.
type failingHandler struct{ markHandler }

func (failingHandler) HandleReply(context.Context, bot.Reply) error {
	return errors.New("thread reply not stored: threatdesk cannot reach its database")
}

// TestUnstoredReplyHoldsItsThread: a thread reply the bot could not store
// is left to Slack's redelivery, so newer replies of its thread hold its
// mark from then on (other threads do not).
func TestUnstoredReplyHoldsItsThread(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"user_id":"UBOT","team_id":"T1"}`))
	}))
	defer srv.Close()
	a, err := New(Config{BotToken: "xoxb-1", SigningSecret: "s", APIURL: srv.URL + "/api/"}, nil, nil, failingHandler{})
	require.NoError(t, err)
	a.catchUp(context.Background())
	require.False(t, a.holdsMark("C1", "1700000000.000100"))
	ev := `{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":"message","channel":"C1","channel_type":"channel","user":"U1",` +
		`"text":"kept by Slack","ts":"1700000000.000300","thread_ts":"1700000000.000100"}}`
	require.Error(t, a.handleEvent(context.Background(), "http", []byte(ev)), "not acknowledged: Slack delivers it again")
	require.True(t, a.holdsMark("C1", "1700000000.000100"), "its thread holds")
	require.False(t, a.holdsMark("C2", "1700000000.000100"))
}

// TestDistributedAppReadsHistoryPaced: Add to Slack distributes the app,
// and Slack allows a distributed app one history read a minute in a
// workspace, 15 messages a page: reads are paced a second over that.
func TestDistributedAppReadsHistoryPaced(t *testing.T) {
	t.Parallel()
	c := Config{BotToken: "xoxb-1", ClientID: "1.2"}.WithDefaults()
	require.Equal(t, 61*time.Second, c.HistoryInterval)
	require.Equal(t, 15, c.historyPageSize())
	one := Config{BotToken: "xoxb-1"}.WithDefaults()
	require.Zero(t, one.HistoryInterval, "an app of one workspace reads at Tier 3")
	require.Equal(t, findPageSize, one.historyPageSize())
	off := Config{BotToken: "xoxb-1", ClientID: "1.2", HistoryInterval: -1}.WithDefaults()
	require.Equal(t, findPageSize, off.historyPageSize(), "negative: not paced")
}

// TestAuthorTeam: in a channel shared by Slack Connect the author's own
// workspace counts, an Enterprise Grid guest's E… id included (it is no
// org's); elsewhere the install's (in a Grid, user_team is a home
// workspace or the organisation's id, not the channel's).
func TestAuthorTeam(t *testing.T) {
	t.Parallel()
	shared := outerEvent{TeamID: "T0HOST", IsExtShared: true}
	require.Equal(t, "T0GUEST", authorTeam(shared, messageEvent{UserTeam: "T0GUEST", Team: "T0HOST"}, "T0HOST"))
	require.Equal(t, "E0GRID", authorTeam(shared, messageEvent{UserTeam: "E0GRID"}, "T0HOST"), "a Grid guest")
	require.Equal(t, "T0HOST", authorTeam(shared, messageEvent{}, "T0HOST"), "nothing said: the install's")
	require.Equal(t, "T0HOST", authorTeam(outerEvent{TeamID: "T0HOST"}, messageEvent{UserTeam: "E0GRID", Team: "T0HOME"}, "T0HOST"), "not shared")
}
