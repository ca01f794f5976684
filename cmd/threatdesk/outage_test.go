package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/pglocal"
)

// outageLength is how long the database is away: a restart or a fail-over
// of the server.
const outageLength = 30 * time.Second

// TestServeAnswersThroughADatabaseURLOutage: with DATABASE_URL, the server
// is stopped for 30 seconds under a running service (a child process) and
// started again. At the start of the outage and again at its end:
//
//   - the alert intake answers 503 with Retry-After, storing nothing;
//   - a slash command over Socket Mode is acknowledged within 3 s with the
//     answer, private, that threatdesk cannot reach its database;
//   - a button press is answered within 3 s the same way (through its
//     response URL);
//   - a reply in a case's thread is not acknowledged, so that Slack delivers
//     it again.
//
// Once the database is back, Slack's next delivery of the reply is relayed,
// once; a notification left pending before the outage is delivered, once;
// the work asked for during the outage left nothing behind; and the process
// never exited.
func TestServeAnswersThroughADatabaseURLOutage(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	ctx := context.Background()
	pgDir := filepath.Join(dataDir(t), "pg")
	require.NoError(t, os.MkdirAll(filepath.Dir(pgDir), 0o755))
	opts := pglocal.Options{Dir: pgDir, Database: "outage", AppRole: "outage"}
	db, err := pglocal.Start(ctx, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	dbURL := db.AppURL()

	// The fake collects its violations: the replies left unacknowledged on
	// purpose are ones.
	var mu sync.Mutex
	var violations []string
	fake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{
			{ID: socChannel, Name: "soc"}, {ID: deskChannel, Name: "expert-desk"},
		},
		Users: []slackfake.User{
			{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"},
			{ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"},
		},
		OnViolation: func(v string) {
			mu.Lock()
			defer mu.Unlock()
			violations = append(violations, v)
		},
	})
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(e2eConfig), 0o600))
	const token = "outage-ingest-token-0123456789"
	fo := fake.Options()
	addr := freeAddr(t)
	sl := slackSetup{fake: fake, base: "http://" + addr, token: token, env: map[string]string{
		"DATABASE_URL":            dbURL,
		"THREATDESK_HTTP_ADDR":    addr,
		"THREATDESK_CONFIG":       cfgPath,
		"THREATDESK_INGEST_TOKEN": token,
		"THREATDESK_SECRET_KEY":   testKey,
		"THREATDESK_LOG_FORMAT":   "text",
		"SLACK_BOT_TOKEN":         fo.BotToken,
		"SLACK_APP_TOKEN":         fo.AppToken,
		"SLACK_API_URL":           fake.APIURL(),
	}}
	td := startChild(t, sl.env, nil)
	td.waitReady(t, sl.base)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnected(wctx))

	// Before the outage: a case, and a notification left pending (a 429).
	_, err = fake.Command(ctx, slackfake.SlashCommand{Text: "ask is this lateral movement? (before the outage)", UserID: "U0ANALYST1",
		UserName: "alice", ChannelID: socChannel})
	require.NoError(t, err)
	var receipt, card slackfake.Message
	waitFor(t, 30*time.Second, "the receipt and the desk card, recorded as the case's anchors", func() bool {
		var ok1, ok2 bool
		receipt, ok1 = topLevel(fake.Messages(socChannel), "before the outage")
		card, ok2 = topLevel(fake.Messages(deskChannel), "before the outage")
		return ok1 && ok2 && count(t, dbURL, `SELECT count(*) FROM bot_anchor WHERE stream LIKE 'case:%'`) == 2
	})
	cardsBefore := sl.cards()
	sl.makePending(t, dbURL, "da-outage-pending")

	require.NoError(t, db.Stop(ctx))
	down := time.Now()
	waitFor(t, 10*time.Second, "/readyz 503", func() bool { return get(sl.base+"/readyz") == http.StatusServiceUnavailable })

	var commands []map[string]string
	var replyEnvs []string
	_, reply := fake.UserMessage(deskChannel, card.TS, "U0EXPERT1", "a reply sent during the outage")
	during := func(when string, retry int) {
		t.Helper()
		// The intake: 503 with Retry-After.
		req, err := http.NewRequest(http.MethodPost, sl.base+"/api/v1/alerts", bytes.NewReader(alertJSON(t, "da-outage-"+when, "outage-"+when, "Outage "+when)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s: the intake", when)
		require.Equal(t, "5", resp.Header.Get("Retry-After"), "%s: the intake", when)

		// A slash command: the answer rides in the ack, within 3 s.
		payload := fake.CommandPayload(slackfake.SlashCommand{Text: "ask asked " + when + " of the outage", UserID: "U0ANALYST1",
			UserName: "alice", ChannelID: socChannel})
		commands = append(commands, payload)
		ack, err := fake.Send(ctx, slackfake.Envelope{Type: "slash_commands", Payload: payload, AcceptsResponsePayload: true}, nil)
		require.NoError(t, err, "%s: the command is acknowledged", when)
		require.Less(t, ack.Latency, 3*time.Second, "%s: the command", when)
		var answer struct {
			ResponseType string          `json:"response_type"`
			Text         string          `json:"text"`
			Blocks       json.RawMessage `json:"blocks"`
		}
		require.NoError(t, json.Unmarshal(ack.Payload, &answer), "%s: the answer rides in the ack: %s", when, ack.Payload)
		require.Equal(t, "ephemeral", answer.ResponseType, "%s: the command", when)
		require.Contains(t, answer.Text+string(answer.Blocks), "cannot reach its database", "%s: the command", when)

		// A button: answered through its response URL within 3 s.
		press, err := fake.Press(deskChannel, card.TS, "U0EXPERT1", "take")
		require.NoError(t, err)
		pressed := time.Now()
		_, err = fake.Interactive(ctx, press)
		require.NoError(t, err, "%s: the button press is acknowledged", when)
		url, _ := press["response_url"].(string)
		var answered time.Time
		waitFor(t, 10*time.Second, when+": the button's answer", func() bool {
			for _, r := range fake.Responses() {
				if strings.HasSuffix(url, "/"+r.ID) && strings.Contains(r.Text+string(r.Blocks), "cannot reach its database") {
					answered = r.At
					return true
				}
			}
			return false
		})
		require.Less(t, answered.Sub(pressed), 3*time.Second, "%s: the button", when)
		t.Logf("%s of the outage: the command answered in %s, the button in %s", when, ack.Latency.Round(time.Millisecond),
			answered.Sub(pressed).Round(time.Millisecond))

		// The thread reply: not acknowledged, so Slack delivers it again.
		env := slackfake.Envelope{Type: "events_api", Payload: reply, RetryAttempt: retry}
		if retry > 0 {
			env.RetryReason = "timeout"
		}
		env.EnvelopeID = fmt.Sprintf("outage-reply-%d", retry)
		replyEnvs = append(replyEnvs, env.EnvelopeID)
		_, err = fake.Send(ctx, env, nil)
		require.True(t, errors.Is(err, slackfake.ErrNotAcked), "%s: the reply is not acknowledged: %v", when, err)
	}
	during("at the start", 0)
	time.Sleep(time.Until(down.Add(outageLength - 8*time.Second))) // the outage itself: nothing to wait for but time
	during("at the end", 1)
	time.Sleep(time.Until(down.Add(outageLength)))

	db, err = pglocal.Start(ctx, opts, nil)
	require.NoError(t, err)
	back := time.Now()
	t.Logf("the database was away for %s", back.Sub(down).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "/readyz 200", func() bool { return get(sl.base+"/readyz") == http.StatusOK })
	t.Logf("ready again %s after the database came back", time.Since(back).Round(time.Millisecond))

	// Slack delivers the reply once more; now it is stored and relayed once.
	_, err = fake.Send(ctx, slackfake.Envelope{Type: "events_api", Payload: reply, RetryAttempt: 2, RetryReason: "timeout"}, nil)
	require.NoError(t, err)
	waitFor(t, 60*time.Second, "the reply relayed, the pending notification delivered, no work left", func() bool {
		return countWith(fake.Replies(socChannel, receipt.TS), "a reply sent during the outage") == 1 && pendingWork(t, dbURL) == 0
	})
	t.Logf("all work done %s after the database came back", time.Since(back).Round(time.Millisecond))
	require.Equal(t, 1, countWith(fake.Replies(socChannel, receipt.TS), "a reply sent during the outage"), "relayed once")
	require.Equal(t, cardsBefore+1, sl.cards(), "the notification pending before the outage, posted once")
	require.Equal(t, 1, count(t, dbURL, `SELECT count(*) FROM cases`), "the commands answered 'try again' opened nothing")
	require.Equal(t, "new", queryString(t, dbURL, `SELECT status::text FROM cases`), "the presses answered 'try again' took nothing")
	require.Zero(t, count(t, dbURL, `SELECT count(*) FROM hunting_alerts WHERE id LIKE 'da-outage-at-%'`), "the refused alerts were not stored")
	for _, c := range commands {
		require.Zero(t, answers(fake, c, ""), "a command answered in its ack gets no later answer")
	}
	require.Zero(t, count(t, dbURL, `SELECT count(*) FROM bot_inbound WHERE payload::text LIKE '%of the outage%'`))

	// New work succeeds.
	postAlertTo(t, sl.base, token, alertJSON(t, "da-outage-after", "after-outage", "After the outage"))
	waitFor(t, 30*time.Second, "a notification for an alert after the outage", func() bool { return sl.cards() == cardsBefore+2 })

	mu.Lock()
	require.Len(t, violations, len(replyEnvs), "only the replies left unacknowledged on purpose: %v", violations)
	for i, v := range violations {
		require.Contains(t, v, replyEnvs[i]+" (events_api) not acknowledged")
	}
	mu.Unlock()
	select {
	case <-td.exited:
		t.Fatalf("threatdesk exited during the outage: %v", td.err)
	default:
	}
	require.NoError(t, td.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, td.wait(), "a clean stop after the outage")
}
