package hunting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

const (
	tenantContoso  = "a839b112-1253-6432-9bf6-94542403f21c"
	tenantFabrikam = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
	testToken      = "test-ingest-token"
)

type fixture struct {
	svc   *Service
	pool  *pgxpool.Pool
	clock *testclock.Clock
	ctx   context.Context
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// testOrgs are Contoso and Fabrikam, one tenant each.
func testOrgs() []Org {
	return []Org{{ID: "contoso", Tenants: []string{tenantContoso}}, {ID: "fabrikam", Tenants: []string{tenantFabrikam}}}
}

func setup(t testing.TB, mod ...func(*Config)) *fixture {
	t.Helper()
	pool := pgtest.New(t)
	clock := testclock.New(t0)
	cfg := Config{
		Orgs:        testOrgs(),
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
	Last     time.Time // last activity (lastEventTime); zero: At
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
	last := g.Last
	if last.IsZero() {
		last = at
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
		"lastEventTime": last.Format(time.RFC3339Nano), "lastUpdateTime": last.Add(2 * time.Minute).Format(time.RFC3339Nano),
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

// exec runs one statement, failing the test if it fails.
func (f *fixture) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := f.pool.Exec(f.ctx, sql, args...)
	require.NoError(t, err)
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
		mod  func(*Config)
		want string
	}{
		{"bad score", func(c *Config) { c.NotifyScore = 101 }, "hunting.notify_score 101 must be between 1 and 100"},
		// README: 1-100, for the org's score as for the default one (hunting
		// once took 0 for an org while internal/config refused it).
		{"zero org score", func(c *Config) { c.Orgs[0].NotifyScore = ptr(0) }, "orgs[0] (contoso).notify_score 0 must be between 1 and 100"},
		{"bad org score", func(c *Config) { c.Orgs[1].NotifyScore = ptr(-1) }, "orgs[1] (fabrikam).notify_score -1 must be between 1 and 100"},
		{"short window", func(c *Config) { c.Window = time.Second }, "hunting.correlation_window 1s is too short: use at least 1m"},
		{"negative wait", func(c *Config) { c.GroupWait = -time.Second }, "hunting.group_wait must be a positive duration"},
		{"tiny common", func(c *Config) { c.CommonEntityDevices = 1 }, "hunting.common_entity_devices 1 must be at least 2"},
		{"tiny body", func(c *Config) { c.MaxBodyBytes = 100 }, "hunting.max_body_bytes 100 is too small"},
		{"too many items", func(c *Config) { c.MaxItems = 100001 }, "hunting.max_items 100001 must be between 1 and 100000"},
		{"repeat severity", func(c *Config) { c.RepeatSeverity = "urgent" }, `hunting.repeat_severity "urgent" must be informational, low, medium or high`},
		{"tenant not a GUID", func(c *Config) { c.Orgs[0].Tenants = []string{"contoso.com"} }, `orgs[0] (contoso).tenants: "contoso.com" is not a tenant id`},
		{"tenant in two orgs", func(c *Config) { c.Orgs[1].Tenants = []string{strings.ToUpper(tenantContoso)} }, "already belongs to org contoso: a tenant routes to one org"},
		{"short admin token", func(c *Config) { c.IngestToken = "short" }, "THREATDESK_INGEST_TOKEN is too short (5 characters)"},
		{"chain shorter than window", func(c *Config) { c.Window, c.ChainWindow = 48*time.Hour, 24*time.Hour }, "hunting.chain_window 24h0m0s is shorter than hunting.correlation_window 48h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{Orgs: testOrgs()}
			tc.mod(&c)
			err := c.WithDefaults().Validate()
			require.ErrorContains(t, err, tc.want)
		})
	}
	c := Config{Orgs: []Org{{ID: "o", Tenants: []string{strings.ToUpper(tenantContoso)}}}}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, 24*time.Hour, c.Window)
	require.Equal(t, 7*24*time.Hour, c.ChainWindow)
	require.Equal(t, 30*time.Second, c.GroupWait)
	require.Equal(t, 5*time.Minute, c.GroupInterval)
	require.Equal(t, 4*time.Hour, c.RepeatInterval)
	require.Equal(t, "o", c.tenants[tenantContoso], "tenant ids are matched case-insensitively")
}

func ptr[T any](v T) *T { return &v }
