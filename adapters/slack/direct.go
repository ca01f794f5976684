package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

var (
	_ bot.DirectMessenger = (*Adapter)(nil)
	_ bot.Permalinker     = (*Adapter)(nil)
)

// unreachableCodes are conversations.open's answers for a person a direct
// message cannot reach (https://docs.slack.dev/reference/methods/conversations.open#errors).
var unreachableCodes = map[string]bool{
	"user_not_found":   true,
	"user_disabled":    true,
	"user_not_visible": true,
	"cannot_dm_bot":    true,
}

// OpenDirect implements bot.DirectMessenger: conversations.open with the
// user (scope im:write) returns the id of the app's direct conversation with
// them, where chat.postMessage then posts. A user Slack cannot reach
// (deactivated, unknown, not visible to the app) is bot.ErrUnreachable.
func (a *Adapter) OpenDirect(ctx context.Context, workspace, userID string) (string, error) {
	api, err := a.client(ctx, workspace)
	if err != nil {
		return "", fmt.Errorf("open a direct message with %q: %w", userID, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{userID}})
	a.metrics.call("conversations.open", err)
	if err != nil {
		if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok && unreachableCodes[se.Err] {
			return "", bot.UnreachableError(se.Err, operatorHelp[se.Err], fmt.Errorf("conversations.open with %q: %w", userID, err))
		}
		return "", fmt.Errorf("open a direct message with %q: %w", userID, a.failed(workspace, "conversations.open", err))
	}
	if ch == nil || ch.ID == "" {
		return "", &bot.DeliveryError{Kind: bot.Temporary, Code: "bad_response", Err: errors.New("conversations.open: no channel in Slack's answer")}
	}
	return ch.ID, nil
}

// Permalink implements bot.Permalinker with chat.getPermalink.
func (a *Adapter) Permalink(ctx context.Context, ref bot.Ref) (string, error) {
	api, err := a.client(ctx, ref.Workspace)
	if err != nil {
		return "", fmt.Errorf("link to message %s in channel %q: %w", ref.Message, ref.Channel, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	url, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: ref.Channel, Ts: ref.Message})
	a.metrics.call("chat.getPermalink", err)
	if err != nil {
		return "", fmt.Errorf("link to message %s in channel %q: %w", ref.Message, ref.Channel, a.failed(ref.Workspace, "chat.getPermalink", err))
	}
	return url, nil
}
