package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// replicasConfig has an org on Slack and one on Discord, the desk on
// Slack, SLA targets short enough that warnings and breaches fall due
// within the test (warning at 1.5s, breach at 6s), checked every second by
// every replica, and an outbox lease of 10s, so that a dead replica's
// claimed messages are taken over within the test.
const replicasConfig = `
orgs:
  - id: contoso
    name: Contoso
    tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]
    slack:
      team: T0CONTOSO
      channels: [C0CONTOSOSOC]
  - id: fabrikam
    name: Fabrikam
    tenants: ["b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"]
    discord:
      guild: "1000000000000000001"
      channels: ["1000000000000000002"]
desk:
  slack:
    channel: C0EXPERTDESK
experts:
  slack: [U0EXPERT1]
managers:
  slack: [U0MANAGER1]
cases:
  sla:
    high: {first_response: 6s, conclusion: 1h}
    medium: {first_response: 6s, conclusion: 1h}
    low: {first_response: 6s, conclusion: 1h}
    warn_at: 0.25
    check_interval: 1s
hunting:
  group_wait: 1s
delivery:
  lease: 10s
`

const (
	socChannel  = "C0CONTOSOSOC"
	deskChannel = "C0EXPERTDESK"
	fabGuild    = "1000000000000000001"
	fabSOC      = "1000000000000000002"
	fabAnalyst  = "1000000000000000077"
	testKey     = "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
)

// replica is one serve process of the test binary.
type replica struct {
	*child
	name string
	base string
}

func (r replica) pid() int { return r.cmd.Process.Pid }

