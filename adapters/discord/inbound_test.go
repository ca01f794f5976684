package discord_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestHTTPInteractionReplayIsRefused: the same signed interaction posted
// again within the signature's five minutes is refused, and reaches the bot
// once.
func TestHTTPInteractionReplayIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	srv := serve(t, f.adapter)
	_, raw, err := f.fake.Prepare(f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := sign(f.priv, ts, raw)
	status, _ := post(t, srv, raw, ts, sig)
	require.Equal(t, http.StatusOK, status)
	status, _ = post(t, srv, raw, ts, sig)
	require.Equal(t, http.StatusUnauthorized, status, "a replay")
	require.Equal(t, 1, f.h.commandCount())
}

// threadUnknownToTheAdapter makes a thread under channelID that the
// adapter has not seen created, so a message in it needs a channel lookup.
func threadUnknownToTheAdapter(f fixture) string {
	id := f.fake.NextID()
	f.fake.AddChannel(discordfake.Channel{ID: id, Type: 11, GuildID: guildID, ParentID: channelID, Name: "EOD-3"})
	return id
}

func waitReply(t *testing.T, f fixture) bot.Reply {
	t.Helper()
	select {
	case r := <-f.h.replyCh:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the reply never reached the bot")
	}
	return bot.Reply{}
}

// TestReplyWhoseChannelLookupFailsIsRetried: telling whether a message is
// in a thread needs a channel lookup; when Discord answers it 429, then
// 500, the reply (which the gateway never sends again) is kept and retried
// until it reaches the bot, once.
func TestReplyWhoseChannelLookupFailsIsRetried(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	thread := threadUnknownToTheAdapter(f)
	f.fake.Fail(http.MethodGet, "/channels/"+thread, http.StatusTooManyRequests, 200*time.Millisecond, 1)
	f.fake.Fail(http.MethodGet, "/channels/"+thread, http.StatusInternalServerError, 0, 1)
	said := f.fake.Say(thread, discordfake.User{ID: analystID, Username: "alice"}, "kept through a 429 and a 500")
	r := waitReply(t, f)
	require.Equal(t, "kept through a 429 and a 500", r.Text)
	require.Equal(t, bot.Ref{Platform: bot.Discord, Workspace: guildID, Channel: channelID, Message: thread}, r.Parent)
	require.Equal(t, "discord:msg:"+said.ID, r.Key)
	lookups := f.fake.CallsTo(http.MethodGet, "/channels/"+thread)
	require.Len(t, lookups, 3)
	require.Equal(t, []int{429, 500, 200}, []int{lookups[0].Status, lookups[1].Status, lookups[2].Status})
	select {
	case r := <-f.h.replyCh:
		t.Fatalf("handed over twice: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	require.Empty(t, f.fake.Violations())
}

// TestReplyTheBotCannotStoreIsKept: while the bot cannot store replies (its
// database is unreachable), a reply from the gateway is kept in memory and
// handed over again until the bot takes it.
func TestReplyTheBotCannotStoreIsKept(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.h.refuseReplies = 2
	f.start(t)
	ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-4"})
	require.NoError(t, err)
	f.fake.Say(ref.Message, discordfake.User{ID: analystID, Username: "alice"}, "kept until the bot can store it")
	r := waitReply(t, f)
	require.Equal(t, "kept until the bot can store it", r.Text)
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	require.Equal(t, 3, f.h.replyCalls, "refused twice, taken the third time")
}

// TestKeptReplyHoldsTheThreadMark: while an older reply of a thread waits
// in memory to be handed over, a newer one is handed over with HoldMark, so
// the bot's mark for the thread (where a catch-up starts reading after a
// restart) cannot pass the one waiting; once it is taken, marks move again.
func TestKeptReplyHoldsTheThreadMark(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var release atomic.Bool
	f.h.refuse = func(r bot.Reply) bool { return r.Text == "older, kept" && !release.Load() }
	f.start(t)
	ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-5"})
	require.NoError(t, err)
	alice := discordfake.User{ID: analystID, Username: "alice"}
	f.fake.Say(ref.Message, alice, "older, kept")
	require.True(t, testwait.Until(10*time.Second, func() bool {
		f.h.mu.Lock()
		defer f.h.mu.Unlock()
		return f.h.replyCalls >= 1
	}, f.h))
	f.fake.Say(ref.Message, alice, "newer, taken at once")
	r := waitReply(t, f)
	require.Equal(t, "newer, taken at once", r.Text)
	require.True(t, r.HoldMark, "an older one is waiting")
	release.Store(true)
	r = waitReply(t, f)
	require.Equal(t, "older, kept", r.Text)
	require.False(t, r.HoldMark, "nothing older waits")
}

// TestLiveReplyDuringACatchUpHoldsTheMark: after a new gateway session a
// live reply can reach the bot before the catch-up has read its thread;
// it is handed over with HoldMark, so that the thread's mark cannot pass
// the replies the session missed; the catch-up then hands those over and
// marks the thread read through.
func TestLiveReplyDuringACatchUpHoldsTheMark(t *testing.T) {
	t.Parallel()
	f := setup(t)
	gate, asked := make(chan struct{}), make(chan struct{}, 1)
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	f.h.replyMark = func(parent bot.Ref) (string, bool) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-gate // the catch-up waits until the live reply is in
		return parent.Message, true
	}
	f.start(t)
	t.Cleanup(release) // after f.start's: runs first, so Stop never waits on the gate
	ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-6"})
	require.NoError(t, err)
	alice := discordfake.User{ID: analystID, Username: "alice"}
	f.fake.SayWhileOffline(ref.Message, alice, "missed while down")
	f.fake.DropSessions() // a new session: GUILD_CREATE lists the thread
	testwait.WaitOrTimeout(t, asked, 10*time.Second, "the catch-up of the thread")
	f.fake.Say(ref.Message, alice, "live, before the catch-up read the thread")
	r := waitReply(t, f)
	require.Equal(t, "live, before the catch-up read the thread", r.Text)
	require.True(t, r.HoldMark, "the thread is not read through yet")
	release()
	r = waitReply(t, f)
	require.Equal(t, "missed while down", r.Text)
	require.True(t, testwait.Until(10*time.Second, func() bool {
		f.h.mu.Lock()
		defer f.h.mu.Unlock()
		return len(f.h.marked) > 0
	}, f.h), "read through")
	f.fake.Say(ref.Message, alice, "after the catch-up")
	for r = waitReply(t, f); r.Text != "after the catch-up"; r = waitReply(t, f) {
		// the catch-up hands the live one over again (the bot keeps it once)
	}
	require.False(t, r.HoldMark, "read through: marks move again")
}

// TestExpiredInteractionIsNotABadBotToken: an answer that comes after the
// interaction token's 15 minutes gets Discord's 401 with 50027 Invalid
// Webhook Token; that is an expired interaction, not a bot token to reset.
func TestExpiredInteractionIsNotABadBotToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	fake := discordfake.New(t, discordfake.Options{
		Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID}}},
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		},
	})
	a, err := discord.New(discord.Config{Token: secrets.String(fake.Token()), AppID: fake.AppID(), APIURL: fake.APIURL(), Guilds: []string{guildID}},
		testLogger(t), prometheus.NewRegistry(), newHandler())
	require.NoError(t, err)
	in, _, err := fake.Prepare(fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	require.NoError(t, fake.AnsweredOverHTTP(in, []byte(`{"type":5,"data":{"flags":64}}`)))
	state, err := json.Marshal(map[string]any{"app": fake.AppID(), "token": in.Token, "deferred": true})
	require.NoError(t, err)
	r, err := a.Resume(state)
	require.NoError(t, err)
	mu.Lock()
	now = now.Add(16 * time.Minute)
	mu.Unlock()
	err = r.Respond(context.Background(), bot.Message{Text: []bot.Line{{bot.T("too late")}}}, true)
	d := requirePermanent(t, err)
	require.Equal(t, "50027", d.Code)
	require.Contains(t, d.Operator, "15 minutes")
	require.NotContains(t, d.Operator, "DISCORD_BOT_TOKEN")
	require.NotContains(t, err.Error(), in.Token)
}

