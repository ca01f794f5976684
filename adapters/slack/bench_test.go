package slack_test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
)

// BenchmarkSocketModeAck sends 200 slash commands over Socket Mode from 20
// concurrent senders per iteration, through the fake, and reports the
// acknowledgement latency the fake measured (envelope written to ack read).
func BenchmarkSocketModeAck(b *testing.B) {
	f := setup(b, setupOpts{socket: true})
	f.rec.onCmd = func(c bot.Command) bot.Ack {
		return bot.Ack{Message: &bot.Message{Text: []bot.Line{{bot.T("Working on "), bot.U(c.Text)}}}, Private: true}
	}
	const commands, concurrency = 200, 20
	var all []time.Duration
	b.ResetTimer()
	for b.Loop() {
		lat := make([]time.Duration, commands)
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for i := range jobs {
					ack, err := f.fake.Command(f.ctx, slackfake.SlashCommand{Text: `alert da6374 "is this lateral movement?"`, UserID: analyst, ChannelID: socChannel})
					if err != nil {
						b.Error(err)
						return
					}
					lat[i] = ack.Latency
				}
			})
		}
		for i := range commands {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		all = append(all, lat...)
	}
	b.StopTimer()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
