package discordfake_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

const (
	guild   = "1000000000000000001"
	channel = "1000000000000000002"
)

// rewrite sends discordgo's requests for Discord to the fake.
type rewrite struct{ base string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL.String()
	if rest, ok := strings.CutPrefix(u, discordgo.EndpointAPI); ok {
		nr := req.Clone(req.Context())
		var err error
		nr.URL, err = nr.URL.Parse(r.base + rest)
		if err != nil {
			return nil, err
		}
		nr.Host = nr.URL.Host
		req = nr
	}
	return http.DefaultTransport.RoundTrip(req)
}

func session(t *testing.T, fake *discordfake.Server, token string) *discordgo.Session {
	t.Helper()
	s, err := discordgo.New("Bot " + token)
	require.NoError(t, err)
	s.Client = &http.Client{Transport: rewrite{base: fake.APIURL()}, Timeout: 10 * time.Second}
	s.Dialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	s.ShouldRetryOnRateLimit = false
	s.StateEnabled = false
	s.LogLevel = -1
	return s
}

func newFake(t *testing.T, lenient bool) *discordfake.Server {
	return discordfake.New(t, discordfake.Options{Lenient: lenient, Guilds: []discordfake.Guild{{ID: guild, Channels: []string{channel}}}})
}

// The real discordgo client connects: HELLO, IDENTIFY, READY, GUILD_CREATE,
// and events dispatched by the fake arrive.
func TestDiscordgoGatewayAgainstFake(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	s := session(t, fake, fake.Token())
	ready := make(chan *discordgo.Ready, 1)
	guilds := make(chan *discordgo.GuildCreate, 1)
	msgs := make(chan *discordgo.MessageCreate, 1)
	s.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) { ready <- r })
	s.AddHandler(func(_ *discordgo.Session, g *discordgo.GuildCreate) { guilds <- g })
	s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { msgs <- m })
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentMessageContent
	require.NoError(t, s.Open())
	t.Cleanup(func() { _ = s.Close() })

	r := <-ready
	require.Equal(t, fake.BotID(), r.User.ID)
	g := <-guilds
	require.Equal(t, guild, g.ID)
	require.Len(t, g.Channels, 1)
	require.True(t, fake.WaitSessions(1, 5*time.Second))

	fake.Say(channel, discordfake.User{ID: "1000000000000000010", Username: "alice"}, "hello")
	m := <-msgs
	require.Equal(t, "hello", m.Content)
	require.Equal(t, guild, m.GuildID)

	// A second session with the same token is counted.
	s2 := session(t, fake, fake.Token())
	// discordgo may see its own Close as a read error and reconnect; that
	// race is discordgo's, not the fake's counting under test.
	s2.ShouldReconnectOnError = false
	require.NoError(t, s2.Open())
	require.True(t, fake.WaitSessions(2, 5*time.Second))
	require.NoError(t, s2.Close())
	require.True(t, fake.WaitSessions(1, 10*time.Second), "sessions %d after closing the second; identifies %d",
		fake.Sessions(), fake.Identifies())
	require.Equal(t, 2, fake.MaxSessions())
	require.Len(t, fake.CallsTo(http.MethodGet, "/gateway"), 2)
}

func TestDiscordgoRESTAgainstFake(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	s := session(t, fake, fake.Token())
	m, err := s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{
		Content:         "hi",
		AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}},
	})
	require.NoError(t, err)
	th, err := s.MessageThreadStart(channel, m.ID, "thread", 60)
	require.NoError(t, err)
	require.Equal(t, m.ID, th.ID)
	require.Equal(t, channel, th.ParentID)
	_, err = s.MessageThreadStart(channel, m.ID, "again", 60)
	var rest *discordgo.RESTError
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 160004, rest.Message.Code)

	// 429 in Discord's shape: discordgo reads retry_after from the body.
	fake.Fail(http.MethodPost, "/channels/", http.StatusTooManyRequests, 1500*time.Millisecond, 1)
	_, err = s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: "x", AllowedMentions: &discordgo.MessageAllowedMentions{}})
	var rl *discordgo.RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 1500*time.Millisecond, rl.RetryAfter)

	// A bad token is refused.
	bad := session(t, fake, "wrong")
	_, err = bad.User("@me")
	require.ErrorAs(t, err, &rest)
	require.Equal(t, http.StatusUnauthorized, rest.Response.StatusCode)
	require.Empty(t, fake.Violations())
}

