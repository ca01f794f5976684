package discordfake_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// TestFollowupWithFiles: discordgo's own multipart encoding (payload_json
// and files[n]) reaches the fake as Discord takes it: an ephemeral
// follow-up after a deferred ephemeral answer becomes that answer, with
// the files attached.
func TestFollowupWithFiles(t *testing.T) {
	t.Parallel()
	fake := newFake(t, false)
	s := session(t, fake, fake.Token())
	in, _, err := fake.Prepare(fake.CommandPayload(channel, "1000000000000000010", "experts", "export", map[string]any{"case": "EOD-1"}))
	require.NoError(t, err)
	i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
	quiet := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	require.NoError(t, s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral}}))

	m, err := s.FollowupMessageCreate(i, true, &discordgo.WebhookParams{Content: "your record", AllowedMentions: quiet,
		Flags:       discordgo.MessageFlagsEphemeral,
		Attachments: []*discordgo.MessageAttachment{{ID: "0", Filename: "EOD-1.md"}, {ID: "1", Filename: "EOD-1.json"}},
		Files: []*discordgo.File{{Name: "EOD-1.md", ContentType: "text/markdown", Reader: strings.NewReader("# EOD-1\n")},
			{Name: "EOD-1.json", ContentType: "application/json", Reader: strings.NewReader(`{"ref":"EOD-1"}`)}}})
	require.NoError(t, err)
	require.Len(t, m.Attachments, 2)
	orig, ok := fake.OriginalResponse(in)
	require.True(t, ok)
	require.Equal(t, m.ID, orig.ID, "the first follow-up after a deferral is the deferred answer")
	require.Equal(t, discordgo.MessageFlagsEphemeral, discordgo.MessageFlags(orig.Flags), "ephemeral, no longer loading")
	require.Len(t, orig.Attachments, 2)
	require.Equal(t, "EOD-1.md", orig.Attachments[0].Filename)
	require.Equal(t, []byte("# EOD-1\n"), orig.Attachments[0].Data)
	require.Equal(t, "text/markdown", orig.Attachments[0].ContentType)
	require.Equal(t, `{"ref":"EOD-1"}`, string(orig.Attachments[1].Data))
	require.Empty(t, fake.Violations())
}

// TestFilesRefusedAsDiscordDoes: a file part without a filename, an
// attachments entry naming no part, and a file over the limit.
func TestFilesRefusedAsDiscordDoes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		body   func(w *multipartBody)
		status int
		want   string
	}{
		{"no filename", func(w *multipartBody) {
			w.part(`form-data; name="payload_json"`, `{"content":"x","allowed_mentions":{"parse":[]}}`)
			w.part(`form-data; name="files[0]"`, "data")
		}, 400, "has no filename"},
		{"unknown placeholder", func(w *multipartBody) {
			w.part(`form-data; name="payload_json"`, `{"content":"x","allowed_mentions":{"parse":[]},"attachments":[{"id":3,"filename":"a"}]}`)
			w.part(`form-data; name="files[0]"; filename="a"`, "data")
		}, 400, "attachments lists id 3"},
		{"too large", func(w *multipartBody) {
			w.part(`form-data; name="payload_json"`, `{"content":"x","allowed_mentions":{"parse":[]}}`)
			w.part(`form-data; name="files[0]"; filename="big.bin"`, strings.Repeat("x", discordfake.MaxAttachmentBytes+1))
		}, http.StatusRequestEntityTooLarge, "the upload limit is"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t, true)
			s := session(t, fake, fake.Token())
			in, _, err := fake.Prepare(fake.CommandPayload(channel, "1000000000000000010", "experts", "export", nil))
			require.NoError(t, err)
			i := &discordgo.Interaction{ID: in.ID, Token: in.Token, AppID: fake.AppID()}
			require.NoError(t, s.InteractionRespond(i, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}))
			w := &multipartBody{}
			tt.body(w)
			req, err := http.NewRequest(http.MethodPost, fake.APIURL()+"webhooks/"+fake.AppID()+"/"+in.Token+"?wait=true", bytes.NewReader(w.bytes()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tt.status, resp.StatusCode)
			require.Contains(t, strings.Join(fake.Violations(), "\n"), tt.want)
		})
	}
}

const boundary = "xYzZY"

// multipartBody writes a multipart body by hand, so that it can be wrong.
type multipartBody struct{ b bytes.Buffer }

func (m *multipartBody) part(disposition, data string) {
	m.b.WriteString("--" + boundary + "\r\nContent-Disposition: " + disposition + "\r\n\r\n" + data + "\r\n")
}

func (m *multipartBody) bytes() []byte { return append(m.b.Bytes(), []byte("--"+boundary+"--\r\n")...) }
