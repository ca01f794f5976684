package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestServeWiresTheCaseTracker: serve wires "/experts web" to the web
// adapter and the adapter to the bot: the link answered over Socket Mode
// opens a session on the server's own pages, which show the case an
// analyst opened; the link's token appears in no log line.
func TestServeWiresTheCaseTracker(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"}, {ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"}},
	})
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(e2eConfig), 0o600))
	opts := fake.Options()
	env := map[string]string{
		"DATABASE_URL": dbURL, "THREATDESK_HTTP_ADDR": freeAddr(t), "THREATDESK_CONFIG": cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		"SLACK_BOT_TOKEN":       opts.BotToken, "SLACK_APP_TOKEN": opts.AppToken, "SLACK_API_URL": fake.APIURL(),
	}
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil))) }()
	var token string
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		require.NotEmpty(t, token)
		require.NotContains(t, logs.w.(*bytes.Buffer).String(), token, "the sign-in token is never logged")
	})
	base := "http://" + env["THREATDESK_HTTP_ADDR"]
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnected(wctx))

	_, err = fake.Command(ctx, slackfake.SlashCommand{Text: "ask is this lateral movement?", UserID: "U0ANALYST1", ChannelID: "C0CONTOSOSOC"})
	require.NoError(t, err)
	testwait.For(t, 20*time.Second, "the case is open", func() bool { return anyMessage(fake.Messages("C0EXPERTDESK"), "EOD-1") }, fake)

	ack, err := fake.Command(ctx, slackfake.SlashCommand{Text: "web", UserID: "U0EXPERT1", ChannelID: "C0EXPERTDESK"})
	require.NoError(t, err)
	var answer struct {
		ResponseType string `json:"response_type"`
	}
	require.NoError(t, json.Unmarshal(ack.Payload, &answer))
	require.Equal(t, "ephemeral", answer.ResponseType)
	m := regexp.MustCompile(`(http://[^|]+/web/login/([A-Za-z0-9_-]+))\|`).FindStringSubmatch(strings.ReplaceAll(string(ack.Payload), `\u003c`, "<"))
	require.NotNil(t, m, string(ack.Payload))
	require.True(t, strings.HasPrefix(m[1], base), "THREATDESK_PUBLIC_URL unset: the link is on the HTTP address")
	token = m[2]

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	page := func(u string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	// Opening the link asks; pressing Sign in (a POST from the page, with
	// its Origin and form token) signs in and lands on the case list.
	status, ask := page(m[1])
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, ask, "Sign in to threatdesk's case tracker as <span id=\"signin-name\">Eve</span> (<span id=\"signin-where\">the expert desk</span>)?")
	form := regexp.MustCompile(`<form method="post" action="(/web/login/[A-Za-z0-9_-]+)"><input type="hidden" name="csrf" value="([^"]+)">`).FindStringSubmatch(ask)
	require.NotNil(t, form, ask)
	req, err := http.NewRequest(http.MethodPost, base+form[1], strings.NewReader(url.Values{"csrf": {form[2]}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	require.NoError(t, err)
	list, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "Sign in lands on the case list")
	require.Equal(t, "/web/", resp.Request.URL.Path)
	require.Contains(t, string(list), "Eve · expert · every org")
	require.Contains(t, string(list), `class="ref">EOD-1<`)
	status, cs := page(base + "/web/cases/EOD-1")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, cs, "is this lateral movement?")
	require.Contains(t, cs, "Chain intact")
	status, _ = page(base + "/web/report")
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, fake.Violations())
}
