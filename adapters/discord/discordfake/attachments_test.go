package discordfake_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// TestAttachments: discordgo reads a message's attachments from
// MESSAGE_CREATE (only with the Message Content intent); the CDN serves
// their bytes to a signed, unexpired URL without any token, and answers
// 404 to an expired or altered one.
func TestAttachments(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	open := func(intents discordgo.Intent) chan *discordgo.MessageCreate {
		s := session(t, fake, fake.Token())
		msgs := make(chan *discordgo.MessageCreate, 4)
		s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { msgs <- m })
		s.Identify.Intents = intents
		require.NoError(t, s.Open())
		t.Cleanup(func() { _ = s.Close() })
		return msgs
	}
	content := open(discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent)
	noContent := open(discordgo.IntentsGuilds | discordgo.IntentsGuildMessages)
	require.True(t, fake.WaitSessions(2, 5*time.Second))
	data := []byte("MZ\x90\x00 the sample")
	sent := fake.SayWithFiles(channel, discordfake.User{ID: "1000000000000000010", Username: "alice"}, "",
		discordfake.Attachment{Filename: "a b.exe", ContentType: "application/x-msdownload", Data: data})

	m := <-content
	require.Len(t, m.Attachments, 1)
	at := m.Attachments[0]
	require.Equal(t, "a b.exe", at.Filename)
	require.Equal(t, len(data), at.Size)
	require.Equal(t, sent.Attachments[0].ID, at.ID)
	for _, p := range []string{"ex=", "is=", "hm="} {
		require.Contains(t, at.URL, p, "a signed CDN URL")
	}
	require.Empty(t, (<-noContent).Attachments, "attachments need the Message Content intent")

	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	code, b := get(at.URL)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, data, b)
	code, _ = get(fake.ExpiredURL(sent.Attachments[0]))
	require.Equal(t, http.StatusNotFound, code)
	i := strings.Index(at.URL, "hm=") + 3
	flip := "0"
	if at.URL[i] == '0' {
		flip = "1"
	}
	code, _ = get(at.URL[:i] + flip + at.URL[i+1:])
	require.Equal(t, http.StatusNotFound, code)
	dls := fake.AttachmentDownloads()
	require.Len(t, dls, 3)
	require.Equal(t, http.StatusOK, dls[0].Status)
	require.False(t, dls[0].WithToken)
}
