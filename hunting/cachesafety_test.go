package hunting

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestCachesKeepNoSendersStrings: an entity's value is a piece of the
// string the sender sent (a device id cut to its length from a 1 MB
// machineId); kept as a cache key it held the whole string in memory, and
// the caches are bounded by entries, not bytes: any token holder could
// grow the process by a body a request (from a review). The keys kept
// are copies.
func TestCachesKeepNoSendersStrings(t *testing.T) {
	t.Parallel()
	sent := strings.Repeat("a", 1<<20) + "contoso" + "device" + strings.Repeat("b", 1<<20)
	base := uintptr(unsafe.Pointer(unsafe.StringData(sent)))
	inSent := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return len(s) > 0 && p >= base && p < base+uintptr(len(sent))
	}
	piece := func(from, n int) string { return sent[from : from+n] }
	org, kind, value, dev := piece(1<<20, 7), piece(1<<20+7, 6), piece(10, 128), piece(1<<20+13, 128)
	c := newPrevalenceCache()
	u := newCacheUpdate()
	u.recorded[devK{org, kind, value, dev}] = t0
	u.common[devK{org, kind, value, ""}] = t0
	u.entities[entKey{inc: 1, kind: kind, value: value}] = entSeen{first: t0, last: t0}
	c.apply(u)
	for k := range c.recorded {
		require.False(t, inSent(k.org) || inSent(k.kind) || inSent(k.value) || inSent(k.dev), "recorded keeps the sender's string")
	}
	for k := range c.common {
		require.False(t, inSent(k.org) || inSent(k.kind) || inSent(k.value), "common keeps the sender's string")
	}
	for k := range c.entities {
		require.False(t, inSent(k.kind) || inSent(k.value), "entities keeps the sender's string")
	}
	require.Len(t, c.recorded, 1)
	require.Len(t, c.entities, 1)
}

// TestTwoOrgRequestWaitsForTheDisk: a request (with the admin token) of
// two orgs' alerts was answered without the flush to disk that a one-org
// request waits for (from a review): cut at that flush, it is answered 503,
// as the one-org request is.
func TestTwoOrgRequestWaitsForTheDisk(t *testing.T) {
	t.Parallel()
	f, o, _ := outageFixture(t)
	h := f.svc.Handler()
	o.armCut([]byte("pg_logical_emit_message"))
	rec := postIntake(h, batch(t, gen{ID: "m1", Device: "ws1"}, gen{ID: "m2", Device: "ws2", Tenant: tenantFabrikam}))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	require.Equal(t, 1, o.cutCount(), "the flush was asked for, and cut")
}

// TestCommonCacheKeepsTheStoreRight: a key the cache held as common had
// its sightings left out of the store, so a replica without the cache (or
// this one once the entry ran out) counted it as not common and linked
// alerts through it: correlation depended on the cache (from a review).
func TestCommonCacheKeepsTheStoreRight(t *testing.T) {
	t.Parallel()
	file := sha("popular")
	run := func(forgetBetween bool) (a5, a7 int64, rows int) {
		f := setup(t, func(c *Config) { c.CommonEntityDevices = 3 })
		f.ingest(t, gen{ID: "a1", Device: "d1", At: t0.Add(-26 * time.Hour), Files: []string{file}},
			gen{ID: "a2", Device: "d2", At: t0.Add(-26 * time.Hour), Files: []string{file}},
			gen{ID: "a3", Device: "d3", At: t0.Add(-26 * time.Hour), Files: []string{file}})
		if forgetBetween {
			f.svc.cache.forget()
		}
		f.ingest(t, gen{ID: "a4", Device: "d4", At: t0.Add(-6 * time.Hour), Files: []string{file}, IPs: []string{"203.0.113.1"}},
			gen{ID: "a5", Device: "d5", At: t0.Add(-6 * time.Hour), Files: []string{file}, IPs: []string{"203.0.113.1", "203.0.113.2"}},
			gen{ID: "a6", Device: "d6", At: t0.Add(-6 * time.Hour), Files: []string{file}, IPs: []string{"203.0.113.2"}})
		rows = f.count(t, `SELECT count(*) FROM hunting_entity_devices WHERE kind = 'file'`)
		f.svc.cache.forget() // another replica, or the entry ran out
		r := f.ingest(t, gen{ID: "a7", Device: "d7", At: t0.Add(-1 * time.Hour), Files: []string{file}})
		return f.incidentOf(t, "contoso", "a5"), r.Items[0].IncidentID, rows
	}
	c5, c7, rows := run(false)
	n5, n7, rowsNoCache := run(true)
	require.Equal(t, rowsNoCache, rows, "the same sightings stored, cache or not")
	require.Equal(t, n5 == n7, c5 == c7, "the cache changes no correlation")
}

// TestPruneSkipsRowsAnIngestHolds: the prune deleted old sightings in one
// statement that waited for rows an ingest held, while the ingest's upsert
// waited for rows the prune had locked: a deadlock, and the ingest's whole
// group answered 503 (from a review). Rows held are skipped, not waited
// for.
func TestPruneSkipsRowsAnIngestHolds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	old := t0.Add(-30 * 24 * time.Hour)
	_, err := f.pool.Exec(f.ctx, `INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen)
VALUES ('contoso', 'file', 'held', 'd1', $1), ('contoso', 'file', 'free', 'd2', $1)`, old)
	require.NoError(t, err)
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(f.ctx) }()
	_, err = tx.Exec(f.ctx, `UPDATE hunting_entity_devices SET last_seen = last_seen WHERE value = 'held'`) // an ingest's upsert
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	n, err := f.svc.Prune(ctx)
	require.NoError(t, err, "not waiting for the held row")
	require.Equal(t, int64(1), n)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_entity_devices WHERE value = 'held'`))
}
