package discord_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

func TestEveryoneInQuestionPingsNoOne(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	q := "@everyone @here <@&123> <@" + analystID + "> is this **lateral movement**? [x](https://evil.example)"
	for _, m := range []bot.Message{
		{Text: []bot.Line{{bot.T("Question: "), bot.U(q)}}},
		{Title: "Case EOD-1 @everyone", Text: []bot.Line{{bot.U(q)}}, Fields: []bot.Field{{Label: "Asked by", Value: bot.Line{bot.U("@here")}}}},
	} {
		ref, err := f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}, m)
		require.NoError(t, err)
		got, ok := f.fake.Message(ref.Message)
		require.True(t, ok)
		text := got.Content
		for _, e := range got.Embeds {
			text += e.Title + e.Description
		}
		require.NotContains(t, text, "@everyone", "mention syntax is broken up")
		require.NotContains(t, text, "<@&123>")
		require.Contains(t, text, `\[x\](https://evil.example)`, "untrusted text makes no masked link")
	}
	require.Empty(t, f.fake.Pings(), "nothing pings")
	require.Empty(t, f.fake.Violations())
	for _, c := range f.fake.CallsTo(http.MethodPost, "/channels/") {
		var body map[string]any
		require.NoError(t, json.Unmarshal(c.Body, &body))
		require.Equal(t, map[string]any{"parse": []any{}}, body["allowed_mentions"])
	}
}

func TestFakeRejectsMessagesThatCouldPing(t *testing.T) {
	t.Parallel()
	fake := discordfake.New(t, discordfake.Options{Lenient: true, Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID}}}})
	tests := []struct {
		name string
		body string
	}{
		{"no allowed_mentions", `{"content":"@everyone hi"}`},
		{"null parse", `{"content":"hi","allowed_mentions":{"parse":null}}`},
		{"parse everyone", `{"content":"@everyone","allowed_mentions":{"parse":["everyone"]}}`},
		{"too long", `{"content":"` + strings.Repeat("é", 2001) + `","allowed_mentions":{"parse":[]}}`},
		{"six buttons", `{"content":"x","allowed_mentions":{"parse":[]},"components":[{"type":1,"components":[` +
			strings.TrimSuffix(strings.Repeat(`{"type":2,"style":1,"label":"b","custom_id":"ID"},`, 6), ",") + `]}]}`},
	}
	for i, tt := range tests {
		body := strings.ReplaceAll(tt.body, `"ID"`, `"id`+strings.Repeat("x", i)+`"`)
		req, _ := http.NewRequest(http.MethodPost, fake.APIURL()+"channels/"+channelID+"/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bot "+fake.Token())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, tt.name)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, tt.name)
	}
	require.GreaterOrEqual(t, len(fake.Violations()), len(tests), "each rejection recorded")
	require.Contains(t, fake.Pings(), "@everyone")
	require.Empty(t, fake.AllMessages())
}

func TestRenderingStaysWithinLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("日本語🙂 ", 3000)
	var lines []bot.Line
	for range 200 {
		lines = append(lines, bot.Line{bot.U(long[:200])})
	}
	var fields []bot.Field
	for i := range 40 {
		fields = append(fields, bot.Field{Label: strings.Repeat("L", 300) + string(rune('a'+i%26)), Value: bot.Line{bot.U(long)}})
	}
	var sections []bot.Section
	for range 5 {
		sections = append(sections, bot.Section{Title: "Devices", Lines: lines, More: 12})
	}
	var buttons []bot.Button
	for i := range 40 {
		buttons = append(buttons, bot.Button{Action: bot.ActTake, Value: "EOD-" + strings.Repeat("9", i%3) + string(rune('A'+i)), Label: strings.Repeat("Take ", 30)})
	}
	buttons = append(buttons, bot.Button{Action: bot.ActConsult, Value: strings.Repeat("x", 120), Label: "too long id"})
	tests := []struct {
		name string
		msg  bot.Message
	}{
		{"plain note", bot.Message{Text: []bot.Line{{bot.U(long)}}, Footer: bot.Line{bot.T("EOD-1")}}},
		{"card", bot.Message{Title: long, Severity: bot.SeverityHigh, Text: lines, Fields: fields, Sections: sections, Buttons: buttons, Footer: bot.Line{bot.U(long)}}},
		{"sections only", bot.Message{Sections: sections}},
		{"escapes that lengthen", bot.Message{Text: []bot.Line{{bot.U(strings.Repeat(`*_\`, 1000))}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, tt.msg)
			require.NoError(t, err)
			require.Empty(t, f.fake.Violations())
			got, ok := f.fake.Message(ref.Message)
			require.True(t, ok)
			require.LessOrEqual(t, utf8.RuneCountInString(got.Content), discord.MaxContent)
			require.True(t, utf8.ValidString(got.Content))
			for _, e := range got.Embeds {
				require.True(t, utf8.ValidString(e.Description))
				require.LessOrEqual(t, len(e.Fields), discord.MaxEmbedFields)
			}
			rows := got.Components
			require.LessOrEqual(t, len(rows), discord.MaxRows)
			for _, r := range rows {
				require.LessOrEqual(t, len(r.Components), discord.MaxButtonsPerRow)
				for _, b := range r.Components {
					require.LessOrEqual(t, len(b.CustomID), discord.MaxCustomID)
				}
			}
			// An update obeys the same limits.
			require.NoError(t, f.adapter.Update(context.Background(), ref, tt.msg))
			require.Empty(t, f.fake.Violations())
		})
	}
}

func TestAPIURLRoutesRESTGatewayDiscoveryAndWebsocket(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	// Discovery: GET {base}gateway/bot with the bot token, at the fake.
	gw := f.fake.CallsTo(http.MethodGet, "/gateway/bot")
	require.NotEmpty(t, gw, "gateway discovery went to DISCORD_API_URL")
	require.True(t, gw[0].Authed)
	// The websocket followed: the fake holds the session, with our intents.
	require.Equal(t, 1, f.fake.Sessions())
	require.Equal(t, []int{int(discord.Intents)}, f.fake.Intents())
	// REST: commands registered at the fake, per guild.
	testwait.For(t, 5*time.Second, "/experts registered in the guild", func() bool { return len(f.fake.Commands(guildID)) == 1 }, f.fake)
	cmd := f.fake.Commands(guildID)[0]
	require.Equal(t, "experts", cmd.Name)
	var subs []string
	for _, o := range cmd.Options {
		if o.Type == 2 { // a group files its subcommands: /experts case take
			for _, so := range o.Options {
				subs = append(subs, o.Name+" "+so.Name)
			}
			continue
		}
		subs = append(subs, o.Name)
	}
	require.Subset(t, subs, []string{"ask", "alert", "device", "file", "incident", "status", "cases", "credits", "help",
		"case take", "case assign", "case resolve", "admin sample-notification"})
	require.LessOrEqual(t, len(cmd.Options), discord.MaxSubcommands, "Discord takes at most 25 subcommands and groups")
	require.Empty(t, f.fake.Violations())
	for _, c := range f.fake.Calls() {
		require.NotContains(t, c.Path, "discord.com")
	}
}

// TestOneGuildRefusingRegistrationStopsNoOther: a customer removed the bot
// from its server (Discord answers 403 Missing Access for that guild): the
// guilds after it still get /experts. Registration stopped at the first
// permanent failure, so a new org and the desk never got the command.
func TestOneGuildRefusingRegistrationStopsNoOther(t *testing.T) {
	t.Parallel()
	const gone = "900000000000000099"
	f := setup(t, func(c *discord.Config) { c.Guilds = []string{gone, guildID}; c.DisableGateway = true })
	require.NoError(t, f.adapter.Start(context.Background()))
	testwait.For(t, 5*time.Second, "/experts registered in the guild after the refusing one",
		func() bool { return len(f.fake.Commands(guildID)) == 1 }, f.fake)
	require.Empty(t, f.fake.Commands(gone))
}

func TestGlobalCommandRegistration(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *discord.Config) { c.Guilds = nil; c.DisableGateway = true })
	require.NoError(t, f.adapter.Start(context.Background()))
	testwait.For(t, 5*time.Second, "/experts registered globally", func() bool { return len(f.fake.Commands("")) == 1 }, f.fake)
	require.Empty(t, f.fake.CallsTo(http.MethodGet, "/gateway"), "no gateway when disabled")
}

func TestDeliveryErrorsAreClassified(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(f fixture)
		channel string
		kind    bot.ErrorKind
		code    string
		wait    time.Duration
	}{
		{"429 surfaces retry_after", func(f fixture) {
			f.fake.Fail(http.MethodPost, "/channels/", http.StatusTooManyRequests, 1500*time.Millisecond, 1)
		}, channelID, bot.RateLimited, "ratelimited", 1500 * time.Millisecond},
		{"500 is temporary", func(f fixture) { f.fake.Fail(http.MethodPost, "/channels/", 500, 0, 1) }, channelID, bot.Temporary, "500", 0},
		{"502 is temporary, not retried inside", func(f fixture) { f.fake.Fail(http.MethodPost, "/channels/", 502, 0, 1) }, channelID, bot.Temporary, "502", 0},
		{"unknown channel is permanent", func(fixture) {}, "1999999999999999999", bot.Permanent, "10003", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			tt.prepare(f)
			start := time.Now()
			_, err := f.adapter.Post(context.Background(), bot.Dest{Channel: tt.channel}, bot.Message{Text: []bot.Line{{bot.T("hi")}}})
			require.Error(t, err)
			require.Less(t, time.Since(start), time.Second, "no sleeping inside discordgo")
			kind, wait := bot.Classify(err)
			require.Equal(t, tt.kind, kind, err.Error())
			var de *bot.DeliveryError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tt.code, de.Code)
			if tt.wait > 0 {
				require.InDelta(t, tt.wait.Seconds(), wait.Seconds(), 0.01)
			}
			require.NotContains(t, err.Error(), f.fake.Token())
			require.Len(t, f.fake.CallsTo(http.MethodPost, "/channels/"), 1, "exactly one request: the outbox retries, not discordgo")
		})
	}
}

// TestGlobalRateLimitHoldsEveryRoute: a global 429 (Discord's shape:
// Retry-After, X-RateLimit-Global, no bucket headers) holds every route,
// not only the one that got it: a post to another channel waits without
// asking Discord. Other channels went on sending, each request refused
// and counted toward Discord's ban of 10,000 invalid requests in 10
// minutes.
func TestGlobalRateLimitHoldsEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.fake.FailGlobal(2*time.Second, 1)
	msg := bot.Message{Text: []bot.Line{{bot.T("hi")}}}
	_, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, msg)
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind)
	_, err = f.adapter.Post(context.Background(), bot.Dest{Channel: deskID}, msg)
	kind, wait := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind, "another channel waits too")
	require.Greater(t, wait, time.Second)
	require.Empty(t, f.fake.CallsTo(http.MethodPost, "/channels/"+deskID), "without asking Discord")
}

// TestCloudflareBanHoldsEveryRoute: Cloudflare bans an address that sent
// too many invalid requests, answering 429 with an HTML page and
// Retry-After. It was taken as a transport error and retried soon, each
// retry on any route prolonging the ban; it now holds every route until
// its Retry-After, as a global limit does.
func TestCloudflareBanHoldsEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.fake.FailBanned(30*time.Second, 1)
	msg := bot.Message{Text: []bot.Line{{bot.T("hi")}}}
	_, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, msg)
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind, "%v", err)
	_, err = f.adapter.Post(context.Background(), bot.Dest{Channel: deskID}, msg)
	kind, wait := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind, "another channel waits too")
	require.Greater(t, wait, 20*time.Second, "the ban's Retry-After")
	require.Empty(t, f.fake.CallsTo(http.MethodPost, "/channels/"+deskID), "without asking Discord")
}

func TestRateLimitedBucketSurfacesWithoutCalling(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.fake.Fail(http.MethodPost, "/channels/", http.StatusTooManyRequests, 2*time.Second, 1)
	dest := bot.Dest{Channel: channelID}
	msg := bot.Message{Text: []bot.Line{{bot.T("hi")}}}
	_, err := f.adapter.Post(context.Background(), dest, msg)
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind)
	// The route's bucket is exhausted: the next post does not sleep in
	// discordgo nor hit Discord; it says how long to wait.
	start := time.Now()
	_, err = f.adapter.Post(context.Background(), dest, msg)
	kind, wait := bot.Classify(err)
	require.Equal(t, bot.RateLimited, kind)
	require.Greater(t, wait, time.Second)
	require.Less(t, time.Since(start), 100*time.Millisecond)
	require.Len(t, f.fake.CallsTo(http.MethodPost, "/channels/"), 1)
}

func TestBadTokenIsPermanentAndRedacted(t *testing.T) {
	t.Parallel()
	const secret = "definitely-not-the-token"
	f := setup(t, func(c *discord.Config) { c.Token = secret })
	_, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("hi")}}})
	kind, _ := bot.Classify(err)
	require.Equal(t, bot.Permanent, kind)
	require.Contains(t, err.Error(), "DISCORD_BOT_TOKEN")
	require.NotContains(t, err.Error(), secret)
	err = f.adapter.Start(context.Background())
	require.Error(t, err, "start fails fast on a rejected token")
	require.NotContains(t, err.Error(), secret)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	const app = "1100000000000000001"
	tests := []struct {
		name string
		cfg  discord.Config
		want string
	}{
		{"no token", discord.Config{AppID: app}, "DISCORD_BOT_TOKEN is empty"},
		{"token with spaces", discord.Config{Token: "x y", AppID: app}, "DISCORD_BOT_TOKEN contains whitespace"},
		{"no app", discord.Config{Token: "x"}, "DISCORD_APP_ID must be set with DISCORD_BOT_TOKEN"},
		{"bad app", discord.Config{Token: "x", AppID: "app"}, `DISCORD_APP_ID "app" must be a numeric Discord id (a snowflake, 15 to 21 digits)`},
		// One rule for every Discord id: 15 to 21 digits (the adapter once
		// took 1 to 20 here, internal/config 15 to 21).
		{"short app", discord.Config{Token: "x", AppID: "1"}, `DISCORD_APP_ID "1" must be a numeric Discord id`},
		{"bad key", discord.Config{Token: "x", AppID: app, PublicKey: "zz"}, "DISCORD_PUBLIC_KEY must be the 64 hex characters"},
		{"bad url", discord.Config{Token: "x", AppID: app, APIURL: "discord.com"}, `DISCORD_API_URL "discord.com" must be an http(s) URL`},
		// README: DISCORD_API_URL ends in a slash (the adapter once added it).
		{"no trailing slash", discord.Config{Token: "x", AppID: app, APIURL: "https://discord.com/api/v10"}, "must end with a slash"},
		{"slow ack", discord.Config{Token: "x", AppID: app, AckTimeout: 3 * time.Second}, "AckTimeout under Discord's 3s"},
	}
	for _, tt := range tests {
		_, err := discord.New(tt.cfg, nil, nil, newHandler())
		require.ErrorContains(t, err, tt.want, tt.name)
		require.NotContains(t, err.Error(), "x\"", tt.name)
	}
	_, err := discord.New(discord.Config{Token: "Bot x", AppID: app, PublicKey: strings.Repeat("ab", 32)}, nil, nil, newHandler())
	require.NoError(t, err, `a "Bot " prefix is trimmed`)
	require.NoError(t, discord.Config{}.WithDefaults().Validate(), "Discord not configured is not an error")
	require.ErrorContains(t, discord.Config{PublicKey: strings.Repeat("ab", 32)}.WithDefaults().Validate(),
		"DISCORD_PUBLIC_KEY is set but DISCORD_BOT_TOKEN is not")
}

func TestOpenFormIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	err := f.adapter.OpenForm(context.Background(), "trigger", bot.Form{ID: "ask"})
	require.ErrorIs(t, err, discord.ErrFormNeedsAck)
}

func TestUserNameAndPrivatePost(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	name, err := f.adapter.UserName(ctx, guildID, analystID)
	require.NoError(t, err)
	require.Equal(t, "Alice (SOC)", name)
	name, err = f.adapter.UserName(ctx, "", analystID)
	require.NoError(t, err)
	require.Equal(t, "Alice", name)
	require.NoError(t, f.adapter.PostPrivate(ctx, bot.Dest{Channel: channelID}, analystID, bot.Message{Text: []bot.Line{{bot.T("only you")}}}))
	require.Len(t, f.fake.CallsTo(http.MethodPost, "/users/@me/channels"), 1)
	require.Empty(t, f.fake.Violations())
}

func TestNonceMakesRetriedPostsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dest := bot.Dest{Channel: channelID, Key: "outbox:42:receipt"}
	msg := bot.Message{Text: []bot.Line{{bot.T("receipt")}}}
	a, err := f.adapter.Post(context.Background(), dest, msg)
	require.NoError(t, err)
	b, err := f.adapter.Post(context.Background(), dest, msg)
	require.NoError(t, err)
	require.Equal(t, a, b, "same key, same message")
	require.Len(t, f.fake.Messages(channelID), 1)
	var body map[string]any
	require.NoError(t, json.Unmarshal(f.fake.CallsTo(http.MethodPost, "/channels/")[0].Body, &body))
	require.Len(t, body["nonce"], discord.MaxNonce)
	require.Equal(t, true, body["enforce_nonce"])
}
