package slack

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Handler serves Slack's HTTP mode: POST /slack/commands, /slack/interactions
// and /slack/events. Every request's signature is checked on the raw body
// before anything is parsed (401, no detail, otherwise). Without a signing
// secret every path answers 404. Mount it at "/slack/".
func (a *Adapter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/commands", a.serveCommand)
	mux.HandleFunc("POST /slack/interactions", a.serveInteraction)
	mux.HandleFunc("POST /slack/events", a.serveEvent)
	return mux
}

// signatureMaxAge is how old a signed request may be (slack-go's
// SecretsVerifier enforces it; Slack documents 5 minutes).
const signatureMaxAge = 5 * time.Minute

// verified reads the body within MaxBodyBytes and checks its signature and
// timestamp (5 minutes), and that the same signature was not seen before (a
// replay). It writes the error response itself and returns ok=false.
func (a *Adapter) verified(w http.ResponseWriter, r *http.Request, kind string) ([]byte, bool) {
	if a.cfg.SigningSecret == "" {
		http.NotFound(w, r)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.metrics.in("http", kind, "rejected")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	if kind == "command" {
		// Slack checks a distributed app's certificate by posting
		// ssl_check=1 to its command URL: answered 200, nothing done.
		if f, err := url.ParseQuery(string(body)); err == nil && f.Get("ssl_check") == "1" && f.Get("command") == "" {
			a.metrics.in("http", kind, "ssl_check")
			w.WriteHeader(http.StatusOK)
			return nil, false
		}
	}
	sv, err := slack.NewSecretsVerifier(r.Header, a.cfg.SigningSecret.Value())
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err == nil {
		// Ensure compared the decoded bytes, so a replay may spell the hex
		// differently: the replay key is the bytes too.
		sig, derr := hex.DecodeString(strings.TrimPrefix(r.Header.Get("X-Slack-Signature"), "v0="))
		switch {
		case derr != nil:
			err = fmt.Errorf("signature: %w", derr)
		case a.replayed(r.Context(), signatureKey(sig)):
			err = errors.New("replayed signature")
		}
	}
	if err != nil {
		a.metrics.in("http", kind, "rejected")
		a.log.Info("unsigned or stale Slack request rejected", "path", r.URL.Path, "reason", err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

func (a *Adapter) writeAck(w http.ResponseWriter, payload any, received time.Time) {
	if payload == nil {
		w.WriteHeader(http.StatusOK)
		a.metrics.acked("http", received)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(payload)
	a.metrics.acked("http", received)
}

// requestCtx keeps the request's values but not its cancellation: the
// handler's background work outlives the response.
func requestCtx(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	body, ok := a.verified(w, r, "command")
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		a.metrics.in("http", "command", "bad")
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	sc := slack.SlashCommand{
		TeamID: form.Get("team_id"), TeamDomain: form.Get("team_domain"), EnterpriseID: form.Get("enterprise_id"),
		ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"), UserID: form.Get("user_id"),
		UserName: form.Get("user_name"), Command: form.Get("command"), Text: form.Get("text"),
		ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"), APIAppID: form.Get("api_app_id"),
	}
	a.writeAck(w, a.handleCommand(requestCtx(r), "http", sc), received)
}

func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	body, ok := a.verified(w, r, "action")
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	var cb slack.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &cb)
	}
	if err != nil {
		a.metrics.in("http", "action", "bad")
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.writeAck(w, a.handleInteraction(requestCtx(r), "http", cb), received)
}

func (a *Adapter) serveEvent(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	body, ok := a.verified(w, r, "event")
	if !ok {
		return
	}
	var oe outerEvent
	if err := json.Unmarshal(body, &oe); err != nil {
		a.metrics.in("http", "event", "bad")
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if oe.Type == "url_verification" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": oe.Challenge})
		return
	}
	if n, _ := strconv.Atoi(r.Header.Get("X-Slack-Retry-Num")); n > 0 {
		a.log.Debug("Slack redelivered an event", "retry", n, "reason", r.Header.Get("X-Slack-Retry-Reason"))
	}
	// A thread reply is stored before it is acknowledged; one that cannot
	// be gets a 503, and Slack sends it again (at once, after a minute and
	// after five: a database restart or fail-over is over by then).
	if err := a.handleEvent(requestCtx(r), "http", body); err != nil {
		a.log.Warn("event not acknowledged, so that Slack delivers it again", "err", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	a.writeAck(w, nil, received)
}
