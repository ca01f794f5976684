package pgtest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PlanPages runs EXPLAIN (ANALYZE, BUFFERS) of sql with args and returns
// the pages the statement read or wrote in shared buffers (hit or read),
// and the plan as JSON: for tests that a query's cost follows the rows
// asked for, not the size of a table.
func PlanPages(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) (int, []byte) {
	t.Helper()
	var raw []byte
	if err := pool.QueryRow(context.Background(), "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("explain: %v", err)
	}
	var plan []struct {
		Plan struct {
			Hit  int `json:"Shared Hit Blocks"`
			Read int `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		t.Fatalf("decode plan %s: %v", raw, err)
	}
	return plan[0].Plan.Hit + plan[0].Plan.Read, raw
}

// RowsRemoved sums the rows the nodes of a JSON plan (from PlanPages) read
// and then dropped by a filter, over all their loops.
func RowsRemoved(t testing.TB, plan []byte) float64 {
	t.Helper()
	var v any
	if err := json.Unmarshal(plan, &v); err != nil {
		t.Fatalf("decode plan: %v", err)
	}
	var sum float64
	var walk func(any)
	walk = func(v any) {
		switch n := v.(type) {
		case []any:
			for _, c := range n {
				walk(c)
			}
		case map[string]any:
			if r, ok := n["Rows Removed by Filter"].(float64); ok {
				loops, _ := n["Actual Loops"].(float64)
				sum += r * max(loops, 1)
			}
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(v)
	return sum
}

// NoAutovacuum keeps autovacuum off tables a test fills, so that the
// planner sees the statistics the test took (stale ones, often: as while
// intake fills a table faster than autovacuum analyzes it).
func NoAutovacuum(t testing.TB, pool *pgxpool.Pool, tables ...string) {
	t.Helper()
	for _, tbl := range tables {
		if _, err := pool.Exec(context.Background(), "ALTER TABLE "+tbl+" SET (autovacuum_enabled = false)"); err != nil {
			t.Fatalf("autovacuum off for %s: %v", tbl, err)
		}
	}
}