func TestFakeEnforcesLimits(t *testing.T) {
	t.Parallel()
	none := &discordgo.MessageAllowedMentions{}
	long := func(n int) string { return strings.Repeat("ü", n) }
	tests := []struct {
		name string
		msg  *discordgo.MessageSend
		want string
	}{
		{"content 2001", &discordgo.MessageSend{Content: long(2001), AllowedMentions: none}, "content is 2001"},
		{"no allowed_mentions", &discordgo.MessageSend{Content: "@everyone"}, "allowed_mentions"},
		{"title 257", &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{{Title: long(257)}}, AllowedMentions: none}, "title is 257"},
		{"description 4097", &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{{Description: long(4097)}}, AllowedMentions: none}, "description is 4097"},
		{"26 fields", &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{{Fields: fields(26, 1)}}, AllowedMentions: none}, "26 fields"},
		{"6001 in all", &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{{Description: long(4000), Fields: fields(2, 1001)}}, AllowedMentions: none}, "total"},
		{"6 rows", &discordgo.MessageSend{Content: "x", Components: rows(6, 1), AllowedMentions: none}, "6 action rows"},
		{"6 buttons", &discordgo.MessageSend{Content: "x", Components: rows(1, 6), AllowedMentions: none}, "6 buttons"},
		{"custom_id 101", &discordgo.MessageSend{Content: "x", AllowedMentions: none, Components: []discordgo.MessageComponent{
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.Button{Label: "b", CustomID: strings.Repeat("c", 101)}}}}}, "custom_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t, true)
			s := session(t, fake, fake.Token())
			_, err := s.ChannelMessageSendComplex(channel, tt.msg)
			require.Error(t, err)
			require.NotEmpty(t, fake.Violations())
			require.Contains(t, strings.Join(fake.Violations(), "\n"), tt.want)
			require.Empty(t, fake.AllMessages())
		})
	}
}

func fields(n, size int) []*discordgo.MessageEmbedField {
	var out []*discordgo.MessageEmbedField
	for range n {
		out = append(out, &discordgo.MessageEmbedField{Name: "n", Value: strings.Repeat("v", size)})
	}
	return out
}

func rows(n, buttons int) []discordgo.MessageComponent {
	var out []discordgo.MessageComponent
	id := 0
	for range n {
		var r discordgo.ActionsRow
		for range buttons {
			id++
			r.Components = append(r.Components, discordgo.Button{Label: "b", CustomID: "id" + strings.Repeat("x", id)})
		}
		out = append(out, r)
	}
	return out
}

