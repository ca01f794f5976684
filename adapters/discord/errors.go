package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// ErrFormNeedsAck is returned by OpenForm: on Discord a modal can only be
// the immediate answer to an interaction, so the bot opens forms through
// bot.Ack.Form instead.
var ErrFormNeedsAck = errors.New("discord opens forms only as the answer to an interaction: return bot.Ack{Form: ...}")

// Discord JSON error codes we map to operator advice.
// https://discord.com/developers/docs/topics/opcodes-and-status-codes#json-json-error-codes
const (
	codeUnknownChannel     = 10003
	codeUnknownMember      = 10007
	codeUnknownUser        = 10013
	codeUnknownMessage     = 10008
	codeUnknownWebhook     = 10015
	codeUnknownInteraction = 10062
	codeCannotDM           = 50007
	codeInvalidRecipient   = 50033
	codeMissingAccess      = 50001
	codeMissingPermissions = 50013
	codeInvalidFormBody    = 50035
	codeThreadExists       = 160004
	codeThreadLocked       = 160005
	codeThreadArchived     = 50083

	// codeInvalidWebhookToken comes with a 401 for an interaction token
	// past its 15 minutes: the interaction expired, the bot token is fine.
	codeInvalidWebhookToken = 50027
)

// msgThreadLocked is the operator's advice for a thread a moderator locked.
const msgThreadLocked = "a moderator locked the case's Discord thread: unlock it to let threatdesk write there"

// apiError is a non-2xx answer from Discord, with nothing secret in it.
type apiError struct {
	Status  int
	Code    int
	Message string
}

func (e *apiError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("discord answered HTTP %d, code %d: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("discord answered HTTP %d: %s", e.Status, e.Message)
}

// parseAPIError reads Discord's JSON error body. A form refused (50035)
// says only "Invalid Form Body"; what was wrong is in its errors object,
// by field: the first few reasons are added to the message, so that an
// operator can tell what to fix.
func parseAPIError(status int, body []byte) *apiError {
	var b struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	_ = json.Unmarshal(body, &b)
	if b.Message == "" {
		b.Message = http.StatusText(status)
	}
	if rs := formReasons(b.Errors, "", nil); len(rs) > 0 {
		b.Message += " (" + strings.Join(rs, "; ") + ")"
	}
	return &apiError{Status: status, Code: b.Code, Message: cut(b.Message, 300)}
}

// maxFormReasons bounds the reasons read from a form error.
const maxFormReasons = 3

// formReasons collects "field.path: message" from Discord's nested errors
// object (each level a field name or index, each leaf an _errors list).
func formReasons(raw json.RawMessage, path string, out []string) []string {
	var node map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &node) != nil {
		return out
	}
	if list, ok := node["_errors"]; ok {
		var es []struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(list, &es)
		for _, e := range es {
			if len(out) >= maxFormReasons {
				return out
			}
			if path != "" {
				out = append(out, path+": "+e.Message)
			} else {
				out = append(out, e.Message)
			}
		}
	}
	keys := make([]string, 0, len(node))
	for k := range node {
		if k != "_errors" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(out) >= maxFormReasons {
			break
		}
		p := k
		if path != "" {
			p = path + "." + k
		}
		out = formReasons(node[k], p, out)
	}
	return out
}

// retryAfter reads a 429's wait: the JSON retry_after (seconds, fractional)
// or the Retry-After header.
func retryAfter(h http.Header, body []byte) time.Duration {
	var b struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &b) == nil && b.RetryAfter > 0 {
		return time.Duration(b.RetryAfter * float64(time.Second))
	}
	if s, err := strconv.ParseFloat(h.Get("Retry-After"), 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return time.Second
}

