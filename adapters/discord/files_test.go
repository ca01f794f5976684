package discord_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
)

// sampleLinks builds sample URLs as adapters/web's Links does.
type sampleLinks struct{}

const sampleBase = "https://threatdesk.example.com"

func (sampleLinks) Upload(token string) string {
	return sampleBase + "/samples/u/" + url.PathEscape(token)
}
func (sampleLinks) Download(token string) string {
	return sampleBase + "/samples/d/" + url.PathEscape(token)
}
func (sampleLinks) LocalNote() string { return "" }

// structured is n bytes of a file whose 32-byte runs are all distinct.
func structured(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "MZ line %08d of a sample\n", i)
	}
	return b.Bytes()[:n]
}

func requirePermanent(t *testing.T, err error) *bot.DeliveryError {
	t.Helper()
	var d *bot.DeliveryError
	require.ErrorAs(t, err, &d, "%v", err)
	require.Equal(t, bot.Permanent, d.Kind, "%v", err)
	return d
}

// TestAttachmentsInThreadReplies: an attachment posted in a thread reaches
// the bot as a file of the reply, even with no text, and its CDN link is
// not put into the text; the adapter fetches it from the CDN without any
// token; an expired link, or an address that is not Discord's, cannot be
// fetched for good.
func TestAttachmentsInThreadReplies(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.start(t)
	ctx := context.Background()
	anchor, err := f.adapter.Post(ctx, bot.Dest{Platform: bot.Discord, Workspace: guildID, Channel: channelID},
		bot.Message{Title: "Case EOD-7 opened", ThreadName: "EOD-7"})
	require.NoError(t, err)
	body := structured(3000)
	m := f.fake.SayWithFiles(anchor.Message, discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"}, "",
		discordfake.Attachment{Filename: "invoice.exe", ContentType: "application/x-msdownload", Data: body})
	var r bot.Reply
	select {
	case r = <-f.h.replyCh:
	case <-time.After(5 * time.Second):
		t.Fatal("no reply reached the bot")
	}
	require.Empty(t, r.Text, "the CDN link is not relayed as text")
	require.Equal(t, []bot.File{{ID: m.Attachments[0].ID, Name: "invoice.exe", Size: int64(len(body)), MimeType: "application/x-msdownload",
		URL: m.Attachments[0].URL}}, r.Files)

	rc, err := f.adapter.FetchFile(ctx, r.Message, r.Files[0])
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, body, got)
	dls := f.fake.AttachmentDownloads()
	require.Len(t, dls, 1)
	require.False(t, dls[0].WithToken, "no token to the CDN")

	expired := r.Files[0]
	expired.URL = f.fake.ExpiredURL(m.Attachments[0])
	_, err = f.adapter.FetchFile(ctx, r.Message, expired)
	require.Contains(t, requirePermanent(t, err).Operator, "no longer serves it")

	var asked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) }))
	t.Cleanup(other.Close)
	foreign := r.Files[0]
	foreign.URL = other.URL + "/attachments/1/2/x"
	_, err = f.adapter.FetchFile(ctx, r.Message, foreign)
	require.Equal(t, "file_host", requirePermanent(t, err).Code)
	require.Zero(t, asked.Load())
	require.Empty(t, f.fake.Violations())
}

// TestAttachmentSampleFlowOverDiscord: the real bot, casework and Postgres.
// The analyst posts an attachment in the case's thread: it becomes a
// sample, announced by name, size and hash in both threads; its CDN link
// and bytes never reach the desk. The desk card's Download sample button
// answers the expert with an ephemeral follow-up carrying the link; a
// member pressing it gets no link.
func TestAttachmentSampleFlowOverDiscord(t *testing.T) {
	t.Parallel()
	f := newFlow(t, false)
	in, _ := f.command(analystID, channelID, "file", map[string]any{"file": "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6", "question": "is this invoice bad?"})
	f.wait("the analyst is told the case is open", f.answered(in, "EOD-1"))
	f.wait("receipt and desk card", func() bool { return f.has(channelID, "EOD-1")() && f.has(deskID, "EOD-1")() })
	receipt, _ := f.find(channelID, "EOD-1")
	card, _ := f.find(deskID, "EOD-1")
	f.wait("both threads", func() bool {
		_, ok1 := f.dfake.Channel(receipt.ID)
		_, ok2 := f.dfake.Channel(card.ID)
		return ok1 && ok2
	})
	tin, err := f.dfake.Interact(f.dfake.ComponentPayload(card, expertID, customIDWithPrefix(card, string(bot.ActTake))))
	require.NoError(t, err)
	_, err = tin.Wait(5 * time.Second)
	require.NoError(t, err)
	f.wait("taken", f.has(receipt.ID, "took EOD-1"))
	in, _ = f.command(expertID, deskID, "sample", map[string]any{"case": "EOD-1", "text": "the attachment of the mail"})
	f.wait("the upload link in the analyst's thread", f.has(receipt.ID, sampleBase+"/samples/u/"))
	require.False(t, f.has(card.ID, "/samples/u/")(), "the desk gets no link")

	body := structured(20 << 10)
	m := f.dfake.SayWithFiles(receipt.ID, discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"}, "",
		discordfake.Attachment{Filename: "invoice.exe", Data: body})
	f.wait("the sample announced on the desk", f.has(card.ID, "invoice.exe (20 KiB)"))
	f.wait("and confirmed to the analyst", f.has(receipt.ID, "Stored for the experts of EOD-1"))
	announced, _ := f.find(card.ID, "invoice.exe (20 KiB)")
	require.Contains(t, text(announced), "SHA-256")
	require.Contains(t, text(announced), "back in progress")
	cdn := m.Attachments[0].URL
	for _, msg := range f.dfake.AllMessages() {
		if msg.ID == m.ID {
			continue
		}
		require.NotContains(t, text(msg), cdn[:strings.Index(cdn, "?")], "the CDN link never crosses")
		require.NotContains(t, text(msg), "MZ line 00000001", "nor the bytes")
		require.Empty(t, msg.Attachments)
	}

	// Download sample: an ephemeral follow-up with the link, for the expert.
	f.wait("the Download sample button", func() bool {
		c, _ := f.dfake.Message(card.ID)
		return customIDWithPrefix(c, string(bot.ActDownloadSample)) != ""
	})
	card, _ = f.dfake.Message(card.ID)
	button := customIDWithPrefix(card, string(bot.ActDownloadSample))
	din, err := f.dfake.Interact(f.dfake.ComponentPayload(card, expertID, button))
	require.NoError(t, err)
	_, err = din.Wait(5 * time.Second)
	require.NoError(t, err)
	f.wait("the download link", f.answered(din, sampleBase+"/samples/d/"))
	for _, fu := range f.dfake.FollowupMessages(din) {
		if strings.Contains(text(fu), "/samples/d/") {
			require.NotZero(t, fu.Flags&(1<<6), "ephemeral")
		}
	}
	// The analyst presses the same button (a forged press): no link.
	ain, err := f.dfake.Interact(f.dfake.ComponentPayload(card, analystID, button))
	require.NoError(t, err)
	_, err = ain.Wait(5 * time.Second)
	require.NoError(t, err)
	f.wait("the analyst's refusal", f.answered(ain, "not listed as an expert"))
	require.False(t, f.answered(ain, "/samples/d/")())
	require.Len(t, f.dfake.FollowupMessages(din), 1, "one link, the expert's")
	require.Empty(t, f.dfake.Pings())
	require.Empty(t, f.dfake.Violations())
}
