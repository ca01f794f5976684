package discord

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	interactions *prometheus.CounterVec
	ackSeconds   *prometheus.HistogramVec
	requests     *prometheus.CounterVec
	leader       prometheus.Gauge
	connected    prometheus.Gauge
	replies      prometheus.Counter
	// Thread replies waiting to be handed to the bot, and those given up.
	pendingReplies prometheus.Gauge
	lostReplies    prometheus.Counter
	// Thread messages read again after a new gateway session (catchup.go).
	caughtUp prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "threatdesk", "discord"
	m := &metrics{
		interactions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "interactions_total",
			Help: "Interactions received, by source (gateway, http), kind and answer."}, []string{"source", "kind", "answer"}),
		ackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "interaction_ack_seconds",
			Help:    "Time from receiving an interaction to its answer being sent (Discord allows 3s).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3}}, []string{"source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "REST calls to Discord by operation and outcome (ok, temporary, ratelimited, permanent)."}, []string{"op", "outcome"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "gateway_leader",
			Help: "1 while this replica holds the gateway leadership lock."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "gateway_connected",
			Help: "1 while this replica's gateway websocket is connected."}),
		replies: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "thread_replies_total",
			Help: "Human messages in threads handed to the bot."}),
		pendingReplies: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "thread_replies_pending",
			Help: "Thread messages from the gateway kept in memory until the bot takes them (channel lookup or database failing)."}),
		lostReplies: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "thread_replies_lost_total",
			Help: "Thread messages from the gateway given up: unreadable, too many waiting, or not taken within an hour."}),
		caughtUp: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "thread_replies_caught_up_total",
			Help: "Human messages in case threads read back after a new gateway session and handed to the bot (the bot keeps those it had once)."}),
	}
	for _, c := range []prometheus.Collector{m.interactions, m.ackSeconds, m.requests, m.leader, m.connected, m.replies, m.pendingReplies, m.lostReplies, m.caughtUp} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("discord: register metrics: %w", err)
		}
	}
	return m, nil
}
