package discord_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

// BenchmarkInteractionAck sends 200 /experts interactions through the fake
// gateway, 20 at a time, and measures from the INTERACTION_CREATE dispatch
// to the callback's arrival at the fake (real discordgo, real sockets).
func BenchmarkInteractionAck(b *testing.B) {
	const total, concurrency = 200, 20
	f := setup(b)
	f.h.onCommand = func(bot.Command) bot.Ack { return bot.Ack{Private: true} }
	f.start(b)
	var all []time.Duration
	b.ResetTimer()
	for range b.N {
		lat := make([]time.Duration, total)
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					in, err := f.fake.Interact(f.fake.CommandPayload(channelID, analystID, "experts", "status", map[string]any{"case": "EOD-1"}))
					require.NoError(b, err)
					cb, err := in.Wait(10 * time.Second)
					require.NoError(b, err)
					require.Equal(b, 5, cb.Type)
					lat[i] = cb.Latency
				}
			}()
		}
		for i := range total {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		all = append(all, lat...)
	}
	b.StopTimer()
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "interactions/s")
	require.Empty(b, f.fake.Violations())
}
