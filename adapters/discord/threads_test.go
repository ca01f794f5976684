package discord_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
)

func TestThreadsAndReplies(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ctx := context.Background()
	dest := bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}
	anchor, err := f.adapter.Post(ctx, dest, bot.Message{Title: "Case EOD-7 opened", ThreadName: "EOD-7 · is this lateral movement?"})
	require.NoError(t, err)
	require.Equal(t, bot.Ref{Platform: bot.Discord, Workspace: guildID, Channel: channelID, Message: anchor.Message}, anchor)
	th, ok := f.fake.Channel(anchor.Message)
	require.True(t, ok, "a thread was started on the receipt")
	require.Equal(t, channelID, th.ParentID)

	// Posting into the anchor's thread goes to the thread (id = anchor id).
	in := dest
	in.Thread = &anchor
	reply, err := f.adapter.Post(ctx, in, bot.Message{Text: []bot.Line{{bot.T("Expert: "), bot.U("looks benign")}}})
	require.NoError(t, err)
	require.Equal(t, anchor.Message, reply.Channel)
	require.Len(t, f.fake.Messages(anchor.Message), 1)

	// A human in the thread reaches the bot; bots (ours included) do not.
	f.fake.Say(anchor.Message, discordfake.User{ID: "1000000000000000077", Username: "other-bot", Bot: true}, "beep")
	f.fake.Say(channelID, discordfake.User{ID: analystID, Username: "alice"}, "not in a thread")
	human := f.fake.Say(anchor.Message, discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"}, "here is more @everyone")
	select {
	case r := <-f.h.replyCh:
		require.Equal(t, bot.Reply{
			Parent:  bot.Ref{Platform: bot.Discord, Workspace: guildID, Channel: channelID, Message: anchor.Message},
			Message: bot.Ref{Platform: bot.Discord, Workspace: guildID, Channel: anchor.Message, Message: human.ID},
			Author:  bot.User{Platform: bot.Discord, Workspace: guildID, ID: analystID, DisplayName: "Alice"},
			Text:    "here is more @everyone",
			Key:     "discord:msg:" + human.ID,
		}, r)
	case <-time.After(5 * time.Second):
		t.Fatal("no reply reached the bot")
	}
	select {
	case r := <-f.h.replyCh:
		t.Fatalf("unexpected reply %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	require.Len(t, f.fake.CallsTo(http.MethodPost, "/channels/"+channelID+"/messages/"+anchor.Message+"/threads"), 1)
	require.Empty(t, f.fake.Violations())
}

func TestPostIntoMissingThreadStartsIt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	dest := bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}
	// The thread start fails once (the message is still posted).
	f.fake.Fail(http.MethodPost, "/channels/"+channelID+"/messages/", 500, 0, 1)
	anchor, err := f.adapter.Post(ctx, dest, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-8"})
	require.NoError(t, err)
	_, ok := f.fake.Channel(anchor.Message)
	require.False(t, ok)
	in := dest
	in.Thread = &anchor
	ref, err := f.adapter.Post(ctx, in, bot.Message{Text: []bot.Line{{bot.T("relay")}}, ThreadName: "EOD-8"})
	require.NoError(t, err)
	require.Equal(t, anchor.Message, ref.Channel)
	_, ok = f.fake.Channel(anchor.Message)
	require.True(t, ok)
	require.Empty(t, f.fake.Violations())
}
