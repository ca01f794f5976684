package slack

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// runSocketMode keeps a Socket Mode session open until ctx ends, starting a
// new one with backoff when slack-go gives up (it reconnects by itself on
// `disconnect` and dropped sockets, and returns on errors such as invalid_auth).
func (a *Adapter) runSocketMode(ctx context.Context) {
	wait := a.cfg.ReconnectMin
	for {
		began := time.Now()
		err := a.socketSession(ctx)
		a.metrics.sessions.Set(0)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 2*time.Minute {
			wait = a.cfg.ReconnectMin
		}
		d := wait/2 + rand.N(wait/2+1)
		a.log.Warn("Socket Mode session ended; reconnecting", "err", classify("apps.connections.open", err), "in", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		wait = min(wait*2, a.cfg.ReconnectMax)
	}
}

// socketSession runs one slack-go Socket Mode client and dispatches its events.
func (a *Adapter) socketSession(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	smc := socketmode.New(a.api)
	done := make(chan struct{})
	if !a.life.Go("socket mode events", func(context.Context) error {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return nil
			case evt := <-smc.Events:
				a.socketEvent(ctx, smc, evt)
			}
		}
	}) {
		return errors.New("stopping")
	}
	err := smc.RunContext(ctx)
	cancel()
	<-done
	if err == nil {
		err = errors.New("socket mode client stopped")
	}
	return err
}

// socketEvent handles one event from slack-go. Envelopes are handled on
// their own goroutines so that a slow handler does not delay the next ack.
func (a *Adapter) socketEvent(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	received := time.Now()
	switch evt.Type {
	case socketmode.EventTypeConnected:
		a.metrics.sessions.Set(1)
		a.log.Info("Socket Mode connected")
	case socketmode.EventTypeConnectionError:
		if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			a.log.Warn("Socket Mode connection failed", "attempt", ce.Attempt, "retry_in", ce.Backoff, "err", classify("apps.connections.open", ce.ErrorObj))
		}
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("Socket Mode refused: " + operatorHelp["invalid_auth"] + " (and check SLACK_APP_TOKEN has connections:write)")
	case socketmode.EventTypeSlashCommand:
		req := evt.Request
		sc, ok := evt.Data.(slack.SlashCommand)
		if !ok || req == nil {
			return
		}
		a.background("socket slash command", func(context.Context) {
			payload := a.handleCommand(ctx, "socket", sc)
			a.socketAck(ctx, smc, req.EnvelopeID, payload, received)
		})
	case socketmode.EventTypeInteractive:
		req := evt.Request
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || req == nil {
			return
		}
		a.background("socket interaction", func(context.Context) {
			payload := a.handleInteraction(ctx, "socket", cb)
			a.socketAck(ctx, smc, req.EnvelopeID, payload, received)
		})
	case socketmode.EventTypeEventsAPI:
		req := evt.Request
		if req == nil {
			return
		}
		a.background("socket event", func(bctx context.Context) { a.socketEventsAPI(ctx, bctx, smc, req.EnvelopeID, req.Payload, received) })
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse it; the envelope still needs its ack, or
		// Slack retries it and eventually disables the app.
		bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
		if !ok {
			return
		}
		var env struct {
			EnvelopeID string          `json:"envelope_id"`
			Type       string          `json:"type"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(bad.Message, &env); err != nil || env.EnvelopeID == "" {
			a.log.Warn("unreadable Socket Mode message", "err", bad.Cause)
			return
		}
		if env.Type == socketmode.RequestTypeEventsAPI {
			id, raw := env.EnvelopeID, []byte(env.Payload)
			a.background("socket event", func(bctx context.Context) { a.socketEventsAPI(ctx, bctx, smc, id, raw, received) })
			return
		}
		a.socketAck(ctx, smc, env.EnvelopeID, nil, received)
		a.metrics.in("socket", env.Type, "bad")
		a.log.Warn("Socket Mode envelope acknowledged but not understood", "type", env.Type, "err", bad.Cause)
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
		a.log.Warn("Socket Mode transport error", "type", string(evt.Type))
	}
}

// socketEventsAPI hands an Events API envelope to the handler and
// acknowledges it once the handler has what it needs (a thread reply is
// stored first). One the handler could not store is left unacknowledged, so
// that Slack delivers it again (retry_attempt 1, 2, 3) instead of it being
// lost. The session's ctx carries the ack; work uses the adapter's.
func (a *Adapter) socketEventsAPI(session, work context.Context, smc *socketmode.Client, envelopeID string, raw []byte, received time.Time) {
	if err := a.handleEvent(work, "socket", raw); err != nil {
		a.log.Warn("event not acknowledged, so that Slack delivers it again", "err", err)
		return
	}
	a.socketAck(session, smc, envelopeID, nil, received)
}

func (a *Adapter) socketAck(ctx context.Context, smc *socketmode.Client, envelopeID string, payload any, received time.Time) {
	err := smc.AckCtx(ctx, envelopeID, payload)
	if err != nil && payload != nil {
		// Too big for a Socket Mode response: acknowledge empty. (deliverAck
		// already keeps big answers out of the ack; this is the last resort.)
		a.log.Warn("acknowledgement payload refused; acknowledging empty", "err", err)
		err = smc.AckCtx(ctx, envelopeID, nil)
	}
	if err != nil {
		a.log.Warn("acknowledgement not sent", "err", err)
		return
	}
	a.metrics.acked("socket", received)
}
