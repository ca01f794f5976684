package hunting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkIntakeHTTP4Senders posts lists of 500 realistic Defender alerts
// for one org through the intake handler over real HTTP, from four
// concurrent senders, as four SIEM forwarders of one customer would. A
// sweeper runs beside them, as the scheduler would. b.N is the number of
// requests. It reports alerts/s and the per-request p50/p99.
//
// For a durable figure point TEST_DATABASE_URL at a server with fsync on
// (the harness's own server runs with fsync off).
func BenchmarkIntakeHTTP4Senders(b *testing.B) { benchIntakeHTTP(b, nil) }

// BenchmarkIntakeHTTP4SendersWithHistory is BenchmarkIntakeHTTP4Senders
// for an org with two months behind it: each of its 5,000 devices had an
// incident a day for 60 days (300,000 rows of incident entities, all older
// than the correlation window). Correlation must find the incidents in
// reach of each device without reading its past ones.
func BenchmarkIntakeHTTP4SendersWithHistory(b *testing.B) {
	benchIntakeHTTP(b, func(f *fixture) {
		f.exec(b, `
INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, first_seen, last_seen)
SELECT 10000000 + d * 100 + k, 'contoso', 'device', lpad(to_hex(d + 1), 40, '0'), format('ws%s.contoso.local', lpad(d::text, 5, '0')),
    $1::timestamptz - k * interval '1 day' - interval '2 hours', $1::timestamptz - k * interval '1 day'
FROM generate_series(0, 4999) d, generate_series(2, 61) k`, f.clock.Now())
		f.exec(b, `ANALYZE hunting_incident_entities`)
	})
}

// benchIntakeHTTP runs the intake benchmark on a fixture that history, when
// not nil, has filled first.
func benchIntakeHTTP(b *testing.B, history func(*fixture)) {
	f := setup(b)
	if history != nil {
		history(f)
	}
	const size, senders = 500, 4
	bodies := intakeBodies(b, f, size)
	split := f.svc.stageSplit()
	sendAll(b, f, f.svc.Handler(), bodies, size, senders, false)
	split.report(b, size*b.N)
}

// intakeBodies are b.N request bodies of size realistic alerts each, 15 s
// of alert time apart, ending an hour before the fixture's clock.
func intakeBodies(b *testing.B, f *fixture, size int) [][]byte {
	c := newCorpus(1, 5000, 400)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		items := c.batch(size, f.clock.Now().Add(time.Duration(i)*15*time.Second-time.Hour))
		body, err := json.Marshal(map[string]any{"value": items})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	return bodies
}

// BenchmarkIntakeHTTP4SendersQueued is BenchmarkIntakeHTTP4Senders with
// "Prefer: respond-async": each request is answered once its alerts are
// queued on disk, and the queue is drained meanwhile, as in the service.
// alerts/s is the intake (answered requests); correlated-alerts/s is from
// the first request until the queue is empty again.
func BenchmarkIntakeHTTP4SendersQueued(b *testing.B) {
	f := setup(b)
	const size, senders = 500, 4
	bodies := intakeBodies(b, f, size)
	ctx, cancel := context.WithCancel(f.ctx)
	drained := make(chan error, 1)
	go func() { drained <- f.svc.runQueue(ctx) }()
	split := f.svc.stageSplit()
	start := time.Now()
	sendAll(b, f, f.svc.Handler(), bodies, size, senders, true)
	for {
		var depth int64
		if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM hunting_intake_queue`).Scan(&depth); err != nil {
			b.Fatal(err)
		}
		if depth == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	if err := <-drained; err != nil {
		b.Fatal(err)
	}
	var stored int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM hunting_alerts`).Scan(&stored); err != nil {
		b.Fatal(err)
	}
	if stored == 0 {
		b.Fatal("the queue was drained but no alert was stored")
	}
	b.ReportMetric(float64(size*b.N)/took.Seconds(), "correlated-alerts/s")
	split.report(b, size*b.N)
}

