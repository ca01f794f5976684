package discord

import (
	"context"
	"fmt"
	"net/http"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// Pin implements bot.Pinner: it pins the desk's configuration message
// (PUT /channels/{channel}/pins/{message}; the bot needs the Pin Messages
// permission).
func (a *Adapter) Pin(ctx context.Context, ref bot.Ref) error {
	if !bot.IsDiscordID(ref.Channel) || !bot.IsDiscordID(ref.Message) {
		return bot.PermanentError("bad_ref", "not a Discord message reference", fmt.Errorf("pin: channel %q message %q", ref.Channel, ref.Message))
	}
	ep := discordgo.EndpointChannelMessagePin(ref.Channel, ref.Message)
	if _, err := a.do(ctx, "pin message", http.MethodPut, ep, discordgo.EndpointChannelMessagePin(ref.Channel, ""), nil); err != nil {
		return fmt.Errorf("pin discord message %s in channel %s: %w", ref.Message, ref.Channel, err)
	}
	return nil
}
