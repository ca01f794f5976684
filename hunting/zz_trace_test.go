package hunting

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/pgtest"
)

type tracer struct {
	mu    sync.Mutex
	start map[*pgx.Conn]time.Time
	last  map[*pgx.Conn]time.Time
	dur   map[string]time.Duration
	cnt   map[string]int
	sql   map[*pgx.Conn]string
}

func key(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 70 {
		s = s[:70]
	}
	return s
}
func (t *tracer) add(k string, d time.Duration) { t.dur[k] += d; t.cnt[k]++ }
func (t *tracer) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.mu.Lock(); t.start[c] = time.Now(); t.sql[c] = d.SQL; t.mu.Unlock(); return ctx
}
func (t *tracer) TraceQueryEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryEndData) {
	t.mu.Lock(); t.add(key(t.sql[c]), time.Since(t.start[c])); t.mu.Unlock()
}
func (t *tracer) TraceBatchStart(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	t.mu.Lock(); t.last[c] = time.Now(); t.mu.Unlock(); return ctx
}
func (t *tracer) TraceBatchQuery(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchQueryData) {
	t.mu.Lock(); now := time.Now(); t.add("B: "+key(d.SQL), now.Sub(t.last[c])); t.last[c] = now; t.mu.Unlock()
}
func (t *tracer) TraceBatchEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchEndData) {}

func TestZZTrace(t *testing.T) {
	if os.Getenv("ZZTRACE") == "" {
		t.Skip()
	}
	_, url := pgtest.NewWithURL(t)
	cfg, _ := pgxpool.ParseConfig(url)
	tr := &tracer{start: map[*pgx.Conn]time.Time{}, last: map[*pgx.Conn]time.Time{}, dur: map[string]time.Duration{}, cnt: map[string]int{}, sql: map[*pgx.Conn]string{}}
	cfg.ConnConfig.Tracer = tr
	if os.Getenv("ZZEXPLAIN") != "" {
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "LOAD 'auto_explain'; SET auto_explain.log_min_duration = '"+os.Getenv("ZZEXPLAIN")+"'; SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; SET auto_explain.log_timing = off")
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	clock := &fakeClock{t: t0}
	svc, err := New(pool, Config{Tenants: map[string]string{tenantContoso: "contoso"}, Now: clock.Now}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := newCorpus(1, 5000, 400)
	N := 100
	batches := make([][]RawAlert, N)
	for i := range batches {
		batches[i] = c.batch(500, clock.Now().Add(time.Duration(i)*time.Minute-time.Hour))
	}
	var ing, sw time.Duration
	for i := range N {
		s := time.Now()
		if _, err := svc.Ingest(ctx, batches[i]); err != nil {
			t.Fatal(err)
		}
		ing += time.Since(s)
		clock.Advance(time.Minute)
		s = time.Now()
		if _, err := svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		sw += time.Since(s)
	}
	type kv struct {
		k string
		d time.Duration
	}
	var all []kv
	for k, d := range tr.dur {
		all = append(all, kv{k, d})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].d > all[j].d })
	fmt.Printf("ingest %.1f ms/batch, sweep %.1f ms/batch\n", float64(ing.Microseconds())/1000/float64(N), float64(sw.Microseconds())/1000/float64(N))
	for _, x := range all {
		fmt.Printf("%8.2f ms/batch %5d  %s\n", float64(x.d.Microseconds())/1000/float64(N), tr.cnt[x.k], x.k)
	}
}
