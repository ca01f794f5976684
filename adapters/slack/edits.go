package slack

import (
	"cmp"
	"context"

	"github.com/threatdesk/threatdesk/bot"
)

// change turns a message_changed or message_deleted event of a person's
// thread message into a bot.Reply with Change set, so that the message it
// was relayed as follows it. Our own and other bots' messages, messages
// outside threads and changes that leave the text as it was (an unfurl, a
// language tag) are ignored.
func (a *Adapter) change(ctx context.Context, oe outerEvent, me messageEvent) (bot.Reply, bool) {
	var msg *messageEvent
	change := bot.ReplyEdited
	switch me.SubType {
	case "message_changed":
		msg = me.Message
		if msg == nil || (me.PreviousMessage != nil && me.PreviousMessage.Text == msg.Text) {
			return bot.Reply{}, false
		}
	case "message_deleted":
		msg, change = me.PreviousMessage, bot.ReplyDeleted
		if msg == nil {
			return bot.Reply{}, false
		}
		msg.TS = cmp.Or(me.DeletedTS, msg.TS)
	default:
		return bot.Reply{}, false
	}
	switch me.ChannelType {
	case "channel", "group", "":
	default:
		return bot.Reply{}, false
	}
	if msg.ThreadTS == "" || msg.ThreadTS == msg.TS || msg.User == "" || msg.BotID != "" {
		return bot.Reply{}, false
	}
	switch msg.SubType {
	case "", "thread_broadcast", "file_share":
	default:
		return bot.Reply{}, false
	}
	ictx, cancel := context.WithTimeout(ctx, identityWait)
	own, err := a.identity(ictx)
	cancel()
	if err == nil && msg.User == own {
		return bot.Reply{}, false
	}
	team := cmp.Or(oe.TeamID, me.Team, msg.Team)
	r := bot.Reply{
		Parent:  bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: msg.ThreadTS},
		Message: bot.Ref{Platform: bot.Slack, Workspace: team, Channel: me.Channel, Message: msg.TS},
		Author:  bot.User{Platform: bot.Slack, Workspace: authorTeam(oe, *msg, team), ID: msg.User},
		Key:     eventKey(oe.EventID),
		Change:  change,
	}
	if change == bot.ReplyEdited {
		r.Text = ReadableText(msg.Text)
	}
	return r, true
}
