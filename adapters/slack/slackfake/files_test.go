package slackfake_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// TestExternalUploadWithSlackGo drives the external upload flow and
// conversations.open with the real slack-go client: a file is uploaded,
// completed once and shared into a direct message; the fake refuses what
// Slack refuses.
func TestExternalUploadWithSlackGo(t *testing.T) {
	t.Parallel()
	s, api := setup(t)
	ctx := t.Context()

	dm, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}, ReturnIM: true})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(dm.ID, "D"), dm.ID)
	again, _, already, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U1"}})
	require.NoError(t, err)
	require.Equal(t, dm.ID, again.ID, "one direct message per user")
	require.True(t, already)
	_, _, _, err = api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U404"}})
	require.ErrorContains(t, err, "user_not_found")

	body := []byte("# EOD-1\n\nthe record\n")
	u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "EOD-1.md", FileSize: len(body)})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.FileID, "F"))
	// Completing before the bytes arrived: not found.
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: dm.ID})
	require.ErrorContains(t, err, "file_not_found")
	require.NoError(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Reader: bytes.NewReader(body), Filename: "EOD-1.md"}))
	res, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{
		Files: []slack.FileSummary{{ID: u.FileID, Title: "EOD-1 record"}}, Channel: dm.ID,
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*the record*", false, false), nil, nil)}}})
	require.NoError(t, err)
	require.Equal(t, []slack.FileSummary{{ID: u.FileID, Title: "EOD-1 record"}}, res.Files)
	// Once only.
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: "C1"})
	require.ErrorContains(t, err, "file_not_found")

	files := s.Files()
	require.Len(t, files, 1)
	f := files[0]
	require.Equal(t, "EOD-1.md", f.Name)
	require.Equal(t, "EOD-1 record", f.Title)
	require.Equal(t, body, f.Data)
	require.Len(t, f.Shares, 1)
	require.Equal(t, dm.ID, f.Shares[0].Channel)
	user, ok := s.DMUser(dm.ID)
	require.True(t, ok)
	require.Equal(t, "U1", user)
	msgs := s.Messages(dm.ID)
	require.Len(t, msgs, 1, "sharing posts the blocks in the direct message")
	require.Equal(t, f.Shares[0].TS, msgs[0].TS)
	require.Contains(t, string(msgs[0].Blocks), "the record")

	// A file completed without a channel stays private: shared nowhere.
	u2, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "b.json", FileSize: 2})
	require.NoError(t, err)
	require.NoError(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u2.UploadURL, Content: "{}", Filename: "b.json"}))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u2.FileID}}})
	require.NoError(t, err)
	require.Empty(t, s.Files()[1].Shares)

	// Into an unknown channel: refused, the file stays completable.
	u3, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "c.txt", FileSize: 1})
	require.NoError(t, err)
	require.NoError(t, api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u3.UploadURL, Content: "c", Filename: "c.txt"}))
	_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u3.FileID}}, Channel: "C404"})
	require.ErrorContains(t, err, "channel_not_found")

	// A length of 0 and a missing name are refused as Slack does.
	_, err = api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "x", FileSize: 0})
	require.Error(t, err, "slack-go refuses a zero size itself")
	require.Empty(t, s.Violations())
}

// TestUploadLengthMustMatch: bytes that differ from the announced length
// are refused (and are a violation: threatdesk must announce the size it
// sends).
func TestUploadLengthMustMatch(t *testing.T) {
	t.Parallel()
	var violations []string
	s := slackfake.New(t, slackfake.Options{OnViolation: func(m string) { violations = append(violations, m) }})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	u, err := api.GetUploadURLExternalContext(t.Context(), slack.GetUploadURLExternalParameters{FileName: "a.txt", FileSize: 10})
	require.NoError(t, err)
	err = api.UploadToURL(t.Context(), slack.UploadToURLParameters{UploadURL: u.UploadURL, Content: "short", Filename: "a.txt"})
	var sc slack.StatusCodeError
	require.ErrorAs(t, err, &sc)
	require.Equal(t, http.StatusBadRequest, sc.Code)
	require.Len(t, violations, 1)
	require.Contains(t, violations[0], "5 bytes sent, 10 announced")
}
