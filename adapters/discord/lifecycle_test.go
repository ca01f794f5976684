package discord_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestStartedOnce: a second Start is an error, as for every service; so is
// a Start after Stop. Stop before Start is safe.
func TestStartedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	require.ErrorIs(t, f.adapter.Start(context.Background()), lifecycle.ErrStarted)
	require.NoError(t, f.adapter.Stop())
	require.True(t, f.fake.WaitSessions(0, 10*time.Second), "Stop closed the gateway session")
	require.ErrorIs(t, f.adapter.Start(context.Background()), lifecycle.ErrStopped)

	g := setup(t)
	require.NoError(t, g.adapter.Stop())
}

// TestAPanicInTheHandlerIsAnswered: a handler that panics on an
// interaction does not end the process: the person gets the generic
// answer, the panic is counted, and the next interaction is handled. A
// thread reply whose hand-over panics is dropped (retrying would repeat the
// bug), and the next reply is handed over.
func TestAPanicInTheHandlerIsAnswered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	var calls atomic.Int32
	f.h.mu.Lock()
	f.h.onCommand = func(bot.Command) bot.Ack {
		if calls.Add(1) == 1 {
			panic("command bug")
		}
		return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("help text")}}}, Private: true}
	}
	f.h.mu.Unlock()
	answer := func() string {
		t.Helper()
		in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "help", nil))
		require.NoError(t, err)
		cb, err := in.Wait(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, 4, cb.Type)
		var m discordfake.MessageBody
		require.NoError(t, json.Unmarshal(cb.Data, &m))
		require.Equal(t, 64, m.Flags, "private")
		return *m.Content
	}
	require.Equal(t, "Something went wrong; please try again.", answer())
	require.Equal(t, "help text", answer(), "the next interaction is handled")
	require.EqualValues(t, 1, panicCount(t, f.reg, "discord"))

	f.h.mu.Lock()
	f.h.panicReplies = 1
	f.h.mu.Unlock()
	thread := threadUnknownToTheAdapter(f)
	f.fake.Say(thread, discordfake.User{ID: analystID, Username: "alice"}, "met a bug")
	require.Eventually(t, func() bool { return panicCount(t, f.reg, "discord") == 2 }, 5*time.Second, 5*time.Millisecond,
		"the hand-over panicked") // a counter: nothing to wait on
	f.fake.Say(thread, discordfake.User{ID: analystID, Username: "alice"}, "handed over")
	require.Equal(t, "handed over", waitReply(t, f).Text)
	f.h.mu.Lock()
	require.Equal(t, 2, f.h.replyCalls, "the reply that panicked is not retried")
	f.h.mu.Unlock()
	require.NoError(t, f.adapter.Stop(), "the panics stayed inside their boundary")
}

// panicCount reads threatdesk_panics_total{component}.
func panicCount(t testing.TB, reg prometheus.Gatherer, component string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == component {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("threatdesk_panics_total{component=%q} is not registered", component)
	return 0
}

// TestRefusedGatewayWaitsLong: Discord closes the IDENTIFY with 4014 when
// the Message Content intent is not switched on in the Developer Portal.
// Trying again every few seconds cannot help, and Discord resets a bot's
// token after 1,000 IDENTIFYs in a day: the adapter waits RefusedWait
// (15 minutes by default) before the next try. It tried again within a
// second, then every 30 s: about 2,900 a day.
func TestRefusedGatewayWaitsLong(t *testing.T) {
	t.Parallel()
	fake := discordfake.New(t, discordfake.Options{
		Guilds:            []discordfake.Guild{{ID: guildID, Channels: []string{channelID}}},
		DisallowedIntents: int(discordgo.IntentsMessageContent),
	})
	a, err := discord.New(discord.Config{Token: secrets.String(fake.Token()), AppID: fake.AppID(), APIURL: fake.APIURL(),
		Guilds: []string{guildID}, RefusedWait: time.Hour}, testLogger(t), prometheus.NewRegistry(), newHandler())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, a.Start(context.Background()))
	testwait.For(t, 10*time.Second, "the first IDENTIFY", func() bool { return fake.IdentifyTries() >= 1 }, fake)
	time.Sleep(2500 * time.Millisecond) // the old backoff tried again after 1 s and 2 s
	require.Equal(t, 1, fake.IdentifyTries(), "no IDENTIFY again before RefusedWait")
	require.Zero(t, fake.Sessions())
}

// TestNoSessionStartsLeftWaits: Discord gives a bot a number of gateway
// session starts a day (GET /gateway/bot's session_start_limit) and
// resets its token past them. With none left the adapter sends no
// IDENTIFY until they are given again; it never read the limit.
func TestNoSessionStartsLeftWaits(t *testing.T) {
	t.Parallel()
	fake := discordfake.New(t, discordfake.Options{
		Guilds:            []discordfake.Guild{{ID: guildID, Channels: []string{channelID}}},
		DisallowedIntents: int(discordgo.IntentsMessageContent), // each start is refused and spends one
		SessionStarts:     1,
	})
	a, err := discord.New(discord.Config{Token: secrets.String(fake.Token()), AppID: fake.AppID(), APIURL: fake.APIURL(),
		Guilds: []string{guildID}, RefusedWait: 200 * time.Millisecond}, testLogger(t), prometheus.NewRegistry(), newHandler())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	require.NoError(t, a.Start(context.Background()))
	testwait.For(t, 10*time.Second, "the first IDENTIFY", func() bool { return fake.IdentifyTries() >= 1 }, fake)
	time.Sleep(time.Second) // five RefusedWaits
	require.Equal(t, 1, fake.IdentifyTries(), "no IDENTIFY past the session starts left")
}
