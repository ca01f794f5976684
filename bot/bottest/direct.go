package bottest

import (
	"context"
	"errors"

	"github.com/threatdesk/threatdesk/bot"
)

// DirectChannel is the channel of the fake's direct conversation with a user.
func DirectChannel(userID string) string { return "D:" + userID }

// Unreachable makes OpenDirect refuse these users, as a platform refuses
// someone who blocks direct messages or whose account is gone.
func (a *Adapter) Unreachable(userIDs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range userIDs {
		a.unreachable[id] = true
	}
}

// OpenDirect implements bot.DirectMessenger: the conversation is
// DirectChannel(userID); an Unreachable user gets bot.ErrUnreachable.
func (a *Adapter) OpenDirect(ctx context.Context, workspace, userID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unreachable[userID] {
		return "", bot.UnreachableError("cannot_dm", "the user does not accept direct messages", errors.New("blocked"))
	}
	a.record(Call{Op: OpOpenDirect, UserID: userID, Ref: bot.Ref{Platform: a.platform, Channel: DirectChannel(userID)}})
	return DirectChannel(userID), nil
}

// Permalink implements bot.Permalinker: https://chat.example/<channel>/<message>.
func (a *Adapter) Permalink(ctx context.Context, ref bot.Ref) (string, error) {
	return "https://chat.example/" + ref.Channel + "/" + ref.Message, nil
}

// Directs returns the direct messages posted to userID, in order.
func (a *Adapter) Directs(userID string) []Call {
	return a.Find(OpPost, func(c Call) bool { return c.Dest.Channel == DirectChannel(userID) })
}
