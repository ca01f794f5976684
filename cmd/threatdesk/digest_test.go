package main

import (
	"bytes"
	"context"
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

// TestServeRunsTheWeeklyDigest: with reports.digest in the config file the
// service runs the digest's schedule; due on Monday 00:00, this week's is
// past, so the replica queues last week's at start and each org's report
// reaches the managers' channel, once.
func TestServeRunsTheWeeklyDigest(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{
			{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}, {ID: "C0MANAGERS", Name: "managers"},
		},
	})
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("timezone: Europe/London\n"+e2eConfig+`reports:
  digest:
    slack: {channel: C0MANAGERS}
    when: "Mon 00:00"
`), 0o600))
	opts := fake.Options()
	env := map[string]string{
		"DATABASE_URL":          dbURL,
		"THREATDESK_HTTP_ADDR":  freeAddr(t),
		"THREATDESK_CONFIG":     cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		"SLACK_BOT_TOKEN":       opts.BotToken,
		"SLACK_APP_TOKEN":       opts.AppToken,
		"SLACK_API_URL":         fake.APIURL(),
	}
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + env["THREATDESK_HTTP_ADDR"]
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	testwait.For(t, 20*time.Second, "the digest in the managers' channel", func() bool { return len(fake.Messages("C0MANAGERS")) > 0 }, fake)
	msgs := fake.Messages("C0MANAGERS")
	require.Len(t, msgs, 1, "one org, one message")
	require.Contains(t, msgs[0].Text+string(msgs[0].Blocks), "Weekly digest · Contoso · week of")
	require.Contains(t, string(msgs[0].Blocks), "calendar days in Europe/London")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "weekly digest queued") }, 10*time.Second, 20*time.Millisecond)
	require.Empty(t, fake.Violations())
}
