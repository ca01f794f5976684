package slack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
)

// operatorHelp maps Slack error codes that no retry can fix to what an
// operator should do (https://docs.slack.dev/reference/methods/chat.postMessage#errors).
var operatorHelp = map[string]string{
	"not_in_channel":          "the app is not a member of this channel: invite it (/invite @threatdesk) or remove the channel from the config",
	"channel_not_found":       "no such channel for this app: check the channel id in the config; a private channel must invite the app first",
	"is_archived":             "the channel is archived: unarchive it or change the config",
	"missing_scope":           "the app lacks an OAuth scope: add it on the app's OAuth & Permissions page (or update it from adapters/slack/manifest.yaml), reinstall the app and set the new SLACK_BOT_TOKEN",
	"not_allowed_token_type":  "SLACK_BOT_TOKEN is not a bot token: use the xoxb- token from OAuth & Permissions",
	"invalid_auth":            "SLACK_BOT_TOKEN is invalid: reinstall the app and set the bot token it shows",
	"not_authed":              "no token was sent: set SLACK_BOT_TOKEN",
	"account_inactive":        "the app's token belongs to a deactivated account: reinstall the app",
	"token_revoked":           "SLACK_BOT_TOKEN was revoked: reinstall the app and set the new token",
	"token_expired":           "SLACK_BOT_TOKEN expired: the app has token rotation on, which threatdesk does not support (Slack cannot turn it off): make a new app from the manifest, install it and set its token",
	"no_permission":           "the workspace does not allow this app to do that: ask a Slack admin",
	"restricted_action":       "a workspace setting prevents the app from posting here: ask a Slack admin",
	"team_access_not_granted": "the app is not installed in this workspace: install it",
	"ekm_access_denied":       "the workspace's key management denied access: ask a Slack admin",
	"message_not_found":       "the message to edit no longer exists",
	"cant_update_message":     "this message cannot be edited by the app",
	"edit_window_closed":      "the message is too old to edit",
	"user_not_found":          "no such user in this workspace",
	"user_disabled":           "the user's account is deactivated",
	"user_not_visible":        "the app may not see this user (a workspace restriction)",
	"cannot_dm_bot":           "the user is a bot, which cannot get direct messages",
	"user_not_in_channel":     "the user is not in the channel, so cannot see a private message there",
	"invalid_blocks":          "Slack rejected the message layout: a bug in threatdesk, please report it",
	"invalid_blocks_format":   "Slack rejected the message layout: a bug in threatdesk, please report it",
	"msg_too_long":            "the message is too long for Slack: a bug in threatdesk, please report it",
	"no_text":                 "the message was empty: a bug in threatdesk, please report it",
	"invalid_arguments":       "Slack rejected the request: a bug in threatdesk, please report it",
	"thread_not_found":        "the thread's first message no longer exists",
	"expired_trigger_id":      "the form could not open in time (Slack allows 3 seconds): try again",
	"invalid_trigger_id":      "the form's trigger is not valid: try again",
	"exchanged_trigger_id":    "the form's trigger was already used",
	"view_too_large":          "the form is too large for Slack: a bug in threatdesk, please report it",

	// Uploads (/experts export).
	"file_uploads_disabled":       "the workspace does not allow file uploads, so /experts export cannot hand over a record: ask a Slack admin",
	"file_upload_size_restricted": "the workspace restricts the size of uploads below a case record's: ask a Slack admin",
}

// classify turns an error from slack-go into a *bot.DeliveryError: retry
// after Retry-After on rate limits, retry later on 5xx and network errors,
// and stop with an operator message on errors no retry can fix. The result
// never carries a token or a signed URL.
func (a *Adapter) classify(method string, err error) error {
	return classify(method, err)
}

