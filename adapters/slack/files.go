package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// Files handed to one person (/experts export). Slack has no ephemeral
// files: a file shared in a channel is seen by everyone in it, whatever the
// note that goes with it. So the files go to the direct message between the
// app and the person who asked (conversations.open, scope im:write), where
// only they see them, through Slack's external upload flow (scope
// files:write): files.getUploadURLExternal for each file, the bytes POSTed
// to the URL it gives, then files.completeUploadExternal shares them all in
// the direct message with the record's note as blocks. The answer in the
// channel, ephemeral, says where they went.
// https://docs.slack.dev/messaging/working-with-files#upload

// dmWhere is where RespondFiles says the files went.
const dmWhere = "in a direct message from threatdesk"

var _ bot.FileResponder = (*responder)(nil)

// RespondFiles implements bot.FileResponder.
func (r *responder) RespondFiles(ctx context.Context, m bot.Message, files []bot.Document) (string, error) {
	if r.user == "" {
		return "", bot.PermanentError("no_user", "", errors.New("slack: no user to send files to"))
	}
	if len(files) == 0 {
		return "", errors.New("slack: no files to send")
	}
	api, err := r.a.client(ctx, r.team)
	if err != nil {
		return "", err
	}
	dm, err := r.a.openDM(ctx, api, r.user)
	if err != nil {
		return "", err
	}
	summaries := make([]slack.FileSummary, 0, len(files))
	for _, f := range files {
		id, err := r.a.upload(ctx, api, f)
		if err != nil {
			return "", err
		}
		summaries = append(summaries, slack.FileSummary{ID: id, Title: f.Title})
	}
	blocks, _ := RenderBlocks(m)
	cctx, cancel := r.a.callCtx(ctx)
	defer cancel()
	_, err = api.CompleteUploadExternalContext(cctx, slack.CompleteUploadExternalParameters{
		Files: summaries, Channel: dm, Blocks: slack.Blocks{BlockSet: blocks}})
	r.a.metrics.call("files.completeUploadExternal", err)
	if err != nil {
		return "", fmt.Errorf("share %d files with %s: %w", len(files), r.user, r.a.classify("files.completeUploadExternal", err))
	}
	return dmWhere, nil
}

// openDM returns the direct message channel between the app and user.
func (a *Adapter) openDM(ctx context.Context, api *slack.Client, user string) (string, error) {
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}, ReturnIM: true})
	a.metrics.call("conversations.open", err)
	if err != nil {
		return "", fmt.Errorf("open a direct message with %s: %w", user, a.classify("conversations.open", err))
	}
	if ch == nil || ch.ID == "" {
		return "", fmt.Errorf("open a direct message with %s: Slack answered no channel", user)
	}
	return ch.ID, nil
}

// upload sends one file's bytes and returns its id, not yet shared.
func (a *Adapter) upload(ctx context.Context, api *slack.Client, f bot.Document) (string, error) {
	if len(f.Data) == 0 {
		return "", fmt.Errorf("upload %s: the file is empty", f.Name)
	}
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	u, err := api.GetUploadURLExternalContext(cctx, slack.GetUploadURLExternalParameters{FileName: f.Name, FileSize: len(f.Data)})
	a.metrics.call("files.getUploadURLExternal", err)
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", f.Name, a.classify("files.getUploadURLExternal", err))
	}
	err = api.UploadToURL(cctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Reader: bytes.NewReader(f.Data), Filename: f.Name})
	a.metrics.call("upload_url", err)
	if err != nil {
		// The upload URL is signed: never put it in the error.
		return "", fmt.Errorf("upload %s (file %s): %w", f.Name, u.FileID, a.classify("upload_url", redactURL(err, u.UploadURL)))
	}
	return u.FileID, nil
}

// redactURL removes url from err's text.
func redactURL(err error, url string) error {
	if url == "" || !bytes.Contains([]byte(err.Error()), []byte(url)) {
		return err
	}
	return errors.New(string(bytes.ReplaceAll([]byte(err.Error()), []byte(url), []byte("<upload URL>"))))
}
