package discord

import (
	"context"
	"encoding/json"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// changeKey is the delivery key of a thread message (change empty), of one
// edit of it (its edited_timestamp) or of its deletion.
func changeKey(m *discordgo.Message, change bot.ReplyChange) string {
	switch change {
	case bot.ReplyEdited:
		ts := ""
		if m.EditedTimestamp != nil {
			ts = m.EditedTimestamp.UTC().Format(time.RFC3339Nano)
		}
		return "discord:edit:" + m.ID + ":" + ts
	case bot.ReplyDeleted:
		return "discord:delete:" + m.ID
	}
	return "discord:msg:" + m.ID
}

// onChange hands an edit (MESSAGE_UPDATE, the whole message) or a deletion
// (MESSAGE_DELETE: its id, channel and guild only) of a person's message to
// the bot, so that the message it was relayed as follows it; as for new
// messages, one that cannot be handed over now is kept and retried. Our own
// and other bots' edits, edits without an edited_timestamp (an embed
// resolved) and messages outside guilds are ignored.
// https://discord.com/developers/docs/events/gateway-events#message-update
func (a *Adapter) onChange(ctx context.Context, event string, raw []byte) {
	var m discordgo.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		a.log.Warn("bad "+event, "err", err)
		return
	}
	if m.GuildID == "" || m.ID == "" {
		return
	}
	change := bot.ReplyDeleted
	if event == "MESSAGE_UPDATE" {
		if m.Author == nil || m.Author.Bot || m.Author.System || m.WebhookID != "" || m.Author.ID == a.self() || m.EditedTimestamp == nil {
			return
		}
		if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
			return
		}
		change = bot.ReplyEdited
	}
	if err := a.handOverChange(ctx, &m, change); err != nil {
		a.keepReply(&m, change, err)
	}
}

// recentJoin is how long after joining a guild its GUILD_CREATE still
// counts as an invitation (a bot that joined while disconnected hears of it
// when it connects); older guilds are the ones it already had.
const recentJoin = 24 * time.Hour

// onGuildCreate greets a guild the bot has just joined (its joined_at is
// recent), when the handler is a bot.Greeter; the bot greets each guild
// once.
func (a *Adapter) onGuildCreate(ctx context.Context, raw []byte) {
	g, ok := a.h.(bot.Greeter)
	if !ok {
		return
	}
	var gc struct {
		ID            string    `json:"id"`
		JoinedAt      time.Time `json:"joined_at"`
		SystemChannel string    `json:"system_channel_id"`
		Unavailable   bool      `json:"unavailable"`
	}
	if err := json.Unmarshal(raw, &gc); err != nil || gc.Unavailable || gc.JoinedAt.IsZero() || time.Since(gc.JoinedAt) > recentJoin {
		return
	}
	err := a.toBot("greeting", func() error {
		return g.HandleGreeting(ctx, bot.Greeting{Kind: bot.GreetGuild, Platform: bot.Discord, Workspace: gc.ID, Channel: gc.SystemChannel})
	})
	if err != nil {
		a.log.Warn("could not greet a guild just joined", "guild", gc.ID, "err", err)
	}
}
