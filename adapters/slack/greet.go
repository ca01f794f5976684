package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

var _ bot.HomePublisher = (*Adapter)(nil)

// greetingEvent reports whether an Events API event type is an occasion
// for threatdesk to introduce itself: invited to a channel
// (https://docs.slack.dev/reference/events/member_joined_channel, for our
// own user) or its App Home opened
// (https://docs.slack.dev/reference/events/app_home_opened).
func greetingEvent(typ string) bool {
	return typ == "member_joined_channel" || typ == "app_home_opened"
}

// greetEvent is the part of those events the adapter reads.
type greetEvent struct {
	Type    string          `json:"type"`
	User    string          `json:"user"`
	Channel string          `json:"channel"`
	Team    string          `json:"team"`
	Tab     string          `json:"tab"`
	View    json.RawMessage `json:"view"`
}

// greetingEvent hands a greeting occasion to the bot, when the handler is
// a bot.Greeter. An occasion the bot could not record is an error: it is
// not acknowledged, so that Slack delivers it again.
func (a *Adapter) greetingEvent(ctx context.Context, transport string, oe outerEvent) error {
	g, ok := a.handler.(bot.Greeter)
	var ev greetEvent
	if !ok || json.Unmarshal(oe.Event, &ev) != nil {
		a.metrics.in(transport, "event", "ignored")
		return nil
	}
	team := cmp.Or(oe.TeamID, ev.Team)
	var greeting bot.Greeting
	switch ev.Type {
	case "member_joined_channel":
		ictx, cancel := context.WithTimeout(ctx, identityWait)
		own := a.botUser(ictx, team)
		cancel()
		if own == "" || ev.User != own {
			a.metrics.in(transport, "event", "ignored")
			return nil // someone else joined
		}
		greeting = bot.Greeting{Kind: bot.GreetInvited, Platform: bot.Slack, Workspace: team, Channel: ev.Channel}
	case "app_home_opened":
		if ev.Tab != "home" || ev.User == "" {
			a.metrics.in(transport, "event", "ignored")
			return nil
		}
		greeting = bot.Greeting{Kind: bot.GreetHome, Platform: bot.Slack, Workspace: team, User: ev.User}
	}
	err := a.toBot("greeting", func() error { return g.HandleGreeting(ctx, greeting) })
	switch {
	case lifecycle.IsPanic(err):
		a.metrics.in(transport, "event", "failed") // logged with its stack; a redelivery would repeat it
	case err != nil:
		a.metrics.in(transport, "event", "unstored")
		return fmt.Errorf("greeting %s: %w", ev.Type, err)
	default:
		a.metrics.in(transport, "event", "handled")
	}
	return nil
}

// PublishHome implements bot.HomePublisher: it publishes m as userID's App
// Home tab (views.publish).
func (a *Adapter) PublishHome(ctx context.Context, workspace, userID string, m bot.Message) error {
	blocks, _ := RenderBlocks(m)
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: blocks}}
	api, err := a.client(ctx, workspace)
	if err != nil {
		return fmt.Errorf("publish the App Home of %q: %w", userID, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	_, err = api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: userID, View: view})
	a.metrics.call("views.publish", err)
	if err != nil {
		return fmt.Errorf("publish the App Home of %q: %w", userID, a.failed(workspace, "views.publish", err))
	}
	return nil
}
