package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

func TestMemoryReplayCache(t *testing.T) {
	t.Parallel()
	c := adapter.NewMemoryReplayCache(time.Minute)
	seen, err := c.Seen(t.Context(), "slack:sig:00ff")
	require.NoError(t, err)
	require.False(t, seen)
	seen, err = c.Seen(t.Context(), "slack:sig:00ff")
	require.NoError(t, err)
	require.True(t, seen, "the same signature again is a replay")
}

// The fixtures of the end-to-end tests below: one org on the fake's team,
// the desk, an analyst and an expert, and a bot that paces nothing (the
// fake enforces no channel interval here) and retries quickly.
func realFake(t *testing.T, o slackfake.Options) *slackfake.Server {
	t.Helper()
	o.Channels = append(o.Channels, slackfake.Channel{ID: socChannel, Name: "soc"}, slackfake.Channel{ID: deskChannel, Name: "expert-desk"})
	o.Users = append(o.Users, slackfake.User{ID: analyst, Name: "alice", DisplayName: "Alice"}, slackfake.User{ID: expert, Name: "eve", RealName: "Eve Expert"})
	return slackfake.New(t, o)
}

func realConfig(fake *slackfake.Server) bot.Config {
	team := fake.Options().TeamID
	return bot.Config{
		Orgs:    []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: team, Channels: []string{socChannel}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: deskChannel}},
		Experts: bot.UserIDs{Slack: []string{expert}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Pace: map[bot.Platform]bot.Pace{bot.Slack: {}}},
		Inbound: bot.Inbound{Poll: 50 * time.Millisecond, BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
			Lease: 10 * time.Second, Timeout: 5 * time.Second},
	}
}

// topLevel finds the message in ch that contains want, outside threads.
func topLevel(t *testing.T, fake *slackfake.Server, ch, want string) (slackfake.Message, bool) {
	for _, m := range fake.Messages(ch) {
		if m.ThreadTS == "" && !m.Ephemeral && strings.Contains(m.Text+"\n"+texts(t, m.Blocks), want) {
			return m, true
		}
	}
	return slackfake.Message{}, false
}

// inThread counts the messages in a thread that contain want.
func inThread(t *testing.T, fake *slackfake.Server, ch, ts, want string) int {
	n := 0
	for _, m := range fake.Replies(ch, ts) {
		if strings.Contains(m.Text+"\n"+texts(t, m.Blocks), want) {
			n++
		}
	}
	return n
}

// responses counts the answers through response URLs that contain want.
func responses(fake *slackfake.Server, want string) int {
	n := 0
	for _, r := range fake.Responses() {
		if strings.Contains(r.Text+"\n"+string(r.Blocks), want) {
			n++
		}
	}
	return n
}

// openCase asks a question from the SOC channel and returns the receipt and
// the desk card of EOD-n once their anchors are recorded (a reply is only
// recognised as a case's once they are).
func openCase(t *testing.T, ctx context.Context, fake *slackfake.Server, db *pgxpool.Pool, ref string) (receipt, card slackfake.Message) {
	t.Helper()
	_, err := fake.Command(ctx, slackfake.SlashCommand{UserID: analyst, ChannelID: socChannel, Text: `ask "is this lateral movement?"`})
	require.NoError(t, err)
	waitFor(t, "receipt and desk card of "+ref, func() bool {
		var ok1, ok2 bool
		receipt, ok1 = topLevel(t, fake, socChannel, ref)
		card, ok2 = topLevel(t, fake, deskChannel, ref)
		return ok1 && ok2
	}, fake)
	eventually(t, func() bool {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM bot_anchor WHERE stream = $1`, "case:"+ref).Scan(&n))
		return n == 2
	}, "anchors of "+ref)
	return receipt, card
}

// settled waits until no outbox row and no inbound event is left to work
// on, so that a duplicate would have been sent by now.
func settled(t *testing.T, ctx context.Context, db *pgxpool.Pool) {
	t.Helper()
	eventually(t, func() bool {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT
 (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL) +
 (SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL)`).Scan(&n))
		return n == 0
	}, "outbox and inbound work settled")
}

// TestRetriedEventProcessedOnceAcrossRestart: the first process relays a
// thread reply; after a restart, Slack's redelivery of the event reaches a
// new process on the same database, which does not relay it again.
func TestRetriedEventProcessedOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	fake := realFake(t, slackfake.Options{})
	db := pgtest.New(t)
	first := startRealBotOn(t, ctx, fake, realConfig(fake), db)
	receipt, card := openCase(t, ctx, fake, db, "EOD-1")

	_, cb := fake.UserMessage(deskChannel, card.TS, expert, "relayed exactly once")
	_, err := fake.Event(ctx, cb, 0)
	require.NoError(t, err)
	waitFor(t, "relayed", func() bool { return inThread(t, fake, socChannel, receipt.TS, "relayed exactly once") == 1 }, fake)
	settled(t, ctx, db)
	first.stop(t)
	waitFor(t, "the first process is gone", func() bool { return fake.Connections() == 0 }, fake)

	startRealBotOn(t, ctx, fake, realConfig(fake), db)
	waitFor(t, "the second process is connected", func() bool { return fake.Connections() == 1 }, fake)
	_, err = fake.Event(ctx, cb, 1)
	require.NoError(t, err, "the redelivery is acknowledged")
	settled(t, ctx, db)
	require.Equal(t, 1, inThread(t, fake, socChannel, receipt.TS, "relayed exactly once"))
}

