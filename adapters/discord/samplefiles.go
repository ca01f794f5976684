package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// Files posted in case threads become file samples (bot/samples.go): a
// message's attachments (which arrive only with the Message Content
// intent, https://discord.com/developers/docs/events/gateway#message-content-intent)
// are fetched from their CDN URL, which needs no token and is signed to
// expire (https://discord.com/developers/docs/reference#signed-attachment-cdn-urls).
// The bot token is never sent there.

var _ bot.FileFetcher = (*Adapter)(nil)

// helpAttachmentGone says why an attachment cannot be fetched any more.
const helpAttachmentGone = "Discord no longer serves it: the message was deleted or its link expired"

// filesOf turns a message's attachments into the bot's files.
func filesOf(atts []*discordgo.MessageAttachment) []bot.File {
	var out []bot.File
	for _, at := range atts {
		if at == nil || at.ID == "" {
			continue
		}
		out = append(out, bot.File{ID: at.ID, Name: at.Filename, Size: int64(at.Size), MimeType: at.ContentType, URL: at.URL})
	}
	return out
}

// FetchFile implements bot.FileFetcher: it downloads an attachment from
// Discord's CDN (https on discordapp.com, discordapp.net or discord.com, or
// DISCORD_API_URL's own host), without any token.
func (a *Adapter) FetchFile(ctx context.Context, at bot.Ref, f bot.File) (io.ReadCloser, error) {
	if !a.mayFetch(f.URL) {
		return nil, bot.PermanentError("file_host", "the attachment's address is not Discord's, so it is not fetched",
			fmt.Errorf("attachment %s is not on Discord's CDN", f.ID))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, bot.PermanentError("file_url", "the attachment's address is not a URL", fmt.Errorf("attachment %s: bad URL", f.ID))
	}
	resp, err := a.files.Do(req)
	if err != nil {
		return nil, fmt.Errorf("attachment %s: %w", f.ID, a.classify("fetch attachment", err))
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return resp.Body, nil
	case code == http.StatusTooManyRequests:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, bot.RateLimitError(retryAfter(resp.Header, body), fmt.Errorf("attachment %s: HTTP 429", f.ID))
	case code >= 500:
		resp.Body.Close()
		return nil, &bot.DeliveryError{Kind: bot.Temporary, Code: fmt.Sprint(code), Err: fmt.Errorf("attachment %s: HTTP %d", f.ID, code)}
	default:
		resp.Body.Close()
		return nil, bot.PermanentError(fmt.Sprint(code), helpAttachmentGone, fmt.Errorf("attachment %s: HTTP %d", f.ID, code))
	}
}

// mayFetch reports whether raw is an attachment address threatdesk fetches.
func (a *Adapter) mayFetch(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" {
		for _, d := range []string{"discordapp.com", "discordapp.net", "discord.com"} {
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	return u.Scheme == a.base.Scheme && strings.EqualFold(u.Host, a.base.Host)
}

// newFilesClient is the client attachments are fetched with: the REST
// client's transport, no overall timeout (the caller's context bounds a
// download), redirects only to where mayFetch allows.
func (a *Adapter) newFilesClient() *http.Client {
	return &http.Client{
		Transport: a.client.Transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 || !a.mayFetch(req.URL.String()) {
				return errors.New("attachment redirected away from Discord")
			}
			return nil
		},
	}
}
