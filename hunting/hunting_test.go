package hunting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
)

const (
	tenantContoso  = "a839b112-1253-6432-9bf6-94542403f21c"
	tenantFabrikam = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
	testToken      = "test-ingest-token"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *Service
	pool  *pgxpool.Pool
	clock *fakeClock
	ctx   context.Context
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func setup(t testing.TB, mod ...func(*Config)) *fixture {
	t.Helper()
	pool := pgtest.New(t)
	clock := &fakeClock{t: t0}
	cfg := Config{
		Tenants:     map[string]string{tenantContoso: "contoso", tenantFabrikam: "fabrikam"},
		IngestToken: testToken,
		Now:         clock.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	svc, err := New(pool, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	return &fixture{svc: svc, pool: pool, clock: clock, ctx: context.Background()}
}

// gen builds a Defender /api/alerts alert for tests.
type gen struct {
	ID       string
	Tenant   string
	Severity string
	Category string
	Title    string
	Source   string
	DeviceID string
	Device   string
	At       time.Time
	Status   string
	Class    string   // classification
	Files    []string // sha256 values
	IPs      []string
	Users    []string // account names
	Techs    []string
}

func (g gen) raw() json.RawMessage {
	tenant := g.Tenant
	if tenant == "" {
		tenant = tenantContoso
	}
	sev := g.Severity
	if sev == "" {
		sev = "Medium"
	}
	src := g.Source
	if src == "" {
		src = "WindowsDefenderAtp"
	}
	at := g.At
	if at.IsZero() {
		at = t0.Add(-10 * time.Minute)
	}
	status := g.Status
	if status == "" {
		status = "New"
	}
	dev := g.DeviceID
	if dev == "" && g.Device != "" {
		dev = fmt.Sprintf("%040x", hashString(g.Device))
	}
	var ev []map[string]any
	for _, u := range g.Users {
		ev = append(ev, map[string]any{"entityType": "User", "accountName": u, "domainName": "CONTOSO",
			"userSid": fmt.Sprintf("S-1-5-21-1-2-3-%d", hashString(u)%100000)})
	}
	for i, f := range g.Files {
		ev = append(ev, map[string]any{"entityType": "File", "sha256": f, "sha1": f[:40], "fileName": fmt.Sprintf("payload%d.exe", i),
			"filePath": `C:\Users\Public`})
	}
	for _, ip := range g.IPs {
		ev = append(ev, map[string]any{"entityType": "Ip", "ipAddress": ip})
	}
	m := map[string]any{
		"id": g.ID, "incidentId": 42, "severity": sev, "status": status, "detectionSource": src,
		"category": g.Category, "title": g.Title, "description": "test alert",
		"alertCreationTime": at.Add(time.Minute).Format(time.RFC3339Nano), "firstEventTime": at.Format(time.RFC3339Nano),
		"lastEventTime": at.Format(time.RFC3339Nano), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339Nano),
		"machineId": dev, "computerDnsName": g.Device, "aadTenantId": tenant, "mitreTechniques": g.Techs, "evidence": ev,
	}
	if g.Class != "" {
		m["classification"] = g.Class
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func hashString(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func sha(s string) string {
	return fmt.Sprintf("%016x%016x%016x%016x", hashString(s), hashString(s+"1"), hashString(s+"2"), hashString(s+"3"))
}

func (f *fixture) ingest(t testing.TB, gs ...gen) *IngestResult {
	t.Helper()
	raws := make([]RawAlert, len(gs))
	for i, g := range gs {
		raws[i] = g.raw()
	}
	res, err := f.svc.Ingest(f.ctx, raws)
	require.NoError(t, err)
	return res
}

func (f *fixture) incidentOf(t testing.TB, org, alertID string) int64 {
	t.Helper()
	a, err := f.svc.Alert(f.ctx, org, alertID)
	require.NoError(t, err)
	return a.IncidentID
}

func (f *fixture) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, sql, args...).Scan(&n))
	return n
}

type outboxRow struct {
	Kind    string
	Stream  string
	Payload EventPayload
}

func (f *fixture) outbox(t testing.TB) []outboxRow {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT kind, stream, payload FROM outbox ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var p []byte
		require.NoError(t, rows.Scan(&r.Kind, &r.Stream, &p))
		require.NoError(t, json.Unmarshal(p, &r.Payload))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func kinds(rows []outboxRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Kind)
	}
	return out
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad score", Config{Tenants: map[string]string{"t": "o"}, NotifyScore: 101}, "a score is 0-100"},
		{"bad org score", Config{Tenants: map[string]string{"t": "o"}, OrgNotifyScore: map[string]int{"o": -1}}, "org o"},
		{"short window", Config{Tenants: map[string]string{"t": "o"}, Window: time.Second}, "window"},
		{"tiny common", Config{Tenants: map[string]string{"t": "o"}, CommonEntityDevices: 1}, "common-entity"},
		{"empty org", Config{Tenants: map[string]string{"t": ""}}, "both must be set"},
		{"chain shorter than window", Config{Tenants: map[string]string{"t": "o"}, Window: 48 * time.Hour, ChainWindow: 24 * time.Hour}, "chain window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.cfg.withDefaults()
			err := c.validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	c := (&Config{Tenants: map[string]string{"T": "o"}}).withDefaults()
	require.NoError(t, c.validate())
	require.Equal(t, 24*time.Hour, c.Window)
	require.Equal(t, 7*24*time.Hour, c.ChainWindow)
	require.Equal(t, 30*time.Second, c.GroupWait)
	require.Equal(t, 5*time.Minute, c.GroupInterval)
	require.Equal(t, 4*time.Hour, c.RepeatInterval)
	require.Equal(t, "o", c.Tenants["t"], "tenant ids are matched case-insensitively")
}