// TestDatabaseOutage: while the database is unreachable (a restart or a
// fail-over), a slash command is answered in its acknowledgement that
// threatdesk cannot reach its database, and nothing is stored; a thread reply
// is not acknowledged (Socket Mode: no ack; HTTP: 503), so Slack delivers it
// again, and once the database is back the redelivery is relayed, once.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var mu sync.Mutex
	var violations []string
	fake := realFake(t, slackfake.Options{OnViolation: func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, msg)
	}})
	healthy, flaky, outage := pgtest.NewWithOutage(t)
	rb := startRealBotOn(t, ctx, fake, realConfig(fake), flaky)
	srv := httptest.NewServer(rb.adapter.Handler())
	t.Cleanup(srv.Close)
	receipt, card := openCase(t, ctx, fake, healthy, "EOD-1")
	settled(t, ctx, healthy)

	outage.Down(t)

	// A slash command over Socket Mode: answered in the ack, privately.
	ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: analyst, ChannelID: socChannel, Text: `ask "asked during the outage"`})
	require.NoError(t, err)
	var payload struct {
		ResponseType string `json:"response_type"`
	}
	require.NoError(t, json.Unmarshal(ack.Payload, &payload), "the answer rides in the ack: %s", ack.Payload)
	require.Equal(t, "ephemeral", payload.ResponseType)
	require.Contains(t, texts(t, ack.Payload), "cannot reach its database")

	// A thread reply over Socket Mode: not acknowledged.
	_, overSocket := fake.UserMessage(deskChannel, card.TS, expert, "sent over socket mode during the outage")
	_, err = fake.Event(ctx, overSocket, 0)
	require.ErrorIs(t, err, slackfake.ErrNotAcked)

	// A thread reply over HTTP: 503.
	_, overHTTP := fake.UserMessage(deskChannel, card.TS, expert, "sent over HTTP during the outage")
	raw, err := json.Marshal(overHTTP)
	require.NoError(t, err)
	postEvent := func(retry string) int {
		req, err := fake.Signer().Request(ctx, srv.URL+"/slack/events", "application/json", raw, time.Now())
		require.NoError(t, err)
		if retry != "" {
			req.Header.Set("X-Slack-Retry-Num", retry)
			req.Header.Set("X-Slack-Retry-Reason", "http_error")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusServiceUnavailable, postEvent(""))

	outage.Up()

	// Slack delivers both again; each is relayed once.
	_, err = fake.Event(ctx, overSocket, 1)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, postEvent("1"))
	waitFor(t, "both replies relayed", func() bool {
		return inThread(t, fake, socChannel, receipt.TS, "sent over socket mode during the outage") == 1 &&
			inThread(t, fake, socChannel, receipt.TS, "sent over HTTP during the outage") == 1
	}, fake)
	settled(t, ctx, healthy)
	require.Equal(t, 1, inThread(t, fake, socChannel, receipt.TS, "sent over socket mode during the outage"))
	require.Equal(t, 1, inThread(t, fake, socChannel, receipt.TS, "sent over HTTP during the outage"))

	// The command asked during the outage left nothing behind.
	var cases, stored int
	require.NoError(t, healthy.QueryRow(ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.NoError(t, healthy.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE payload::text LIKE '%asked during the outage%'`).Scan(&stored))
	require.Equal(t, 1, cases)
	require.Zero(t, stored)
	require.Zero(t, responses(fake, "asked during the outage"))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 1, "only the reply left unacknowledged on purpose: %v", violations)
	require.Contains(t, violations[0], "not acknowledged")
}

// TestRedeliveredCommandOpensOneCase: Slack redelivers a slash command over
// Socket Mode (retry_attempt 1, same trigger_id); the redelivery is
// acknowledged empty and the case is opened and answered once.
func TestRedeliveredCommandOpensOneCase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	fake := realFake(t, slackfake.Options{})
	db := pgtest.New(t)
	startRealBotOn(t, ctx, fake, realConfig(fake), db)
	payload := fake.CommandPayload(slackfake.SlashCommand{Text: `ask "anything odd?"`, UserID: analyst, ChannelID: socChannel})
	_, err := fake.Send(ctx, slackfake.Envelope{EnvelopeID: "env-1", Type: "slash_commands", Payload: payload, AcceptsResponsePayload: true}, nil)
	require.NoError(t, err)
	ack, err := fake.Send(ctx, slackfake.Envelope{EnvelopeID: "env-1", Type: "slash_commands", Payload: payload, AcceptsResponsePayload: true, RetryAttempt: 1, RetryReason: "timeout"}, nil)
	require.NoError(t, err)
	require.Empty(t, ack.Payload)
	waitFor(t, "the analyst is answered", func() bool { return responses(fake, "Opened EOD-1") == 1 }, fake)
	settled(t, ctx, db)
	require.Equal(t, 1, responses(fake, "Opened EOD-"))
	var cases int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM cases`).Scan(&cases))
	require.Equal(t, 1, cases)
}

