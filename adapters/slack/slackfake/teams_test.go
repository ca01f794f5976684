package slackfake_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// twoTeams is a fake with a customer workspace beside the primary one, and
// an app whose redirect URL is a test server that records the callback.
func twoTeams(t *testing.T) (*slackfake.Server, *httptest.Server, chan url.Values) {
	t.Helper()
	got := make(chan url.Values, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		_, _ = io.WriteString(w, "installed")
	}))
	t.Cleanup(app.Close)
	s := slackfake.New(t, slackfake.Options{
		RedirectURI: app.URL + "/slack/oauth/callback",
		Teams:       []slackfake.Team{{ID: "T0CUST", Name: "Customer"}},
		Channels: []slackfake.Channel{
			{ID: "C0DESK", Name: "desk"},
			{ID: "C0CUSTSOC", Name: "soc", Team: "T0CUST"},
		},
		Users: []slackfake.User{{ID: "U0CUST", Name: "carol", Team: "T0CUST"}},
	})
	return s, app, got
}

func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

// TestAddToSlackAndTeamTokens installs the app in a second workspace
// through OAuth v2 and checks that each token sees only its own team's
// channels, users and triggers, as Slack does.
func TestAddToSlackAndTeamTokens(t *testing.T) {
	t.Parallel()
	s, app, got := twoTeams(t)
	ctx := t.Context()
	o := s.Options()
	redirect := app.URL + "/slack/oauth/callback"
	authorize := s.AuthorizeURL() + "?" + url.Values{"client_id": {o.ClientID}, "scope": {"commands,chat:write"},
		"redirect_uri": {redirect}, "state": {"st-1"}}.Encode()

	resp, err := s.Approve(browser(t), authorize, "T0CUST", "U0CUST")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	q := <-got
	require.Equal(t, "st-1", q.Get("state"))
	code := q.Get("code")
	require.NotEmpty(t, code)

	// The wrong secret, then the right one; the code works once.
	_, err = slack.GetOAuthV2ResponseContext(ctx, http.DefaultClient, o.ClientID, "wrong", code, redirect, slack.OAuthOptionAPIURL(s.APIURL()))
	require.ErrorContains(t, err, "bad_client_secret")
	res, err := slack.GetOAuthV2ResponseContext(ctx, http.DefaultClient, o.ClientID, o.ClientSecret, code, redirect, slack.OAuthOptionAPIURL(s.APIURL()))
	require.NoError(t, err)
	require.Equal(t, "T0CUST", res.Team.ID)
	require.Equal(t, "bot", res.TokenType)
	require.Equal(t, "U0CUST", res.AuthedUser.ID)
	require.Equal(t, s.BotUser("T0CUST"), res.BotUserID)
	_, err = slack.GetOAuthV2ResponseContext(ctx, http.DefaultClient, o.ClientID, o.ClientSecret, code, redirect, slack.OAuthOptionAPIURL(s.APIURL()))
	require.ErrorContains(t, err, "invalid_code")

	cust := slack.New(res.AccessToken, slack.OptionAPIURL(s.APIURL()))
	desk := slack.New(o.BotToken, slack.OptionAPIURL(s.APIURL()))
	auth, err := cust.AuthTestContext(ctx)
	require.NoError(t, err)
	require.Equal(t, "T0CUST", auth.TeamID)

	// Each token posts in its own team; across teams the channel is not found.
	_, _, err = cust.PostMessageContext(ctx, "C0CUSTSOC", slack.MsgOptionText("hello customer", false))
	require.NoError(t, err)
	_, _, err = desk.PostMessageContext(ctx, "C0CUSTSOC", slack.MsgOptionText("wrong token", false))
	require.ErrorContains(t, err, "channel_not_found")
	_, _, err = cust.PostMessageContext(ctx, "C0DESK", slack.MsgOptionText("wrong token", false))
	require.ErrorContains(t, err, "channel_not_found")
	_, err = desk.GetUserInfoContext(ctx, "U0CUST")
	require.ErrorContains(t, err, "user_not_found")
	msgs := s.Messages("C0CUSTSOC")
	require.Len(t, msgs, 1)
	require.Equal(t, "T0CUST", msgs[0].Team)
	require.Equal(t, s.BotUser("T0CUST"), msgs[0].User)
	posts := s.Calls("chat.postMessage")
	require.Equal(t, "T0CUST", posts[0].Team)

	// pins.add pins once.
	require.NoError(t, cust.AddPinContext(ctx, "C0CUSTSOC", slack.ItemRef{Timestamp: msgs[0].TS}))
	require.ErrorContains(t, cust.AddPinContext(ctx, "C0CUSTSOC", slack.ItemRef{Timestamp: msgs[0].TS}), "already_pinned")
	require.Len(t, s.Pinned("C0CUSTSOC"), 1)

	// Uninstalled: the token is revoked; the events name the team.
	uninstalled, revoked := s.Uninstall("T0CUST")
	require.Equal(t, "T0CUST", uninstalled["team_id"])
	require.Equal(t, "app_uninstalled", uninstalled["event"].(map[string]any)["type"])
	require.Equal(t, []any{s.BotUser("T0CUST")}, revoked["event"].(map[string]any)["tokens"].(map[string]any)["bot"])
	_, _, err = cust.PostMessageContext(ctx, "C0CUSTSOC", slack.MsgOptionText("after", false))
	require.ErrorContains(t, err, "token_revoked")
	require.Empty(t, s.TeamToken("T0CUST"))
	_, err = desk.AuthTestContext(ctx)
	require.NoError(t, err, "the primary team is untouched")
}

// TestAuthorizeRefusesAnotherRedirect checks the authorize page keeps to
// the app's redirect URL, and that Cancel sends the person back with
// error=access_denied.
func TestAuthorizeRefusesAnotherRedirect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	s := slackfake.New(t, slackfake.Options{RedirectURI: "https://td.example/slack/oauth/callback",
		OnViolation: func(m string) { mu.Lock(); violations = append(violations, m); mu.Unlock() }})
	o := s.Options()
	resp, err := http.Get(s.AuthorizeURL() + "?" + url.Values{"client_id": {o.ClientID}, "scope": {"commands"},
		"redirect_uri": {"https://evil.example/cb"}, "state": {"x"}}.Encode())
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	mu.Lock()
	require.Len(t, violations, 1)
	mu.Unlock()

	got := make(chan url.Values, 1)
	app := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.URL.Query() }))
	t.Cleanup(app.Close)
	s2 := slackfake.New(t, slackfake.Options{})
	authorize := s2.AuthorizeURL() + "?" + url.Values{"client_id": {s2.Options().ClientID}, "scope": {"commands"},
		"redirect_uri": {app.URL + "/cb"}, "state": {"st"}}.Encode()
	resp, err = s2.Deny(browser(t), authorize, "T0FAKE")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	q := <-got
	require.Equal(t, "access_denied", q.Get("error"))
	require.Equal(t, "st", q.Get("state"))
	require.Empty(t, q.Get("code"))
}