// classify turns whatever a REST call returned into a *bot.DeliveryError
// that says what to do, with no token or interaction URL in it.
func (a *Adapter) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *bot.DeliveryError
	if errors.As(err, &de) {
		return err
	}
	var rl *discordgo.RateLimitError
	if errors.As(err, &rl) {
		wait := time.Second
		if rl.TooManyRequests != nil && rl.RetryAfter > 0 {
			wait = rl.RetryAfter
		}
		return bot.RateLimitError(wait, fmt.Errorf("%s", op))
	}
	var rest *discordgo.RESTError
	if errors.As(err, &rest) {
		status := 0
		if rest.Response != nil {
			status = rest.Response.StatusCode
		}
		err = parseAPIError(status, rest.ResponseBody)
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return a.classifyAPI(op, ae)
	}
	if errors.Is(err, discordgo.ErrUnauthorized) {
		return a.classifyAPI(op, &apiError{Status: http.StatusUnauthorized, Message: "unauthorized"})
	}
	if msg := err.Error(); strings.HasPrefix(msg, "Exceeded Max retries HTTP ") {
		// discordgo's 502 path (retries are off: the outbox retries).
		return &bot.DeliveryError{Kind: bot.Temporary, Code: "502", Err: fmt.Errorf("%s: discord answered 502 Bad Gateway", op)}
	}
	if wait := time.Until(time.Unix(0, a.globalUntil.Load())); wait > 0 {
		// An answer that was no Discord error while every route is held:
		// Cloudflare's ban page (a 429 in HTML), seen by the transport.
		return bot.RateLimitError(wait, fmt.Errorf("%s: discord (Cloudflare) refuses this address for now: too many invalid requests", op))
	}
	// Transport errors: url.Error carries the URL (interaction tokens live in
	// webhook paths), so keep only its cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := a.redact(err.Error())
	wrapped := fmt.Errorf("%s: %s", op, msg)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		wrapped = fmt.Errorf("%s: %s: %w", op, msg, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		wrapped = fmt.Errorf("%s: %s: %w", op, msg, context.Canceled)
	}
	return &bot.DeliveryError{Kind: bot.Temporary, Code: "transport", Err: wrapped}
}

func (a *Adapter) classifyAPI(op string, ae *apiError) error {
	code := strconv.Itoa(ae.Code)
	if ae.Code == 0 {
		code = strconv.Itoa(ae.Status)
	}
	e := fmt.Errorf("%s: %w", op, ae)
	switch {
	case ae.Code == codeUnknownInteraction || ae.Code == codeUnknownWebhook || ae.Code == codeInvalidWebhookToken:
		return bot.PermanentError(code, "the interaction expired (answers must come within 15 minutes)", e)
	case ae.Status == http.StatusUnauthorized:
		return bot.PermanentError("401", "Discord rejected the bot token: set DISCORD_BOT_TOKEN to the token under Developer Portal > your app > Bot (reset it if it leaked)", e)
	case ae.Code == codeUnknownChannel:
		return bot.PermanentError(code, "the Discord channel does not exist or was deleted: fix the channel id in the config", e)
	case ae.Code == codeMissingAccess:
		return bot.PermanentError(code, "the bot cannot see this Discord channel: invite the bot to the server and give it View Channel on the channel", e)
	case ae.Code == codeMissingPermissions:
		return bot.PermanentError(code, "the bot lacks a permission in this Discord channel: grant Send Messages, Send Messages in Threads, Create Public Threads, Embed Links and Read Message History", e)
	case ae.Code == codeCannotDM:
		return bot.UnreachableError(code, "the user does not accept direct messages from this server's members", e)
	case ae.Code == codeInvalidRecipient:
		return bot.UnreachableError(code, "no such Discord user, or not one the bot shares a server with", e)
	case ae.Code == codeUnknownMessage:
		return bot.PermanentError(code, "the Discord message was deleted", e)
	case ae.Code == codeThreadLocked:
		return bot.PermanentError(code, msgThreadLocked, e)
	case ae.Status == http.StatusTooManyRequests:
		return bot.RateLimitError(time.Second, e)
	case ae.Status >= 500 || ae.Status == 0:
		return &bot.DeliveryError{Kind: bot.Temporary, Code: code, Err: e}
	case ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound:
		return bot.PermanentError(code, "Discord refused access: check the bot's permissions and the ids in the config", e)
	}
	return bot.PermanentError(code, "Discord rejected the request", e)
}

// redact removes secrets from text bound for errors and logs.
func (a *Adapter) redact(s string) string {
	if a.cfg.Token != "" {
		s = strings.ReplaceAll(s, a.cfg.Token.Value(), "[redacted]")
	}
	// discordgo's errors name the URL it built, which the transport sends
	// to the configured base (transport.go): name that one.
	if base := a.cfg.APIURL; base != "" && base != discordgo.EndpointAPI {
		s = strings.ReplaceAll(s, `"`+discordgo.EndpointAPI+`gateway"`, `"`+base+`gateway/bot"`)
		s = strings.ReplaceAll(s, discordgo.EndpointAPI, base)
	}
	// Interaction tokens sit in webhook and callback paths.
	return a.tokenPath.ReplaceAllString(s, "${1}[redacted]")
}

func isPermanent(err error) bool {
	k, _ := bot.Classify(err)
	return k == bot.Permanent
}

func retryWait(err error) time.Duration {
	_, d := bot.Classify(err)
	return d
}