// sendAll posts bodies (lists of size alerts) to h over real HTTP from
// senders concurrent senders, with a sweeper beside them, and reports
// alerts/s, the per-request p50/p99 and this process's CPU per alert.
// queued asks for answers before correlation (Prefer: respond-async, 202).
func sendAll(b *testing.B, f *fixture, h http.Handler, bodies [][]byte, size, senders int, queued bool) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var (
		mu   sync.Mutex
		next int
		lat  []time.Duration
	)
	stop := make(chan struct{})
	sweeps := make(chan error, 1)
	go func() {
		// The scheduler sweeps every 5s by default; a shorter period here
		// keeps the sweep's share of the work visible in a short run.
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sweeps <- nil
				return
			case <-tick.C:
				if _, err := f.svc.Sweep(f.ctx); err != nil {
					sweeps <- err
					return
				}
			}
		}
	}()
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				req, err := http.NewRequest(http.MethodPost, srv.URL+IntakePath, bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				want := http.StatusOK
				if queued {
					req.Header.Set("Prefer", "respond-async")
					want = http.StatusAccepted
				}
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := time.Since(t)
				if err != nil || resp.StatusCode != want {
					b.Errorf("request %d: %d %s %v", i, resp.StatusCode, body, err)
					return
				}
				var res IngestResult
				if err := json.Unmarshal(body, &res); err != nil || len(res.Items) != size || res.Rejected > 0 {
					b.Errorf("request %d: %d items, %d rejected, %v", i, len(res.Items), res.Rejected, err)
					return
				}
				f.clock.Advance(15 * time.Second)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	close(stop)
	if err := <-sweeps; err != nil {
		b.Fatal(fmt.Errorf("sweep: %w", err))
	}
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(size*b.N)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms/req")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms/req")
	// CPU of this process (HTTP, decoding, correlation, the pgx client) per
	// alert: on a shared machine a steadier figure than alerts/s.
	b.ReportMetric(float64(cpu.Microseconds())/float64(size*b.N), "go-cpu-us/alert")
}

// stageSplit is the wall time counted in each ingest stage when it was
// taken.
type stageSplit struct {
	m    *metrics
	from [numStages]float64
}

func (s *Service) stageSplit() stageSplit {
	sp := stageSplit{m: s.m}
	for i, c := range s.m.stages {
		sp.from[i] = testutil.ToFloat64(c)
	}
	return sp
}

// report reports the wall time of each ingest stage per alert since the
// split was taken: the serial path of one org's transactions, stage by
// stage.
func (sp stageSplit) report(b *testing.B, alerts int) {
	for i, c := range sp.m.stages {
		b.ReportMetric((testutil.ToFloat64(c)-sp.from[i])*1e6/float64(alerts), stageNames[i]+"-us/alert")
	}
}

// processCPU is the user and system CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDrainQueue is the drain of BenchmarkIntakeHTTP4SendersQueued on
// its own: b.N lists of 500 alerts are queued first, untimed, then drained.
// It reports the correlation rate of the queue with nothing else running.
func BenchmarkDrainQueue(b *testing.B) {
	f := setup(b)
	const size = 500
	h := f.svc.Handler()
	for _, body := range intakeBodies(b, f, size) {
		if rec := postQueued(b, h, testToken, body); rec.Code != http.StatusAccepted {
			b.Fatalf("queue: %d %s", rec.Code, rec.Body)
		}
	}
	split := f.svc.stageSplit()
	b.ResetTimer()
	start := time.Now()
	n, err := f.svc.drain(f.ctx)
	took := time.Since(start)
	b.StopTimer()
	if err != nil || n != size*b.N {
		b.Fatalf("drained %d of %d: %v", n, size*b.N, err)
	}
	b.ReportMetric(float64(n)/took.Seconds(), "correlated-alerts/s")
	split.report(b, n)
}