// TestUpperCasedSignatureReplayIsRefused: Slack's signature is compared as
// bytes, so the same signature with its hex upper-cased is the same
// signature: replayed, it is refused.
func TestUpperCasedSignatureReplayIsRefused(t *testing.T) {
	t.Parallel()
	f, srv := httpFixture(t)
	signer := f.fake.Signer()
	body := slackfake.FormBody(f.fake.CommandPayload(slackfake.SlashCommand{Text: "status EOD-1", UserID: analyst, ChannelID: socChannel}))
	at := time.Now()
	req, err := signer.Request(f.ctx, srv.URL+"/slack/commands", "application/x-www-form-urlencoded", body, at)
	require.NoError(t, err)
	sig := req.Header.Get("X-Slack-Signature")
	code, _ := do(t, req)
	require.Equal(t, http.StatusOK, code)

	for _, spelled := range []string{"v0=" + strings.ToUpper(strings.TrimPrefix(sig, "v0=")), sig} {
		req, err := http.NewRequestWithContext(f.ctx, http.MethodPost, srv.URL+"/slack/commands", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(at.Unix(), 10))
		req.Header.Set("X-Slack-Signature", spelled)
		code, _ := do(t, req)
		require.Equal(t, http.StatusUnauthorized, code, spelled)
	}
	require.Len(t, f.rec.Commands(), 1, "the replays never reached the bot")
}

// TestResponderResumesElsewhere: the bot stores a command's responder state
// with the work; another adapter (after a restart, on another replica)
// rebuilds the responder from it and answers through the response URL, or,
// without one, privately in the channel.
func TestResponderResumesElsewhere(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	respond := make(chan bot.Responder, 1)
	f.rec.onCmd = func(c bot.Command) bot.Ack {
		respond <- c.Respond
		return bot.Ack{Private: true}
	}
	_, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: "status EOD-1", UserID: analyst, ChannelID: socChannel})
	require.NoError(t, err)
	rs, ok := (<-respond).(bot.Resumable)
	require.True(t, ok, "the responder can be stored")
	state, err := rs.ResumeState()
	require.NoError(t, err)

	opts := f.fake.Options()
	other, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret), APIURL: f.fake.APIURL()}, nil, nil, newRecorder())
	require.NoError(t, err)
	resumed, err := other.Resume(state)
	require.NoError(t, err)
	require.NoError(t, resumed.Respond(f.ctx, bot.Message{Text: []bot.Line{{bot.T("answered after a restart")}}}, true))
	require.Len(t, f.fake.Responses(), 1)
	require.Equal(t, "ephemeral", f.fake.Responses()[0].ResponseType)
	require.Contains(t, f.fake.Responses()[0].Text, "answered after a restart")

	noURL, err := other.Resume([]byte(`{"channel":"` + socChannel + `","user":"` + analyst + `"}`))
	require.NoError(t, err)
	require.NoError(t, noURL.Respond(f.ctx, bot.Message{Text: []bot.Line{{bot.T("answered in the channel")}}}, true))
	msgs := f.fake.Messages(socChannel)
	require.Len(t, msgs, 1)
	require.True(t, msgs[0].Ephemeral)
	require.Equal(t, analyst, msgs[0].To)
	_, err = other.Resume([]byte(`{}`))
	require.Error(t, err, "a state that answers nobody")
}

// TestSubmissionWithoutTriggerIsKeyedByItsView: a view_submission that
// carries no trigger_id is still keyed, by its view's id and hash, so that
// its redelivery is the same delivery (it was stored under a random key,
// so a resolution worked again was refused to its author).
func TestSubmissionWithoutTriggerIsKeyedByItsView(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	view := slackfake.View{ID: "V0NOTRIGGER", View: json.RawMessage(`{"type":"modal","callback_id":"resolve","private_metadata":"","blocks":[]}`)}
	send := func(hash string) {
		sub, err := f.fake.Submit(view, analyst, nil)
		require.NoError(t, err)
		delete(sub, "trigger_id")
		sub["view"].(map[string]any)["hash"] = hash
		_, err = f.fake.Interactive(f.ctx, sub)
		require.NoError(t, err)
	}
	send("1.a")
	send("1.a")
	send("2.b")
	subs := f.rec.Subs()
	require.Len(t, subs, 3)
	require.NotEmpty(t, subs[0].Key)
	require.Equal(t, subs[0].Key, subs[1].Key, "a redelivery is the same delivery")
	require.NotEqual(t, subs[0].Key, subs[2].Key, "another version of the view is another submission")
}