// TestResponderResumesElsewhere: the bot stores a deferred interaction's
// responder state with the work; another adapter (after a restart, on
// another replica) rebuilds the responder from it and its answer fills the
// deferred response.
func TestResponderResumesElsewhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	respond := make(chan bot.Responder, 1)
	f.h.onCommand = func(c bot.Command) bot.Ack {
		respond <- c.Respond
		return bot.Ack{Private: true}
	}
	f.start(t)
	in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 5, cb.Type)
	rs, ok := (<-respond).(bot.Resumable)
	require.True(t, ok, "the responder can be stored")
	state, err := rs.ResumeState()
	require.NoError(t, err)

	other, err := discord.New(f.cfg, testLogger(t), prometheus.NewRegistry(), newHandler())
	require.NoError(t, err)
	resumed, err := other.Resume(state)
	require.NoError(t, err)
	require.NoError(t, resumed.Respond(context.Background(), bot.Message{Text: []bot.Line{{bot.T("answered after a restart")}}}, true))
	orig, ok := f.fake.OriginalResponse(in)
	require.True(t, ok)
	require.Equal(t, "answered after a restart", orig.Content)
	require.Equal(t, 64, orig.Flags&64, "still private")
	_, err = other.Resume([]byte(`{"app":"1"}`))
	require.Error(t, err, "a state without a token")
	require.Empty(t, f.fake.Violations())
}
