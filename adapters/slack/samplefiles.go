package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/bot"
)

// Files posted in case threads become file samples (bot/samples.go): the
// message event lists them (https://docs.slack.dev/reference/events/message/file_share),
// and the adapter downloads each from its url_private_download with the bot
// token, which needs the files:read scope
// (https://docs.slack.dev/messaging/working-with-files#downloading).

var _ bot.FileFetcher = (*Adapter)(nil)

// messageFile is a file object of a message event, as much as the bot needs.
type messageFile struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Title              string `json:"title"`
	Mimetype           string `json:"mimetype"`
	Size               int64  `json:"size"`
	Mode               string `json:"mode"`
	IsExternal         bool   `json:"is_external"`
	FileAccess         string `json:"file_access"`
	URLPrivateDownload string `json:"url_private_download"`
}

// filesOf turns a message's files into the bot's. A deleted file
// (mode tombstone) is left out; a file the event does not describe (Slack
// Connect: file_access check_file_info) goes without its URL, which
// FetchFile then asks files.info for.
func filesOf(fs []messageFile) []bot.File {
	var out []bot.File
	for _, f := range fs {
		if f.ID == "" || f.Mode == "tombstone" {
			continue
		}
		bf := bot.File{ID: f.ID, Name: f.Name, Size: f.Size, MimeType: f.Mimetype, URL: f.URLPrivateDownload}
		if bf.Name == "" {
			bf.Name = f.Title
		}
		if f.IsExternal || f.Mode == "external" || f.Mode == "hidden_by_limit" || f.FileAccess != "" {
			bf.URL = "" // FetchFile asks files.info, which says why it cannot be fetched
		}
		out = append(out, bf)
	}
	return out
}

// Operator help for files that cannot be fetched.
const (
	helpFilesRead    = "the app may not read files: add the files:read scope (adapters/slack/manifest.yaml), reinstall the app and set the new SLACK_BOT_TOKEN"
	helpFileGone     = "the file was deleted from Slack"
	helpFileExternal = "it is a link to a file stored outside Slack, which threatdesk does not fetch"
	helpFileHidden   = "the workspace's plan hides this file from apps"
)

// errSignIn stops a download that Slack redirected to its sign-in page.
var errSignIn = errors.New("slack redirected the download to its sign-in page")

// FetchFile implements bot.FileFetcher: it downloads f from its
// url_private_download (asking files.info first when the event did not give
// it) with the bot token in the Authorization header, and only to Slack
// over https or to SLACK_API_URL's host. Without files:read, Slack
// redirects the download to its sign-in page: that is a permanent error
// saying to add the scope.
func (a *Adapter) FetchFile(ctx context.Context, at bot.Ref, f bot.File) (io.ReadCloser, error) {
	link := f.URL
	if link == "" {
		var err error
		if link, err = a.fileURL(ctx, at.Workspace, f.ID); err != nil {
			return nil, fmt.Errorf("file %s: %w", f.ID, err)
		}
	}
	if !a.mayReceiveToken(link) {
		return nil, bot.PermanentError("file_host", "the file's address is not Slack's: it is not fetched with the bot token",
			fmt.Errorf("file %s is not on Slack or SLACK_API_URL's host", f.ID))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, bot.PermanentError("file_url", "the file's address is not a URL", fmt.Errorf("file %s: %w", f.ID, redact(err)))
	}
	token, err := a.token(ctx, at.Workspace)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", f.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.files.Do(req)
	if err != nil {
		a.metrics.call("files.download", err)
		if errors.Is(err, errSignIn) {
			return nil, &bot.DeliveryError{Kind: bot.Permanent, Code: "missing_scope", Operator: helpFilesRead, Err: fmt.Errorf("file %s: %w", f.ID, errSignIn)}
		}
		return nil, fmt.Errorf("file %s: %w", f.ID, classify("files.download", err))
	}
	if err := downloadError(resp, f); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("file %s: %w", f.ID, err)
	}
	a.metrics.call("files.download", nil)
	return resp.Body, nil
}

// downloadError classifies a download's answer; nil for the file's bytes.
func downloadError(resp *http.Response, f bot.File) error {
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusTooManyRequests:
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return bot.RateLimitError(max(time.Duration(wait)*time.Second, time.Second), errors.New("files download: HTTP 429"))
	case code >= 500:
		return &bot.DeliveryError{Kind: bot.Temporary, Code: fmt.Sprintf("http_%d", code), Err: fmt.Errorf("files download: HTTP %d", code)}
	case code == http.StatusNotFound || code == http.StatusGone:
		return bot.PermanentError("file_not_found", helpFileGone, fmt.Errorf("files download: HTTP %d", code))
	default:
		return bot.PermanentError(fmt.Sprintf("http_%d", code), helpFilesRead, fmt.Errorf("files download: HTTP %d", code))
	}
	// An HTML page for a file that is not one is Slack's sign-in page.
	got, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if got == "text/html" && !strings.HasPrefix(f.MimeType, "text/html") {
		return &bot.DeliveryError{Kind: bot.Permanent, Code: "missing_scope", Operator: helpFilesRead, Err: errSignIn}
	}
	return nil
}

// fileURL asks files.info where a file is, or why it cannot be fetched.
func (a *Adapter) fileURL(ctx context.Context, team, id string) (string, error) {
	api, err := a.client(ctx, team)
	if err != nil {
		return "", err
	}
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	file, _, _, err := api.GetFileInfoContext(cctx, id, 0, 0)
	a.metrics.call("files.info", err)
	if err != nil {
		err = a.failed(team, "files.info", err)
		var de *bot.DeliveryError
		if errors.As(err, &de) && (de.Code == "file_not_found" || de.Code == "file_deleted") {
			de.Kind, de.Operator = bot.Permanent, helpFileGone
		}
		return "", err
	}
	switch {
	case file.IsExternal || file.Mode == "external":
		return "", bot.PermanentError("external_file", helpFileExternal, errors.New("external file"))
	case file.Mode == "hidden_by_limit":
		return "", bot.PermanentError("hidden_by_limit", helpFileHidden, errors.New("file hidden by the plan's limit"))
	case file.Mode == "tombstone":
		return "", bot.PermanentError("file_deleted", helpFileGone, errors.New("file deleted"))
	case file.URLPrivateDownload == "":
		return "", bot.PermanentError("no_download", helpFilesRead, errors.New("files.info gave no download URL"))
	}
	return file.URLPrivateDownload, nil
}

// mayReceiveToken reports whether raw may be sent the bot token: https on
// slack.com (or a subdomain, such as files.slack.com), or SLACK_API_URL's
// own scheme and host (a proxy, the tests' fake). slack-go's GetFile keeps
// the same rule.
func (a *Adapter) mayReceiveToken(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com")) {
		return true
	}
	api, err := url.Parse(a.cfg.APIURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

// newFilesClient is the client downloads use: the transport of the Web API
// client, no overall timeout (a download takes as long as the file needs;
// the caller's context bounds it), and redirects followed only where the
// token may go, never to the sign-in page.
func (a *Adapter) newFilesClient() *http.Client {
	return &http.Client{
		Transport: a.cfg.HTTPClient.Transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Query().Get("redir") != "" {
				return errSignIn
			}
			if !a.mayReceiveToken(req.URL.String()) {
				return errors.New("redirected away from Slack")
			}
			return nil
		},
	}
}
