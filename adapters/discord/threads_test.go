package discord_test

import (
	"context"
	"fmt"
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

// TestForwardedMessageIsRelayed: a message forwarded into a case thread
// has empty content of its own; its text is in message_snapshots. It was
// handed to the bot empty and dropped (from a fake-fidelity review): the
// forwarded text, its embeds' words and attachments go with it.
func TestForwardedMessageIsRelayed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	anchor, err := f.adapter.Post(context.Background(), bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}, bot.Message{Title: "Case EOD-1", ThreadName: "EOD-1"})
	require.NoError(t, err)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	f.fake.Dispatch("MESSAGE_CREATE", map[string]any{
		"id": f.fake.NextID(), "channel_id": anchor.Message, "guild_id": guildID, "type": 0, "content": "",
		"author": map[string]any{"id": analystID, "username": "alice"}, "timestamp": ts, "embeds": []any{}, "attachments": []any{},
		"mentions": []any{}, "mention_roles": []any{}, "tts": false, "mention_everyone": false, "pinned": false,
		"message_reference": map[string]any{"type": 1, "channel_id": channelID, "guild_id": guildID, "message_id": "1000000000000000700"},
		"message_snapshots": []any{map[string]any{"message": map[string]any{"type": 0, "content": "Defender: suspicious PowerShell on ws-017 at 09:12",
			"embeds": []any{map[string]any{"title": "High severity alert", "description": "encoded command line"}}, "timestamp": ts, "flags": 0,
			"attachments": []any{map[string]any{"id": "1000000000000000701", "filename": "ps.txt", "size": 12, "url": "https://cdn.discordapp.com/attachments/1/2/ps.txt"}},
			"mentions":    []any{}, "mention_roles": []any{}}}},
	})
	select {
	case r := <-f.h.replyCh:
		require.Equal(t, "(forwarded)\nDefender: suspicious PowerShell on ws-017 at 09:12\nHigh severity alert\nencoded command line", r.Text)
		require.Len(t, r.Files, 1)
		require.Equal(t, "ps.txt", r.Files[0].Name)
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarded message was not handed to the bot")
	}
}

// TestArchivedThreadsTakeEdits: a case thread idle for its auto-archive
// time (7 days) is archived; Discord refuses an edit inside it (50083)
// until it is unarchived, and a relayed message's edit or "(message
// deleted)" then died for good (from a fake-fidelity review; the fake did
// not archive threads). The edit unarchives the thread and goes through;
// a post unarchives it by itself; a thread a moderator locked is refused
// with what to do.
func TestArchivedThreadsTakeEdits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ctx := context.Background()
	card, err := f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID}, bot.Message{Title: "Case EOD-1", ThreadName: "EOD-1"})
	require.NoError(t, err)
	in := bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID, Thread: &card}
	relayed, err := f.adapter.Post(ctx, in, bot.Message{Text: []bot.Line{{bot.T("the host is ws-071")}}})
	require.NoError(t, err)

	f.fake.ArchiveThread(card.Message, false)
	require.NoError(t, f.adapter.Update(ctx, relayed, bot.Message{Text: []bot.Line{{bot.T("(message deleted)")}}}))
	m, ok := f.fake.Message(relayed.Message)
	require.True(t, ok)
	require.Contains(t, text(m), "(message deleted)")
	th, _ := f.fake.Channel(card.Message)
	require.False(t, th.ThreadMetadata.Archived, "unarchived to take the edit")

	f.fake.ArchiveThread(card.Message, false)
	_, err = f.adapter.Post(ctx, in, bot.Message{Text: []bot.Line{{bot.T("a note")}}})
	require.NoError(t, err, "a post unarchives it")

	f.fake.ArchiveThread(card.Message, true)
	_, err = f.adapter.Post(ctx, in, bot.Message{Text: []bot.Line{{bot.T("a note")}}})
	var de *bot.DeliveryError
	require.ErrorAs(t, err, &de)
	require.Equal(t, bot.Permanent, de.Kind)
	require.Contains(t, de.Operator, "locked")
	// An edit there: unarchiving a locked thread is refused; it says locked.
	err = f.adapter.Update(ctx, relayed, bot.Message{Text: []bot.Line{{bot.T("edited")}}})
	require.ErrorAs(t, err, &de)
	require.Contains(t, de.Operator, "locked")
	require.Empty(t, f.fake.Violations())
}

// TestThreadEventsReachTheBotInOrder: each gateway event ran in a goroutine
// of its own, and the later of two messages sent back to back reached the
// bot first about two times in three, moving the thread's mark past the
// earlier one; a deletion overtook its message (from a review of this
// session's changes). A thread's message events reach the bot in the
// order they came.
func TestThreadEventsReachTheBotInOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ref, err := f.adapter.Post(context.Background(), bot.Dest{Channel: channelID}, bot.Message{Text: []bot.Line{{bot.T("receipt")}}, ThreadName: "EOD-8"})
	require.NoError(t, err)
	alice := discordfake.User{ID: analystID, Username: "alice"}
	for i := range 60 {
		f.fake.Say(ref.Message, alice, fmt.Sprintf("A%d", i))
		m := f.fake.Say(ref.Message, alice, fmt.Sprintf("B%d", i))
		f.fake.Delete(m.ID)
		r1, r2, r3 := waitReply(t, f), waitReply(t, f), waitReply(t, f)
		require.Equal(t, []string{fmt.Sprintf("A%d", i), fmt.Sprintf("B%d", i), ""}, []string{r1.Text, r2.Text, r3.Text}, "round %d", i)
		require.Equal(t, bot.ReplyDeleted, r3.Change, "round %d", i)
	}
}