// TestSeveralReplicasOnOneDatabase runs two serve processes on one
// DATABASE_URL against the fake Slack and the fake Discord:
//
//   - slash commands delivered to either replica, one of them to both (a
//     redelivery on the other connection), and a thread reply delivered to
//     both, give one case each with one receipt, one desk card and one
//     answer, and one relay;
//   - alerts posted to both (the same alert to each, concurrently) give one
//     notification card per incident;
//   - SLA warnings and breaches, due while both replicas check the clocks
//     every second, are posted once per case thread;
//   - the Discord gateway leader is killed (SIGKILL) while it holds a
//     claimed outbox row whose post reached Slack without its answer: the
//     other replica's gateway session is identified at the fake within
//     seconds (never two sessions at once), and the survivor finishes the
//     row with the message already there, not a second one; it then answers
//     a Discord slash command over its gateway.
//
// Every count is taken from what the fakes stored, after the database says
// that no work is left.
func TestSeveralReplicasOnOneDatabase(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	began := time.Now()
	ctx := context.Background()
	sfake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{
			{ID: socChannel, Name: "soc"}, {ID: deskChannel, Name: "expert-desk"},
		},
		Users: []slackfake.User{
			{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"},
			{ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"},
		},
	})
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: fabGuild, Channels: []string{fabSOC}}}})
	dfake.AddUser(discordfake.User{ID: fabAnalyst, Username: "frank", GlobalName: "Frank"})
	_, dbURL := pgtest.Empty(t)
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(replicasConfig), 0o600))
	const token = "replicas-ingest-token-0123456789"
	so := sfake.Options()
	start := func(name string) replica {
		addr := freeAddr(t)
		env := map[string]string{
			"DATABASE_URL":            dbURL,
			"THREATDESK_HTTP_ADDR":    addr,
			"THREATDESK_CONFIG":       cfgPath,
			"THREATDESK_INGEST_TOKEN": token,
			"THREATDESK_SECRET_KEY":   testKey,
			"THREATDESK_LOG_FORMAT":   "text",
			"SLACK_BOT_TOKEN":         so.BotToken,
			"SLACK_APP_TOKEN":         so.AppToken,
			"SLACK_API_URL":           sfake.APIURL(),
			"DISCORD_BOT_TOKEN":       dfake.Token(),
			"DISCORD_APP_ID":          dfake.AppID(),
			"DISCORD_API_URL":         dfake.APIURL(),
		}
		r := replica{child: startChild(t, env, nil), name: name, base: "http://" + addr}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("replica %s is pid %d", name, r.pid())
			}
		})
		return r
	}

	// A starts first and takes the gateway leadership; B starts once A's
	// Socket Mode connection is open, so that connection 0 is A's and 1 B's.
	a := start("A")
	a.waitReady(t, a.base)
	waitFor(t, 30*time.Second, "A leads the gateway and is connected to Slack", func() bool {
		return strings.Contains(metricsOf(a.base), "threatdesk_discord_gateway_leader 1") && sfake.Connections() == 1
	})
	b := start("B")
	b.waitReady(t, b.base)
	waitFor(t, 30*time.Second, "B is connected to Slack, A's gateway session identified", func() bool {
		return sfake.Connections() == 2 && dfake.Sessions() == 1
	})
	require.Contains(t, metricsOf(b.base), "threatdesk_discord_gateway_leader 0", "B follows")
	t.Logf("both replicas up after %s", time.Since(began).Round(time.Millisecond))

	// Consults: one to each replica, one delivered to both at once (Slack
	// redelivering it on the other connection).
	ask := func(text string) map[string]string {
		return sfake.CommandPayload(slackfake.SlashCommand{Text: "ask " + text, UserID: "U0ANALYST1", UserName: "alice", ChannelID: socChannel})
	}
	questions := []string{"beacon seen on replica A?", "beacon seen on replica B?", "beacon delivered to both replicas?"}
	payloads := []map[string]string{ask(questions[0]), ask(questions[1]), ask(questions[2])}
	type delivery struct {
		conn, retry int
		payload     map[string]string
	}
	deliveries := []delivery{{0, 0, payloads[0]}, {1, 0, payloads[1]}, {0, 0, payloads[2]}, {1, 1, payloads[2]}}
	acks := make([]slackfake.Ack, len(deliveries))
	var wg sync.WaitGroup
	for i, d := range deliveries {
		wg.Go(func() {
			env := slackfake.Envelope{Type: "slash_commands", Payload: d.payload, AcceptsResponsePayload: true, RetryAttempt: d.retry}
			if d.retry > 0 {
				env.RetryReason = "timeout"
			}
			ack, err := sfake.SendTo(ctx, d.conn, env, nil)
			check(t, err == nil, "command %d acknowledged: %v", i, err)
			acks[i] = ack
		})
	}
	// Alerts: X to both replicas at once (a forwarder that retried on the
	// other one), then Z (X's device and user: the same incident) to A and
	// Y (other entities) to B.
	for _, base := range []string{a.base, b.base} {
		wg.Go(func() { postAlertTo(t, base, token, alertJSON(t, "da-replicas-x", "replica-x", "Replica test X")) })
	}
	wg.Wait()
	postAlertTo(t, a.base, token, alertJSON(t, "da-replicas-z", "replica-x", "Replica test X, second alert"))
	postAlertTo(t, b.base, token, alertJSON(t, "da-replicas-y", "replica-y", "Replica test Y"))
	for i, ack := range acks {
		require.Less(t, ack.Latency, 3*time.Second, "command %d acknowledged in time", i)
	}

	// A reply in the first case's receipt thread, delivered to both replicas.
	var receipt slackfake.Message
	waitFor(t, 30*time.Second, "the first case's receipt, recorded as its anchor", func() bool {
		var ok bool
		receipt, ok = topLevel(sfake.Messages(socChannel), questions[0])
		return ok && count(t, dbURL, fmt.Sprintf(`SELECT count(*) FROM bot_anchor WHERE channel = '%s' AND message = '%s'`, socChannel, receipt.TS)) == 1
	})
	const detail = "more detail, sent once and delivered to both replicas"
	_, callback := sfake.UserMessage(socChannel, receipt.TS, "U0ANALYST1", detail)
	for conn := range 2 {
		wg.Go(func() {
			env := slackfake.Envelope{Type: "events_api", Payload: callback, RetryAttempt: conn}
			if conn > 0 {
				env.RetryReason = "timeout"
			}
			_, err := sfake.SendTo(ctx, conn, env, nil)
			check(t, err == nil, "reply delivered on connection %d: %v", conn, err)
		})
	}
	wg.Wait()

	// Everything settles: three cases, each warned and breached, no work left.
	waitFor(t, 60*time.Second, "cases warned and breached, outbox and inbound work done", func() bool {
		return count(t, dbURL, `SELECT count(*) FROM cases WHERE response_warned_at IS NOT NULL AND response_breached_at IS NOT NULL`) == 3 &&
			pendingWork(t, dbURL) == 0
	})
	require.Equal(t, 3, count(t, dbURL, `SELECT count(*) FROM cases`), "one case per command, the redelivered one included")
	ma, mb := metricsOf(a.base), metricsOf(b.base)
	stored := `threatdesk_inbound_events_total{kind="command",result="stored"}`
	dup := `threatdesk_inbound_events_total{kind="command",result="duplicate"}`
	require.GreaterOrEqual(t, metricValue(ma, stored), 1.0, "A stored commands")
	require.GreaterOrEqual(t, metricValue(mb, stored), 1.0, "B stored commands")
	require.Equal(t, 3.0, metricValue(ma, stored)+metricValue(mb, stored), "three commands stored in all")
	require.Equal(t, 1.0, metricValue(ma, dup)+metricValue(mb, dup), "the redelivery recognised, by whichever replica got it second")
	require.Zero(t, count(t, dbURL, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL`))
	for i, q := range questions {
		require.Equal(t, 1, countTop(sfake.Messages(socChannel), q), "one receipt for %q", q)
		require.Equal(t, 1, countTop(sfake.Messages(deskChannel), q), "one desk card for %q", q)
		card, _ := topLevel(sfake.Messages(deskChannel), q)
		ref := refIn(t, card)
		thread := sfake.Replies(deskChannel, card.TS)
		require.Equal(t, 1, countWith(thread, "SLA warning: "+ref+" "), "one SLA warning in %s's desk thread", ref)
		breach := regexp.MustCompile(`SLA breached:\*? ` + ref + `\b`)
		require.Equal(t, 1, countMatching(thread, breach), "one SLA breach in %s's desk thread", ref)
		require.Equal(t, 1, answers(sfake, payloads[i], "Opened "+ref+" "), "%s answered once", ref)
	}
	first, _ := topLevel(sfake.Messages(deskChannel), questions[0])
	require.Equal(t, 1, countWith(sfake.Replies(deskChannel, first.TS), detail), "the reply relayed once")
	require.Equal(t, 2, count(t, dbURL, `SELECT count(DISTINCT incident_id) FROM hunting_alerts`), "X and Z are one incident, Y another")
	require.Equal(t, 2, notificationCards(sfake, ""), "one notification per incident")
	t.Logf("phase 1 (consults, alerts, SLA notices) settled after %s", time.Since(began).Round(time.Millisecond))

	// The leader, A, claims an outbox row and posts its message; Slack
	// stores it but the answer never comes back. B is paused meanwhile, so
	// that the row can only be A's.
	held := sfake.HoldAnswer(func(m slackfake.Message) bool {
		return m.ThreadTS == "" && strings.Contains(m.Text+string(m.Blocks), "Replica test W")
	}, false)
	require.NoError(t, syscall.Kill(b.pid(), syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(b.pid(), syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	postAlertTo(t, a.base, token, alertJSON(t, "da-replicas-w", "replica-w", "Replica test W"))
	var heldMsg slackfake.Message
	select {
	case heldMsg = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("A did not post the notification")
	}
	wRow := queryInt(t, dbURL, `SELECT o.id FROM outbox o
JOIN bot_attempt at ON at.outbox_id = o.id AND at.part = 'card'
WHERE o.stream = 'incident:' || (SELECT incident_id FROM hunting_alerts WHERE id = 'da-replicas-w')
  AND o.delivered_at IS NULL AND o.locked_until > now()`)
	identified := dfake.Identifies()
	killed := time.Now()
	require.NoError(t, syscall.Kill(a.pid(), syscall.SIGKILL))
	resume()
	_ = a.wait()

	var takeover time.Duration
	waitFor(t, 30*time.Second, "B's gateway session identified", func() bool {
		if dfake.Identifies() > identified && dfake.Sessions() == 1 {
			takeover = time.Since(killed)
			return true
		}
		return false
	})
	require.Contains(t, metricsOf(b.base), "threatdesk_discord_gateway_leader 1")
	var finished time.Duration
	waitFor(t, 60*time.Second, "the survivor finishes the dead replica's row", func() bool {
		if count(t, dbURL, fmt.Sprintf(`SELECT count(*) FROM outbox WHERE id = %d AND delivered_at IS NOT NULL`, wRow)) == 1 {
			finished = time.Since(killed)
			return true
		}
		return false
	})
	require.Equal(t, 1, notificationCards(sfake, "Replica test W"), "the message Slack stored, not a second one")
	require.Equal(t, heldMsg.TS, queryString(t, dbURL, fmt.Sprintf(`SELECT message FROM bot_delivery WHERE outbox_id = %d AND part = 'card'`, wRow)),
		"the survivor recorded the message the dead replica had posted")
	require.Contains(t, b.logs.String(), "recorded it instead of posting again")
	t.Logf("gateway taken over %s after the leader was killed; its claimed row finished by the survivor after %s (lease 10s)",
		takeover.Round(time.Millisecond), finished.Round(time.Millisecond))

	// The survivor serves Discord over its gateway.
	const asked = "asked over the gateway after the fail-over"
	in, err := dfake.Interact(dfake.CommandPayload(fabSOC, fabAnalyst, "experts", "ask", map[string]any{"question": asked}))
	require.NoError(t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Less(t, cb.Latency, 3*time.Second)
	waitFor(t, 30*time.Second, "the Discord case's receipt and desk card", func() bool {
		return discordTop(dfake.Messages(fabSOC), asked) == 1 && countTop(sfake.Messages(deskChannel), asked) == 1
	})
	waitFor(t, 30*time.Second, "no work left", func() bool { return pendingWork(t, dbURL) == 0 })
	require.Equal(t, 1, discordTop(dfake.Messages(fabSOC), asked))
	require.Equal(t, 1, countTop(sfake.Messages(deskChannel), asked))
	require.Equal(t, 3, notificationCards(sfake, ""))
	require.Equal(t, 1, dfake.MaxSessions(), "never two gateway sessions at once")

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, b.wait(), "the survivor stops cleanly")
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check reports a failure from any goroutine.
func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// metricValue reads one sample (name with its labels, as exposed) from a
// /metrics page; 0 when absent.
func metricValue(page, sample string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return 0
}

func metricsOf(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// alertJSON is an alert from the expert hunting service (notified at once)
// on a device and user named after host, with no other evidence.
func alertJSON(t *testing.T, id, host, title string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/mde-alert-sample.json")
	require.NoError(t, err)
	var alert map[string]any
	require.NoError(t, json.Unmarshal(raw, &alert))
	sum := sha1.Sum([]byte(host))
	alert["id"] = id
	alert["title"] = title
	alert["detectionSource"] = "ThreatExperts"
	alert["severity"] = "High"
	alert["machineId"] = hex.EncodeToString(sum[:])
	alert["computerDnsName"] = host + ".contoso.test"
	alert["relatedUser"] = map[string]any{"userName": host + "-user", "domainName": "CONTOSO"}
	alert["evidence"] = []any{}
	body, err := json.Marshal(alert)
	require.NoError(t, err)
	return body
}

// postAlertTo posts body to a replica's intake and requires a 200.
func postAlertTo(t *testing.T, base, token string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(body))
	if err != nil {
		t.Errorf("alert request: %v", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("post alert to %s: %v", base, err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check(t, resp.StatusCode == http.StatusOK, "alert to %s: %d %s", base, resp.StatusCode, b)
}

// topLevel finds the channel message (not a thread reply) containing substr.
func topLevel(ms []slackfake.Message, substr string) (slackfake.Message, bool) {
	for _, m := range ms {
		if (m.ThreadTS == "" || m.ThreadTS == m.TS) && !m.Ephemeral && strings.Contains(m.Text+string(m.Blocks), substr) {
			return m, true
		}
	}
	return slackfake.Message{}, false
}

// countTop counts the channel messages (not thread replies) containing substr.
func countTop(ms []slackfake.Message, substr string) int {
	n := 0
	for _, m := range ms {
		if (m.ThreadTS == "" || m.ThreadTS == m.TS) && !m.Ephemeral && strings.Contains(m.Text+string(m.Blocks), substr) {
			n++
		}
	}
	return n
}

// notificationCards counts the notification cards in the SOC channel that
// contain substr.
func notificationCards(f *slackfake.Server, substr string) int {
	n := 0
	for _, m := range f.Messages(socChannel) {
		body := m.Text + string(m.Blocks)
		if m.ThreadTS == "" && strings.Contains(body, "Consult a threat expert") && strings.Contains(body, substr) {
			n++
		}
	}
	return n
}

func discordTop(ms []discordfake.Message, substr string) int {
	n := 0
	for _, m := range ms {
		b, _ := json.Marshal(m)
		if m.Interaction == "" && strings.Contains(string(b), substr) {
			n++
		}
	}
	return n
}

var refPattern = regexp.MustCompile(`EOD-[0-9]+`)

// refIn is the case reference on a card.
func refIn(t *testing.T, m slackfake.Message) string {
	t.Helper()
	ref := refPattern.FindString(m.Text + string(m.Blocks))
	require.NotEmpty(t, ref, "no case reference in %q", m.Text)
	return ref
}

// answers counts the answers to a slash command's response URL that
// contain substr.
func answers(f *slackfake.Server, payload map[string]string, substr string) int {
	id := payload["response_url"][strings.LastIndex(payload["response_url"], "/")+1:]
	n := 0
	for _, r := range f.Responses() {
		if r.ID == id && strings.Contains(r.Text+string(r.Blocks), substr) {
			n++
		}
	}
	return n
}

// pendingWork counts outbox rows and inbound events still to do.
func pendingWork(t *testing.T, url string) int {
	return count(t, url, `SELECT
 (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL) +
 (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL)`)
}

func count(t *testing.T, url, sql string) int {
	t.Helper()
	return queryInt(t, url, sql)
}

func queryInt(t *testing.T, url, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&n), sql)
	return n
}

// countMatching counts the messages whose text or blocks match re.
func countMatching(ms []slackfake.Message, re *regexp.Regexp) int {
	n := 0
	for _, m := range ms {
		if re.MatchString(m.Text) || re.Match(m.Blocks) {
			n++
		}
	}
	return n
}
