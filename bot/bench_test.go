package bot_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// BenchmarkCommands sends b.N "/experts ask" commands, 20 at a time, through
// HandleCommand, each opening a case in Postgres (casework, outbox) and
// answered through its Responder; the delivery workers post receipts and
// desk cards meanwhile. It reports commands handled per second end to end,
// and the p50/p99 time from the command to its acknowledgement; and, waiting
// for the last desk card, cases delivered to chat per second.
func BenchmarkCommands(b *testing.B) {
	db := pgtest.New(b)
	f := setupWith(b, db, true, nil, casework.Config{CreditsPerQuarter: 10_000_000, CreditsCap: 20_000_000}, func(c *Config) {
		c.Delivery.Workers = 8
	})
	ctx := context.Background()
	const concurrency = 20
	acks := make([]time.Duration, b.N)
	responders := make([]*bottest.Responder, b.N)
	next := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, r := f.command(Slack, analyst, contosoSOC, fmt.Sprintf(`ask "benchmark question %d"`, i))
				responders[i] = r
				t0 := time.Now()
				ack := f.bot.HandleCommand(ctx, c)
				acks[i] = time.Since(t0)
				if ack.Message != nil {
					b.Errorf("command %d refused: %s", i, plain(*ack.Message))
				}
				// Each caller waits for its answer before its next command:
				// concurrency is the number of analysts typing at once.
				if _, ok := r.Wait(30 * time.Second); !ok {
					b.Errorf("command %d not answered", i)
				}
			}
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	// Then until every case's desk card is posted: the whole pipeline,
	// outbox delivery included.
	ok := false
	for deadline := time.Now().Add(5 * time.Minute); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ok = f.slack.Count(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == deskChannel }) >= b.N
	}
	delivered := time.Since(start)
	b.StopTimer()
	require.True(b, ok, "every desk card posted")
	for i, r := range responders {
		got := r.Responses()
		require.Len(b, got, 1, "command %d", i)
		require.Contains(b, plain(got[0].Message), "Opened EOD-")
	}
	slices.Sort(acks)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
	b.ReportMetric(float64(b.N)/delivered.Seconds(), "cmds-delivered/s")
	b.ReportMetric(float64(acks[len(acks)/2].Microseconds()), "ack-p50-µs")
	b.ReportMetric(float64(acks[(len(acks)*99)/100].Microseconds()), "ack-p99-µs")
	b.ReportMetric(0, "ns/op")
}
