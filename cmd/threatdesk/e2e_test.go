package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

const e2eConfig = `
orgs:
  - id: contoso
    name: Contoso
    tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]
    slack:
      team: T0CONTOSO
      channels: [C0CONTOSOSOC]
desk:
  slack:
    channel: C0EXPERTDESK
experts:
  slack: [U0EXPERT1]
managers:
  slack: [U0MANAGER1]
hunting:
  group_wait: 1s
`

// TestServeEndToEndOverSlack runs the real binary's serve path, configured
// only through the environment and the YAML file, against the fake Slack:
// Socket Mode connects through SLACK_API_URL, an analyst's /experts opens a
// case whose receipt and desk card are posted, and an alert from the expert
// hunting service pushed to the intake API becomes a notification card in
// the org's channel.
func TestServeEndToEndOverSlack(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{
			{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"},
		},
		Users: []slackfake.User{
			{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"},
			{ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"},
		},
	})
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(e2eConfig), 0o600))
	const ingestToken = "e2e-ingest-token-0123456789"
	opts := fake.Options()
	env := map[string]string{
		"DATABASE_URL":            dbURL,
		"THREATDESK_HTTP_ADDR":    freeAddr(t),
		"THREATDESK_CONFIG":       cfgPath,
		"THREATDESK_INGEST_TOKEN": ingestToken,
		"THREATDESK_SECRET_KEY":   "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		"SLACK_BOT_TOKEN":         opts.BotToken,
		"SLACK_APP_TOKEN":         opts.AppToken,
		"SLACK_API_URL":           fake.APIURL(),
	}
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		// No secret reaches the logs.
		out := logs.w.(*bytes.Buffer).String()
		require.NotContains(t, out, opts.BotToken)
		require.NotContains(t, out, opts.AppToken)
		require.NotContains(t, out, ingestToken)
		require.NotContains(t, out, env["THREATDESK_SECRET_KEY"])
		// Each component tags its own lines once; wire adds no tag of its
		// own (the adapters' lines once carried "adapter" twice).
		tagged := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			require.LessOrEqual(t, strings.Count(line, `"adapter":`), 1, line)
			require.LessOrEqual(t, strings.Count(line, `"component":`), 1, line)
			require.NotContains(t, line, `"service":`)
			if strings.Contains(line, `"adapter":"slack"`) {
				tagged++
			}
		}
		require.Positive(t, tagged, "the Slack adapter's lines say so")
	})

	base := "http://" + env["THREATDESK_HTTP_ADDR"]
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnected(wctx), "Socket Mode connected through SLACK_API_URL")

	// An analyst asks the experts; <!channel> in the question must ping no one.
	_, err = fake.Command(ctx, slackfake.SlashCommand{
		Text: "ask is this lateral movement? <!channel>", UserID: "U0ANALYST1", UserName: "alice",
		ChannelID: "C0CONTOSOSOC",
	})
	require.NoError(t, err)
	testwait.For(t, 20*time.Second, "receipt and desk card posted", func() bool {
		return anyMessage(fake.Messages("C0EXPERTDESK"), "EOD-1") && anyMessage(fake.Messages("C0CONTOSOSOC"), "EOD-1")
	}, fake)
	for _, m := range append(fake.Messages("C0EXPERTDESK"), fake.Messages("C0CONTOSOSOC")...) {
		require.NotContains(t, m.Text+string(m.Blocks), "<!channel>")
	}

	// The expert hunting service flags an attack: it is notified at once.
	raw, err := os.ReadFile("testdata/mde-alert-sample.json")
	require.NoError(t, err)
	var alert map[string]any
	require.NoError(t, json.Unmarshal(raw, &alert))
	alert["detectionSource"] = "ThreatExperts"
	alert["severity"] = "High"
	body, err := json.Marshal(alert)
	require.NoError(t, err)

	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no bearer token")

	req, err = http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(respBody))

	testwait.For(t, 20*time.Second, "the targeted attack notification in the org's channel", func() bool {
		for _, m := range fake.Messages("C0CONTOSOSOC") {
			if strings.Contains(string(m.Blocks), "Consult a threat expert") {
				return true
			}
		}
		return false
	}, fake)

	// A bulk forwarder asks to be answered before correlation: 202, queued,
	// and the service drains the queue into a notification of its own.
	req, err = http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(alertJSON(t, "da-queued-1", "queued-host", "Queued attack")))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	req.Header.Set("Prefer", "respond-async")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	respBody, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(respBody))
	require.Contains(t, string(respBody), `"status":"queued"`)
	testwait.For(t, 20*time.Second, "the queued alert's notification", func() bool {
		return anyMessage(fake.Messages("C0CONTOSOSOC"), "Queued attack")
	}, fake)
	require.Empty(t, fake.Violations())
}

func anyMessage(ms []slackfake.Message, substr string) bool {
	for _, m := range ms {
		if strings.Contains(m.Text, substr) || strings.Contains(string(m.Blocks), substr) {
			return true
		}
	}
	return false
}