func classify(method string, err error) error {
	err = redact(err)
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return bot.RateLimitError(max(rl.RetryAfter, time.Second), fmt.Errorf("%s: %w", method, err))
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		switch {
		case sc.Code == 429:
			return bot.RateLimitError(time.Second, fmt.Errorf("%s: %w", method, err))
		case sc.Code >= 500:
			return &bot.DeliveryError{Kind: bot.Temporary, Code: fmt.Sprintf("http_%d", sc.Code), Err: fmt.Errorf("%s: %w", method, err)}
		default:
			return &bot.DeliveryError{Kind: bot.Permanent, Code: fmt.Sprintf("http_%d", sc.Code),
				Operator: "Slack refused the request: check SLACK_API_URL", Err: fmt.Errorf("%s: %w", method, err)}
		}
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		if se.Err == "ratelimited" {
			return bot.RateLimitError(time.Second, fmt.Errorf("%s: %w", method, err))
		}
		if help, ok := operatorHelp[se.Err]; ok {
			if se.Err == "missing_scope" && se.Needed != "" {
				help = fmt.Sprintf("the app lacks the OAuth scope %q: add it on the app's OAuth & Permissions page (or update it from adapters/slack/manifest.yaml), reinstall the app and set the new SLACK_BOT_TOKEN", se.Needed)
			}
			return &bot.DeliveryError{Kind: bot.Permanent, Code: se.Err, Operator: help, Err: fmt.Errorf("%s: %w", method, err)}
		}
		return &bot.DeliveryError{Kind: bot.Temporary, Code: se.Err, Err: fmt.Errorf("%s: %w", method, err)}
	}
	if errors.Is(err, slack.ErrParametersMissing) || errors.Is(err, slack.ErrBlockIDNotUnique) {
		return &bot.DeliveryError{Kind: bot.Permanent, Code: "invalid_arguments", Operator: operatorHelp["invalid_arguments"], Err: fmt.Errorf("%s: %w", method, err)}
	}
	code := "network"
	if errors.Is(err, context.DeadlineExceeded) {
		code = "timeout"
	} else if _, ok := errors.AsType[net.Error](err); !ok && !errors.Is(err, context.Canceled) {
		code = "error"
	}
	return &bot.DeliveryError{Kind: bot.Temporary, Code: code, Err: fmt.Errorf("%s: %w", method, err)}
}

// redact drops the URL from a transport error: a response_url is a bearer
// credential and must not reach a log.
func redact(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return &redactedURLError{op: ue.Op, err: ue.Err}
	}
	return err
}

type redactedURLError struct {
	op  string
	err error
}

func (e *redactedURLError) Error() string { return e.op + " (URL withheld): " + e.err.Error() }
func (e *redactedURLError) Unwrap() error { return e.err }

// metrics are the adapter's Prometheus series.
type metrics struct {
	calls    *prometheus.CounterVec
	inbound  *prometheus.CounterVec
	ack      *prometheus.HistogramVec
	sessions prometheus.Gauge
	// refused counts what was not sent to a workspace that is not (or no
	// longer) installed, by reason (installs.go).
	refused *prometheus.CounterVec
	// caughtUp counts thread replies read back when the adapter starts
	// (catchup.go).
	caughtUp prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "api_calls_total",
			Help: "Slack Web API calls by method and result (ok, ratelimited, temporary, permanent).",
		}, []string{"method", "result"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "inbound_total",
			Help: "Deliveries from Slack by kind (command, action, submit, event) and result (handled, duplicate, ignored, rejected, bad, unstored: not acknowledged, failed: handing it to the bot panicked).",
		}, []string{"transport", "kind", "result"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "ack_seconds",
			Help:    "Time from receiving a Slack delivery to acknowledging it (Slack allows 3 s).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3},
		}, []string{"transport"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "socket_mode_connected",
			Help: "1 while a Socket Mode connection is open.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "workspace_refused_total",
			Help: "Web API calls not made because their workspace is not installed or removed the app, by reason (not_installed, app_uninstalled, tokens_revoked); the delivery is dead with that reason.",
		}, []string{"reason"}),
		caughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "slack", Name: "thread_replies_caught_up_total",
			Help: "Thread replies in case threads read back when the adapter starts and handed to the bot (the bot keeps those it had once).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.inbound, m.ack, m.sessions, m.refused, m.caughtUp} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register slack metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) call(method string, err error) {
	result := "ok"
	if err != nil {
		switch kind, _ := bot.Classify(classify(method, err)); kind {
		case bot.RateLimited:
			result = "ratelimited"
		case bot.Permanent:
			result = "permanent"
		default:
			result = "temporary"
		}
	}
	m.calls.WithLabelValues(method, result).Inc()
}

func (m *metrics) in(transport, kind, result string) {
	m.inbound.WithLabelValues(transport, kind, result).Inc()
}

func (m *metrics) acked(transport string, since time.Time) {
	m.ack.WithLabelValues(transport).Observe(time.Since(since).Seconds())
}
