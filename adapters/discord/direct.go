package discord

import (
	"cmp"
	"context"
	"fmt"

	"github.com/threatdesk/threatdesk/bot"
)

var (
	_ bot.DirectMessenger = (*Adapter)(nil)
	_ bot.Permalinker     = (*Adapter)(nil)
)

// OpenDirect implements bot.DirectMessenger: POST /users/@me/channels with
// the user gives the DM channel, where messages are then created. Someone
// who does not accept direct messages is refused when the message is
// created (50007), and an unknown user when the channel is opened (50033):
// both are bot.ErrUnreachable.
func (a *Adapter) OpenDirect(ctx context.Context, workspace, userID string) (string, error) {
	if !bot.IsDiscordID(userID) {
		return "", bot.UnreachableError("bad_user", "not a Discord user id", fmt.Errorf("direct message to %q", userID))
	}
	return a.dmChannel(ctx, userID)
}

// Permalink implements bot.Permalinker: Discord's message links are
// https://discord.com/channels/<guild>/<channel>/<message> (@me for a
// direct message), no call needed.
func (a *Adapter) Permalink(_ context.Context, ref bot.Ref) (string, error) {
	if !bot.IsDiscordID(ref.Channel) || !bot.IsDiscordID(ref.Message) {
		return "", bot.PermanentError("bad_ref", "not a Discord message reference", fmt.Errorf("link to channel %q message %q", ref.Channel, ref.Message))
	}
	return "https://discord.com/channels/" + cmp.Or(ref.Workspace, "@me") + "/" + ref.Channel + "/" + ref.Message, nil
}