// TestIntentsShapeMessageEvents: without the privileged MESSAGE_CONTENT
// intent a message arrives with blank text, and without GUILD_MESSAGES not
// at all, as on Discord.
func TestIntentsShapeMessageEvents(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	open := func(intents discordgo.Intent) chan *discordgo.MessageCreate {
		s := session(t, fake, fake.Token())
		msgs := make(chan *discordgo.MessageCreate, 4)
		s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { msgs <- m })
		s.Identify.Intents = intents
		require.NoError(t, s.Open())
		t.Cleanup(func() { _ = s.Close() })
		return msgs
	}
	noContent := open(discordgo.IntentsGuilds | discordgo.IntentsGuildMessages)
	noMessages := open(discordgo.IntentsGuilds)
	require.True(t, fake.WaitSessions(2, 5*time.Second))
	fake.Say(channel, discordfake.User{ID: "1000000000000000010", Username: "alice"}, "secret text")
	m := <-noContent
	require.Empty(t, m.Content)
	select {
	case m := <-noMessages:
		t.Fatalf("a session without GUILD_MESSAGES got %q", m.Content)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestEditsAndCallbacksAnswerAsDiscord: another user's message cannot be
// edited (50005), an edit cannot leave a message empty (50006), and a second
// acknowledgement of an interaction gets Discord's own code (40060).
func TestEditsAndCallbacksAnswerAsDiscord(t *testing.T) {
	t.Parallel()
	fake := newFake(t, true)
	s := session(t, fake, fake.Token())
	theirs := fake.Say(channel, discordfake.User{ID: "1000000000000000010", Username: "alice"}, "mine")
	_, err := s.ChannelMessageEdit(channel, theirs.ID, "rewritten")
	var rest *discordgo.RESTError
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 50005, rest.Message.Code)

	quiet := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	ours, err := s.ChannelMessageSendComplex(channel, &discordgo.MessageSend{Content: "x", AllowedMentions: quiet})
	require.NoError(t, err)
	empty := ""
	_, err = s.ChannelMessageEditComplex(&discordgo.MessageEdit{ID: ours.ID, Channel: channel, Content: &empty, AllowedMentions: quiet})
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 50006, rest.Message.Code)

	in, _, err := fake.Prepare(fake.CommandPayload(channel, "1000000000000000010", "experts", "help", nil))
	require.NoError(t, err)
	i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
	deferred := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}}}
	require.NoError(t, s.InteractionRespond(i, deferred))
	err = s.InteractionRespond(i, deferred)
	require.ErrorAs(t, err, &rest)
	require.Equal(t, 40060, rest.Message.Code)
}

// TestCallbackTypesAndCommandsAsDiscord: an autocomplete takes only its
// choices (a message answer to one hid a bug in the adapter), and a
// command registration with two options of one name, an empty group,
// subcommands beside options, or one command name twice is refused, as
// on Discord (from a fake-fidelity review).
func TestCallbackTypesAndCommandsAsDiscord(t *testing.T) {
	t.Parallel()
	fake := newFake(t, true)
	s := session(t, fake, fake.Token())
	in, _, err := fake.Prepare(fake.AutocompletePayload(channel, "1000000000000000010", "experts", "status", "case", "EOD"))
	require.NoError(t, err)
	i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
	_ = s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "no", AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}}})
	require.Contains(t, strings.Join(fake.Violations(), "\n"), "takes only APPLICATION_COMMAND_AUTOCOMPLETE_RESULT")

	sub := func(name string, opts ...*discordgo.ApplicationCommandOption) *discordgo.ApplicationCommandOption {
		return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommand, Name: name, Description: "d", Options: opts}
	}
	str := &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionString, Name: "text", Description: "d"}
	for want, cmds := range map[string][]*discordgo.ApplicationCommand{
		`two options named "ask"`:      {{Name: "experts", Description: "d", Options: []*discordgo.ApplicationCommandOption{sub("ask"), sub("ask")}}},
		"needs subcommands":            {{Name: "experts", Description: "d", Options: []*discordgo.ApplicationCommandOption{{Type: discordgo.ApplicationCommandOptionSubCommandGroup, Name: "case", Description: "d"}}}},
		"mixes subcommands":            {{Name: "experts", Description: "d", Options: []*discordgo.ApplicationCommandOption{sub("ask"), str}}},
		`command name "experts" twice`: {{Name: "experts", Description: "d"}, {Name: "experts", Description: "d"}},
	} {
		_, err := s.ApplicationCommandBulkOverwrite(fake.AppID(), guild, cmds)
		require.Error(t, err, want)
		require.Contains(t, strings.Join(fake.Violations(), "\n"), want)
	}
}
