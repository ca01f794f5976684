package bot_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// panicky is casework whose Open and DecodeEvent panic the first time
// each is called, as a bug would.
type panicky struct {
	Cases
	opens, decodes atomic.Int32
}

func (p *panicky) Open(ctx context.Context, o OpenCase) (CaseView, error) {
	if p.opens.Add(1) == 1 {
		var m map[string]int
		m["boom"]++ // a nil map write: a runtime panic
	}
	return p.Cases.Open(ctx, o)
}

func (p *panicky) DecodeEvent(kind string, payload json.RawMessage) (CaseEvent, bool, error) {
	if p.decodes.Add(1) == 1 {
		panic("decode bug")
	}
	return p.Cases.DecodeEvent(kind, payload)
}

// panicCount reads threatdesk_panics_total{component="bot"}.
func panicCount(t testing.TB, reg prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "threatdesk_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "component" && l.GetValue() == "bot" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("threatdesk_panics_total{component=\"bot\"} is not registered")
	return 0
}

// TestAPanicInAnEventIsAnErrorResult: a command whose work panics gets the
// generic "something went wrong" answer, its row is dead with the panic as
// its error, the panic is counted, and the bot goes on: the next command
// opens its case. An outbox row whose rendering panics goes dead the same
// way, and the next one is delivered.
func TestAPanicInAnEventIsAnErrorResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)
	cases := &panicky{Cases: NewCaseworkCases(cw)}
	reg := prometheus.NewRegistry()
	b, err := New(testConfig(), db, cases, nil, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), reg)
	require.NoError(t, err)
	sl := bottest.New(Slack, slackTeam)
	require.NoError(t, b.Register(sl))
	var handled testwait.Signal // after each row the bot handled
	b.OnSettled(handled.Notify)
	require.Zero(t, panicCount(t, reg), "the counter is there before any panic")

	ask := func(key, text string) Message {
		t.Helper()
		r := bottest.NewResponder()
		b.HandleCommand(ctx, Command{User: User{Platform: Slack, Workspace: slackTeam, ID: analyst}, Channel: contosoSOC,
			Name: "ask", Args: []string{text}, Text: `"` + text + `"`, Key: key, Respond: r})
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok, "no answer to %q", text)
		return got.Message
	}
	require.Contains(t, plain(ask("cmd-1", "first question")), "Something went wrong in threatdesk")
	var lastError string
	testwait.For(t, tenSeconds, "the row dead: a panic is not retried", func() bool { // answered first, then settled
		err := db.QueryRow(ctx, `SELECT last_error FROM bot_inbound WHERE key = $1 AND dead_at IS NOT NULL`, "slack:command:cmd-1").Scan(&lastError)
		return err == nil
	}, &handled)
	require.Contains(t, lastError, "panic in inbound command: assignment to entry in nil map")
	require.EqualValues(t, 1, panicCount(t, reg))

	require.Contains(t, plain(ask("cmd-2", "second question")), "Opened EOD-1", "the next event is handled")

	// Delivery: EOD-1's opened event panics in rendering, EOD-2's is delivered.
	runCtx, cancel := context.WithCancel(ctx)
	require.NoError(t, b.Start(runCtx))
	t.Cleanup(func() { cancel(); require.NoError(t, b.Stop(), "no panic escaped its boundary") })
	require.Contains(t, plain(ask("cmd-3", "third question")), "Opened EOD-2")
	posted(t, sl, deskChannel, nil, "EOD-2 · Contoso")
	testwait.For(t, tenSeconds, "EOD-1's opened event dead", func() bool {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL AND last_error LIKE '%panic in outbox row case.opened: decode bug%'`).Scan(&n))
		return n == 1
	}, &handled)
	require.EqualValues(t, 2, panicCount(t, reg))
	require.Zero(t, sl.Count(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Channel == deskChannel && strings.Contains(bottest.Plain(c.Message), "EOD-1 ·")
	}))
}
