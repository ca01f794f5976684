package slackfake_test

import (
	"bytes"
	"net/http"
	neturl "net/url"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// TestFilesWithSlackGo: the files of a message event, fetched with
// slack-go's own GetFile and files.info: the bytes with the bot token only;
// without it, or without files:read, the redirect to the sign-in page that
// slack-go recognises.
func TestFilesWithSlackGo(t *testing.T) {
	t.Parallel()
	s, api := setup(t)
	ctx := t.Context()
	data := []byte("MZ\x90\x00 a sample")
	m, cb := s.UserFileMessage("C1", "", "U1", "", slackfake.File{Name: "a b.exe", Data: data},
		slackfake.File{ID: "F0CONNECT", Name: "c.bin", Data: []byte("c"), CheckFileInfo: true})
	require.Len(t, m.Files, 2)
	ev := cb["event"].(map[string]any)
	require.Equal(t, "file_share", ev["subtype"])
	files := ev["files"].([]any)
	hosted := files[0].(map[string]any)
	require.Equal(t, "hosted", hosted["mode"])
	require.Equal(t, len(data), hosted["size"])
	url := hosted["url_private_download"].(string)
	require.NotContains(t, files[1], "url_private_download", "a Slack Connect file comes as its id")

	var got bytes.Buffer
	require.NoError(t, api.GetFileContext(ctx, url, &got))
	require.Equal(t, data, got.Bytes())

	info, _, _, err := api.GetFileInfoContext(ctx, "F0CONNECT", 0, 0)
	require.NoError(t, err)
	got.Reset()
	require.NoError(t, api.GetFileContext(ctx, info.URLPrivateDownload, &got))
	require.Equal(t, "c", got.String())
	_, _, _, err = api.GetFileInfoContext(ctx, "F0NONE", 0, 0)
	require.ErrorContains(t, err, "file_not_found")

	// No token: the sign-in page, never the bytes.
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	require.Equal(t, u.Path, resp.Request.URL.Query().Get("redir"), "redir names the file's path")
	wrong := slack.New("xoxb-someone-else", slack.OptionAPIURL(s.APIURL()))
	require.ErrorContains(t, wrong.GetFileContext(ctx, url, &got), "sign-in page")
	downloads := s.Downloads()
	require.Len(t, downloads, 4)
	require.True(t, downloads[0].Authorized)
	require.False(t, downloads[2].Authorized)
	require.False(t, downloads[3].Authorized)

	// An app without files:read.
	ns := slackfake.New(t, slackfake.Options{NoFilesRead: true, Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}}})
	_, cb = ns.UserFileMessage("C1", "", "U1", "", slackfake.File{ID: "F0A", Name: "a", Data: data})
	url = cb["event"].(map[string]any)["files"].([]any)[0].(map[string]any)["url_private_download"].(string)
	nsAPI := slack.New(ns.Options().BotToken, slack.OptionAPIURL(ns.APIURL()))
	require.ErrorContains(t, nsAPI.GetFileContext(ctx, url, &got), "sign-in page")
	_, _, _, err = nsAPI.GetFileInfoContext(ctx, "F0A", 0, 0)
	require.ErrorContains(t, err, "missing_scope")
}
