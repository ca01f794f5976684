package hunting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const samplesDir = "testdata"

func post(t testing.TB, h http.Handler, token string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, IntakePath, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestSamplesThroughHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		format   Format
		org      string
		items    int
		ids      []string
		device   string
		tactic   string
		entities map[EntityKind]int
	}{
		{"mde-alert-sample.json", FormatDefenderAlert, "contoso", 1, []string{"da637472900382838869_1364969609"},
			"temp123.middleeast.corp.microsoft.com", "TA0002", map[EntityKind]int{EntityDevice: 1, EntityUser: 2, EntityFile: 1, EntityProcess: 1}},
		{"mde-alerts-list-sample.json", FormatDefenderList, "contoso", 1, []string{"da637472900382838869_1364969609"},
			"temp123.middleeast.corp.microsoft.com", "TA0002", map[EntityKind]int{EntityDevice: 1, EntityUser: 2, EntityFile: 1, EntityProcess: 1}},
		{"mde-alerts-list-default-sample.json", FormatDefenderList, "contoso", 1, []string{"da637308392288907382_-880718168"},
			"temp123.middleeast.corp.microsoft.com", "", map[EntityKind]int{EntityDevice: 1, EntityUser: 1}},
		{"graph-alert-v2-sample.json", FormatGraphAlert, "fabrikam", 1, []string{"da637578995287051192_756343937"},
			"tempDns", "TA0005", map[EntityKind]int{EntityDevice: 1, EntityUser: 0, EntityFile: 1, EntityProcess: 1, EntityRegistry: 1}},
		{"graph-alerts-v2-list-sample.json", FormatGraphList, "fabrikam", 1, []string{"da637551227677560813_-961444813"},
			"tempDns", "TA0005", map[EntityKind]int{EntityDevice: 1, EntityUser: 0, EntityFile: 1, EntityProcess: 1, EntityRegistry: 1}},
	}
	// Every file in the directory has a case.
	files, err := os.ReadDir(samplesDir)
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".json") {
			names = append(names, f.Name())
		}
	}
	var covered []string
	for _, tc := range tests {
		covered = append(covered, tc.file)
	}
	require.ElementsMatch(t, names, covered, "every sample file must be tested")

	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			body, err := os.ReadFile(filepath.Join(samplesDir, tc.file))
			require.NoError(t, err)
			code, out := post(t, f.svc.Handler(), testToken, body)
			require.Equal(t, http.StatusOK, code, string(out))
			var res IngestResult
			require.NoError(t, json.Unmarshal(out, &res))
			require.Equal(t, tc.format, res.Format)
			require.Len(t, res.Items, tc.items)
			require.Equal(t, tc.items, res.Accepted)
			for i, id := range tc.ids {
				require.Equal(t, id, res.Items[i].ID)
				require.Equal(t, tc.org, res.Items[i].Org)
				a, err := f.svc.Alert(f.ctx, tc.org, id)
				require.NoError(t, err)
				require.Equal(t, tc.device, a.Host)
				if tc.tactic == "" {
					require.Nil(t, a.Tactic)
				} else {
					require.Equal(t, tc.tactic, a.Tactic.ID)
				}
				v, err := f.svc.Incident(f.ctx, tc.org, a.IncidentID)
				require.NoError(t, err)
				full, err := f.svc.FullScope(f.ctx, tc.org, a.IncidentID)
				require.NoError(t, err)
				for k, n := range tc.entities {
					require.Equal(t, n, full.group(k).Count, "entities of kind %s: %+v", k, full.group(k).Values)
					if k != EntityProcess && k != EntityRegistry {
						require.Equal(t, n, v.Scope.group(k).Count, "card count of %s", k)
					}
				}
				require.NotEmpty(t, v.Title)
				require.NotEmpty(t, v.Summary)
				require.NotEmpty(t, v.Actions)
				// Another org cannot see it.
				other := "fabrikam"
				if tc.org == "fabrikam" {
					other = "contoso"
				}
				_, err = f.svc.Alert(f.ctx, other, id)
				require.ErrorIs(t, err, ErrNotFound)
				_, err = f.svc.Incident(f.ctx, other, a.IncidentID)
				require.ErrorIs(t, err, ErrNotFound)
			}
			// Posting the same file again stores nothing new.
			code, out = post(t, f.svc.Handler(), testToken, body)
			require.Equal(t, http.StatusOK, code)
			require.NoError(t, json.Unmarshal(out, &res))
			require.Equal(t, tc.items, res.Unchanged, string(out))
			require.Equal(t, tc.items, f.count(t, `SELECT count(*) FROM hunting_alerts`))
		})
	}
}

func TestSampleNormalization(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body, err := os.ReadFile(filepath.Join(samplesDir, "graph-alert-v2-sample.json"))
	require.NoError(t, err)
	items, list, err := SplitPayload(body)
	require.NoError(t, err)
	require.False(t, list)
	a, src, err := normalize(items[0], f.svc.cfg.tenants)
	require.NoError(t, err)
	require.Equal(t, SourceGraph, src)
	require.Equal(t, "fabrikam", a.Org)
	require.Equal(t, SeverityLow, a.Severity)
	require.Equal(t, "antivirus", a.DetectionSource)
	require.Equal(t, []string{"T1564.001"}, a.Techniques)
	require.Equal(t, time.Date(2021, 4, 26, 7, 45, 50, 116000000, time.UTC), a.FirstActivity)
	require.Contains(t, a.Recommended, "\uFFFD\tReview", "odd characters are kept, not fatal")
	var file, sys Entity
	for _, e := range a.Entities {
		if e.Kind == EntityFile {
			file = e
		}
		if e.Kind == EntityUser {
			sys = e
		}
	}
	require.Equal(t, "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec", file.Value)
	require.Equal(t, "5f1e8acedc065031aad553b710838eb366cfee9a", file.Alt)
	require.False(t, sys.JoinKey, "NT AUTHORITY\\SYSTEM never correlates")

	body, err = os.ReadFile(filepath.Join(samplesDir, "mde-alert-sample.json"))
	require.NoError(t, err)
	a, src, err = normalize(body, f.svc.cfg.tenants)
	require.NoError(t, err)
	require.Equal(t, SourceDefender, src)
	require.Equal(t, "microsoftDefenderForEndpoint", a.DetectionSource)
	require.Equal(t, "1126093", a.ProviderIncident)
	for _, e := range a.Entities {
		if e.Kind == EntityFile && e.Display == `C:\Windows\SysWOW64\rundll32.exe` {
			require.False(t, e.JoinKey, "an OS binary never correlates")
		}
		if e.Kind == EntityFile && e.Display == `c:\temp\suspicious.dll` {
			require.True(t, e.JoinKey)
		}
	}
}

func TestNormalizeVocabularies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"WindowsDefenderAtp", "microsoftDefenderForEndpoint"},
		{"EDR", "microsoftDefenderForEndpoint"},
		{"microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint"},
		{"WindowsDefenderAv", "antivirus"},
		{"Antivirus", "antivirus"},
		{"ThreatExperts", DetectionExperts},
		{"microsoftThreatExperts", DetectionExperts},
		{"Microsoft Threat Experts", DetectionExperts},
		{"CustomerTI", "customTi"},
		{"Custom TI", "customTi"},
		{"OfficeATP", "microsoftDefenderForOffice365"},
		{"Microsoft Defender for Office 365", "microsoftDefenderForOffice365"},
		{"MTP", "microsoft365Defender"},
		{"AutomatedInvestigation", "automatedInvestigation"},
		{"Automated investigation", "automatedInvestigation"},
		{"SomethingNew", "SomethingNew"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, normalizeDetectionSource(tc.in))
		})
	}
	cats := map[string]string{
		"DefenseEvasion": "TA0005", "defenseEvasion": "TA0005", "Defense Evasion": "TA0005", "LateralMovement": "TA0008",
		"CommandAndControl": "TA0011", "CredentialAccess": "TA0006", "Ransomware": "TA0040", "InitialAccess": "TA0001",
		"DefenseImpairment": "TA0112", "TA0112": "TA0112", "Stealth": "TA0005", "Malware": "", "SuspiciousActivity": "",
		"Exfiltration": "TA0010", "Persistence": "TA0003", "PrivilegeEscalation": "TA0004", "Discovery": "TA0007",
		"Collection": "TA0009", "Impact": "TA0040", "Execution": "TA0002", "Reconnaissance": "TA0043", "TA9999": "",
	}
	for in, want := range cats {
		require.Equal(t, want, tacticForCategory(in), in)
	}
	times := map[string]time.Time{
		"2021-01-26T20:33:57.7220239Z":       time.Date(2021, 1, 26, 20, 33, 57, 722023900, time.UTC),
		"2021-01-26T20:33:59.2Z":             time.Date(2021, 1, 26, 20, 33, 59, 200000000, time.UTC),
		"2021-01-26T20:33:59Z":               time.Date(2021, 1, 26, 20, 33, 59, 0, time.UTC),
		"2021-01-26T20:33:59.123456789012Z":  time.Date(2021, 1, 26, 20, 33, 59, 123456789, time.UTC),
		"2021-01-26T20:33:59.5":              time.Date(2021, 1, 26, 20, 33, 59, 500000000, time.UTC),
		"2021-01-26T22:33:59.5+02:00":        time.Date(2021, 1, 26, 20, 33, 59, 500000000, time.UTC),
		"2021-01-26 20:33:59.1234567890123Z": time.Date(2021, 1, 26, 20, 33, 59, 123456789, time.UTC),
	}
	for in, want := range times {
		got, err := ParseTime(in)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: got %s", in, got)
	}
	_, err := ParseTime("yesterday")
	require.Error(t, err)
}

func TestIntakeErrors(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.MaxBodyBytes = 64 << 10; c.MaxItems = 5 })
	h := f.svc.Handler()
	good := gen{ID: "a1", Device: "pc1"}.raw()
	big := []byte(`{"value":[` + strings.Repeat(string(good)+",", 400) + string(good) + `]}`)
	many := []byte(`{"value":[` + strings.Repeat(string(good)+",", 5) + string(good) + `]}`)
	tests := []struct {
		name  string
		token string
		body  []byte
		code  int
		want  string
	}{
		{"no token", "", good, http.StatusUnauthorized, "bearer token"},
		{"wrong token", "nope", good, http.StatusUnauthorized, "bearer token"},
		{"wrong token same length", strings.Repeat("x", len(testToken)), good, http.StatusUnauthorized, "bearer token"},
		{"malformed", testToken, []byte("{\n  \"id\": \"x\",\n  \"severity\": Low\n}"), http.StatusBadRequest, `"line":3`},
		{"truncated", testToken, []byte(`{"value":[{"id":"x"`), http.StatusBadRequest, "malformed JSON"},
		{"too big", testToken, big, http.StatusRequestEntityTooLarge, "larger than 65536 bytes"},
		{"too many items", testToken, many, http.StatusRequestEntityTooLarge, "the limit is 5"},
		{"not an object", testToken, []byte(`[1,2]`), http.StatusUnprocessableEntity, "got a JSON array"},
		// No JSON at all is malformed, as bad JSON is (it was 422); an
		// empty list is a forwarder's empty page: nothing to do, no failure
		// (it was 422, with no error).
		{"empty body", testToken, []byte(` `), http.StatusBadRequest, "empty body"},
		{"empty list", testToken, []byte(`{"value":[]}`), http.StatusOK, `"format":"empty-list"`},
		{"value not a list", testToken, []byte(`{"value":5}`), http.StatusUnprocessableEntity, "expected one alert"},
		{"not an alert", testToken, []byte(`{"hello":"world"}`), http.StatusUnprocessableEntity, "neither a Defender alert"},
		{"unknown tenant", testToken, gen{ID: "t1", Tenant: "00000000-0000-0000-0000-000000000000"}.raw(), http.StatusUnprocessableEntity,
			`unknown tenant \"00000000-0000-0000-0000-000000000000\"`},
		{"all bad items", testToken, []byte(`{"value":[{"id":"x","aadTenantId":"` + tenantContoso + `","severity":"Catastrophic","alertCreationTime":"2021-01-01T00:00:00Z"},7]}`),
			http.StatusUnprocessableEntity, `unknown severity`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := post(t, h, tc.token, tc.body)
			require.Equal(t, tc.code, code, string(out))
			require.Contains(t, string(out), tc.want)
			require.True(t, json.Valid(out), "error bodies are JSON")
		})
	}
	t.Run("body length", func(t *testing.T) {
		t.Parallel()
		// Without a declared length (chunked) the body is read up to the
		// limit; with one, the buffer is sized from it: a list within the
		// limit is read whole either way.
		small := []byte(`{"value":[` + string(good) + `,` + string(gen{ID: "a2", Device: "pc1"}.raw()) + `]}`)
		for _, tc := range []struct {
			name   string
			body   []byte
			length int64
			code   int
		}{
			{"chunked too big", big, -1, http.StatusRequestEntityTooLarge},
			{"chunked", small, -1, http.StatusOK},
			{"declared", small, int64(len(small)), http.StatusOK},
		} {
			req := httptest.NewRequest(http.MethodPost, IntakePath, bytes.NewReader(tc.body))
			req.ContentLength = tc.length
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.code, rec.Code, "%s: %s", tc.name, rec.Body)
			if tc.code == http.StatusOK {
				var res IngestResult
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
				require.Len(t, res.Items, 2, tc.name)
				require.Zero(t, res.Rejected, "%s: %+v", tc.name, res.Items)
			}
		}
	})
	t.Run("nothing stored", func(t *testing.T) {
		// The error cases above store nothing; run after them would race, so
		// check the unknown tenant case on its own fixture.
		g := setup(t)
		code, _ := post(t, g.svc.Handler(), testToken, gen{ID: "t1", Tenant: "00000000-0000-0000-0000-000000000000"}.raw())
		require.Equal(t, http.StatusUnprocessableEntity, code)
		require.Zero(t, g.count(t, `SELECT count(*) FROM hunting_alerts`))
		require.Zero(t, g.count(t, `SELECT count(*) FROM hunting_incidents`))
	})
}

func TestRawControlCharactersAreRepaired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	raw := strings.Replace(string(gen{ID: "tab1", Device: "pc1", Title: "x"}.raw()), `"title":"x"`, "\"title\":\"a\tb\x01c\"", 1)
	code, out := post(t, f.svc.Handler(), testToken, []byte(raw))
	require.Equal(t, http.StatusOK, code, string(out))
	a, err := f.svc.Alert(f.ctx, "contoso", "tab1")
	require.NoError(t, err)
	require.Equal(t, "a\tb\x01c", a.Title)
}

func TestListWithOneBadItem(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var items []string
	for i := range 500 {
		g := gen{ID: "ok-" + strconv.Itoa(i), Device: "pc-" + strconv.Itoa(i%50), Severity: "Low"}
		items = append(items, string(g.raw()))
	}
	items[250] = `{"id":"bad-250","aadTenantId":"` + tenantContoso + `","severity":"Low","alertCreationTime":"not a time"}`
	items[400] = string(gen{ID: "bad-400", Tenant: "11111111-2222-3333-4444-555555555555"}.raw())
	items[10] = `{"id": 12, "aadTenantId": "` + tenantContoso + `"}`
	body := []byte(`{"@odata.context":"x","value":[` + strings.Join(items, ",") + `]}`)
	code, out := post(t, f.svc.Handler(), testToken, body)
	require.Equal(t, http.StatusOK, code, string(out))
	var res IngestResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, FormatDefenderList, res.Format)
	require.Equal(t, 497, res.Accepted)
	require.Equal(t, 3, res.Rejected)
	require.Len(t, res.Items, 500)
	require.Equal(t, StatusRejected, res.Items[250].Status)
	require.Contains(t, res.Items[250].Reason, "created time")
	require.Equal(t, "bad-250", res.Items[250].ID)
	require.Equal(t, StatusRejected, res.Items[400].Status)
	require.Equal(t, "11111111-2222-3333-4444-555555555555", res.Items[400].Tenant)
	require.Contains(t, res.Items[400].Reason, `unknown tenant "11111111-2222-3333-4444-555555555555"`)
	require.Equal(t, StatusRejected, res.Items[10].Status)
	require.Contains(t, res.Items[10].Reason, `field "id"`)
	require.Equal(t, 10, res.Items[10].Index)
	require.Equal(t, 497, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	require.Equal(t, 50, f.count(t, `SELECT count(*) FROM hunting_incidents WHERE status = 'open'`), "one incident per device")
}

func TestIdempotentReingestAndUpdate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	g := gen{ID: "r1", Device: "pc1", Severity: "Low", Category: "Execution", Files: []string{sha("mal")}, At: t0.Add(-time.Hour)}
	res := f.ingest(t, g)
	require.Equal(t, 1, res.Accepted)
	inc := res.Items[0].IncidentID
	for range 3 {
		res = f.ingest(t, g)
		require.Equal(t, 1, res.Unchanged)
		require.Equal(t, inc, res.Items[0].IncidentID)
	}
	// A newer version (status, severity, new evidence) updates in place.
	g2 := g
	g2.Status, g2.Severity, g2.IPs = "InProgress", "High", []string{"203.0.113.7"}
	g2.At = g.At.Add(time.Second)
	res = f.ingest(t, g2)
	require.Equal(t, 1, res.Updated, "%+v", res.Items)
	require.Equal(t, inc, res.Items[0].IncidentID)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))
	a, err := f.svc.Alert(f.ctx, "contoso", "r1")
	require.NoError(t, err)
	require.Equal(t, SeverityHigh, a.Severity)
	require.Equal(t, "inprogress", a.Status)
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, 1, v.Scope.IPs.Count, "new evidence added")
	require.Equal(t, 1, v.Scope.Files.Count, "old evidence kept")
	require.Equal(t, 1, v.AlertCount)
	// An older version is ignored.
	res = f.ingest(t, g)
	require.Equal(t, 1, res.Unchanged)
	require.Contains(t, res.Items[0].Reason, "older")
	// The same id twice in one request: the newest wins, one row.
	g3 := g2
	g3.At = g2.At.Add(time.Second)
	g3.Status = "Resolved"
	res = f.ingest(t, g3, g2)
	require.Equal(t, StatusUpdated, res.Items[0].Status)
	require.Equal(t, StatusUnchanged, res.Items[1].Status)
	a, err = f.svc.Alert(f.ctx, "contoso", "r1")
	require.NoError(t, err)
	require.Equal(t, "resolved", a.Status)
	// The same version twice (a forwarder that sent a copy): the copy is
	// unchanged, not "superseded" by itself. (It was counted updated.)
	g4 := gen{ID: "r2", Device: "ws-copy", At: g3.At}
	res = f.ingest(t, g4, g4)
	require.Equal(t, []ItemStatus{StatusUnchanged, StatusAccepted}, []ItemStatus{res.Items[0].Status, res.Items[1].Status})
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, 0, res.Updated)
	require.Contains(t, res.Items[0].Reason, "the same version of this alert is later in the request")
}

func TestTenantRouting(t *testing.T) {
	t.Parallel()
	f := setup(t)
	res := f.ingest(t,
		gen{ID: "c1", Tenant: tenantContoso, Device: "shared-name", Files: []string{sha("x")}},
		gen{ID: "f1", Tenant: strings.ToUpper(tenantFabrikam), Device: "shared-name", Files: []string{sha("x")}},
		gen{ID: "u1", Tenant: "99999999-9999-9999-9999-999999999999"},
	)
	require.Equal(t, "contoso", res.Items[0].Org)
	require.Equal(t, "fabrikam", res.Items[1].Org)
	require.Equal(t, StatusRejected, res.Items[2].Status)
	require.NotEqual(t, res.Items[0].IncidentID, res.Items[1].IncidentID, "orgs never share incidents")
	_, err := f.svc.Alert(f.ctx, "contoso", "f1")
	require.ErrorIs(t, err, ErrNotFound)
	d, err := f.svc.Device(f.ctx, "fabrikam", "SHARED-NAME")
	require.NoError(t, err)
	require.Len(t, d.Incidents, 1)
	require.Equal(t, res.Items[1].IncidentID, d.Incidents[0].ID)
	file, err := f.svc.File(f.ctx, "contoso", sha("x")[:40])
	require.NoError(t, err, "lookup by SHA-1")
	require.Equal(t, sha("x"), file.Value)
	require.Equal(t, 1, file.Devices)
	require.Equal(t, res.Items[0].IncidentID, file.Incidents[0].ID)
	_, err = f.svc.File(f.ctx, "contoso", sha("nope"))
	require.ErrorIs(t, err, ErrNotFound)
	_, err = f.svc.IncidentSummary(f.ctx, "fabrikam", res.Items[0].IncidentID)
	require.ErrorIs(t, err, ErrNotFound)
	ref, err := f.svc.IncidentSummary(f.ctx, "contoso", res.Items[0].IncidentID)
	require.NoError(t, err)
	require.NotEmpty(t, ref.Title)
}

func TestHostileInput(t *testing.T) {
	t.Parallel()
	f := setup(t)
	long := strings.Repeat("é", 100000)
	var ev []string
	for i := range 1000 {
		ev = append(ev, `{"entityType":"Ip","ipAddress":"10.0.`+strconv.Itoa(i/250)+`.`+strconv.Itoa(i%250)+`"}`)
	}
	body := `{"id":"h1\u0000x","aadTenantId":"` + tenantContoso + `","severity":"High","title":"` + long + `","alertCreationTime":"2026-11-20T09:00:00Z",` +
		`"machineId":"` + strings.Repeat("a", 5000) + `","evidence":[` + strings.Join(ev, ",") + `],"description":"\ud800 lone surrogate"}`
	code, out := post(t, f.svc.Handler(), testToken, []byte(body))
	require.Equal(t, http.StatusOK, code, string(out))
	a, err := f.svc.Alert(f.ctx, "contoso", "h1x")
	require.NoError(t, err)
	require.LessOrEqual(t, len(a.Title), maxTitleLen)
	v, err := f.svc.Incident(f.ctx, "contoso", a.IncidentID)
	require.NoError(t, err)
	require.LessOrEqual(t, v.Scope.IPs.Count, maxEntities)
}

func TestIngestParsedAlerts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	out, err := f.svc.IngestAlerts(f.ctx, []*Alert{
		{Source: SourceGraph, ID: "p1", Tenant: strings.ToUpper(tenantFabrikam), Severity: SeverityHigh, FirstActivity: t0,
			Entities: []Entity{{Kind: EntityDevice, Value: "d1", Display: "host1", JoinKey: true}}},
		{Source: SourceGraph, ID: "p2", Tenant: "nope", FirstActivity: t0},
		{Source: SourceGraph, ID: "", Tenant: tenantFabrikam, FirstActivity: t0},
	})
	require.NoError(t, err)
	require.Equal(t, StatusAccepted, out[0].Status)
	require.Equal(t, "fabrikam", out[0].Org)
	require.Equal(t, StatusRejected, out[1].Status)
	require.Contains(t, out[1].Reason, `unknown tenant "nope"`)
	require.Equal(t, StatusRejected, out[2].Status)
	d, err := f.svc.Device(f.ctx, "fabrikam", "host1")
	require.NoError(t, err)
	require.Equal(t, "d1", d.Value)
}

func TestIntakeMethodAndMixedList(t *testing.T) {
	t.Parallel()
	f := setup(t)
	req := httptest.NewRequest(http.MethodGet, IntakePath, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	graph, err := os.ReadFile(filepath.Join(samplesDir, "graph-alert-v2-sample.json"))
	require.NoError(t, err)
	body := []byte(`{"value":[` + string(graph) + `,` + string(gen{ID: "m1", Device: "pc"}.raw()) + `]}`)
	code, out := post(t, f.svc.Handler(), testToken, body)
	require.Equal(t, http.StatusOK, code, string(out))
	var res IngestResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, FormatMixedList, res.Format)
	require.Equal(t, SourceGraph, res.Items[0].Source)
	require.Equal(t, SourceDefender, res.Items[1].Source)
	require.Equal(t, 2, res.Accepted)
}

// TestNoTenantsRejectsEveryAlert: a deployment with no org configured still
// starts; intake refuses each alert, naming its tenant, and stores nothing.
func TestNoTenantsRejectsEveryAlert(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.Orgs = nil })
	out, err := f.svc.IngestAlerts(f.ctx, []*Alert{
		{Source: SourceGraph, ID: "n1", Tenant: tenantContoso, Severity: SeverityHigh, FirstActivity: t0},
	})
	require.NoError(t, err)
	require.Equal(t, StatusRejected, out[0].Status)
	require.Contains(t, out[0].Reason, "unknown tenant")
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM hunting_alerts").Scan(&n))
	require.Zero(t, n)
}

// TestOSBinaryAndNormKey pins the allocation-free osBinary and normKey to
// what they meant as ToLower and ReplaceAll: case and slashes do not
// matter, a prefix must end at a separator, non-ASCII never matches.
func TestOSBinaryAndNormKey(t *testing.T) {
	t.Parallel()
	for dir, want := range map[string]bool{
		`C:\Windows\System32`:                 true,
		`c:/windows/system32/drivers`:         true,
		`C:\WINDOWS\SysWOW64\wbem`:            true,
		`%SystemRoot%\System32`:               true,
		`c:\windows\winsxs\amd64_x`:           true,
		`C:\Windows\System32x`:                false,
		`C:\Windows`:                          false,
		`D:\Windows\System32`:                 false,
		`C:\Wİndows\System32`:                 false,
		`C:\Users\Public`:                     false,
		``:                                    false,
		`C:\Windows\System32\..\..\Temp\evil`: true, // as before: a prefix test
	} {
		require.Equal(t, want, osBinary(dir), dir)
	}
	for in, want := range map[string]string{
		"user":                                   "user",
		"User":                                   "user",
		"#microsoft.graph.security.userEvidence": "microsoftgraphsecurityuserevidence",
		"Registry-Key 2":                         "registrykey2",
		"ÄbC":                                    "bc",
		"":                                       "",
	} {
		require.Equal(t, want, normKey(in), in)
	}
}

// TestOutOfRangeTimesFailOnlyTheirItem: a time PostgreSQL cannot store
// (year 0) made the whole request fail with a 500 (and, on a Graph pull,
// stalled the tenant's pull for ever); a time far ahead kept an incident's
// entities in reach of correlation for ever. Each is now that item's
// rejection, and the rest of the list is stored.
func TestOutOfRangeTimesFailOnlyTheirItem(t *testing.T) {
	t.Parallel()
	f := setup(t)
	item := func(id, first string) string {
		return `{"id":"` + id + `","aadTenantId":"` + tenantContoso + `","severity":"High","category":"Execution","title":"t",` +
			`"alertCreationTime":"2026-11-20T09:00:00Z","firstEventTime":"` + first + `","machineId":"m-` + id + `"}`
	}
	body := `{"value":[` + item("good", "2026-11-20T08:59:00Z") + `,` + item("year0", "0000-06-01T00:00:00Z") + `,` +
		item("ahead", "9999-01-01T00:00:00Z") + `]}`
	code, out := post(t, f.svc.Handler(), testToken, []byte(body))
	require.Equal(t, http.StatusOK, code, string(out))
	var res IngestResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, StatusAccepted, res.Items[0].Status, string(out))
	require.Equal(t, StatusRejected, res.Items[1].Status, string(out))
	require.Contains(t, res.Items[1].Reason, "years 1 to 9999")
	require.Equal(t, StatusRejected, res.Items[2].Status, string(out))
	require.Contains(t, res.Items[2].Reason, "more than a day ahead")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`))
}

// TestUpdatesKeepEvidenceBounded: an update's evidence joins what the
// alert had, newest first, up to maxEvidence entries. It grew by each
// update's new entities without bound (a sender updating one alert 1,000
// times with 60 new link-local addresses each made a row of 60,000).
func TestUpdatesKeepEvidenceBounded(t *testing.T) {
	t.Parallel()
	require.Contains(t, alertsUpsertSQL, "LIMIT "+strconv.Itoa(maxEvidence)+")", "the statement's cap is maxEvidence")
	f := setup(t)
	ips := func(round int) []string { // not join keys: they stay in the evidence column
		var out []string
		for i := range 60 {
			out = append(out, fmt.Sprintf("169.254.%d.%d", round, i+1))
		}
		return out
	}
	for round := range 6 {
		res := f.ingest(t, gen{ID: "da5637-many", Device: "ws-many", At: t0.Add(time.Duration(round-60) * time.Minute), IPs: ips(round)})
		require.Equal(t, 1, res.Accepted+res.Updated, "round %d: %+v", round, res.Items)
	}
	var ev []map[string]any
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT evidence FROM hunting_alerts WHERE id = 'da5637-many'`).Scan(&ev))
	require.Len(t, ev, maxEvidence)
	var got []string
	for _, e := range ev {
		got = append(got, fmt.Sprint(e["v"]))
	}
	for round := 5; round >= 2; round-- {
		require.Subset(t, got, ips(round), "the newest updates' evidence is kept (round %d)", round)
	}
	require.Subset(t, got, ips(1)[:maxEvidence-4*60], "then as much of the one before as fits")
}

// TestForgedFutureUpdateDoesNotPinTheAlert: an update stamped 23 hours
// ahead (allowed: less than a day) with a forged status counts as sent now,
// so the real update after it is taken. It pinned the alert: every real
// version after it was "older than the stored version", and a forged
// Resolved closed its incident for good.
func TestForgedFutureUpdateDoesNotPinTheAlert(t *testing.T) {
	t.Parallel()
	f := setup(t)
	g := gen{ID: "pin1", Device: "ws-pin", At: t0.Add(-time.Hour), Status: "New"}
	f.ingest(t, g)
	forged := g
	forged.Status, forged.Class = "Resolved", "FalsePositive"
	raw := withFields(t, forged.raw(), map[string]any{"lastUpdateTime": t0.Add(23 * time.Hour).Format(time.RFC3339Nano)})
	res, err := f.svc.Ingest(f.ctx, []RawAlert{raw})
	require.NoError(t, err)
	require.Equal(t, StatusUpdated, res.Items[0].Status)

	f.clock.Advance(5 * time.Minute)
	real := g
	real.Status, real.Last = "InProgress", f.clock.Now().Add(-3*time.Minute) // lastUpdate = Last + 2 min: now - 1 min
	res = f.ingest(t, real)
	require.Equal(t, StatusUpdated, res.Items[0].Status, "the real update is taken: %s", res.Items[0].Reason)
	a, err := f.svc.Alert(f.ctx, "contoso", "pin1")
	require.NoError(t, err)
	require.Equal(t, "inprogress", a.Status)

	// A sender's clock a little ahead keeps its own order, and the same
	// alert sent again is unchanged.
	g2 := gen{ID: "skew1", Device: "ws-skew", At: f.clock.Now().Add(-time.Hour), Status: "New"}
	f.ingest(t, g2)
	v2, v1 := g2, g2
	v2.Status, v2.Last = "Resolved", f.clock.Now().Add(2*time.Minute) // lastUpdate now + 4 min
	v1.Status, v1.Last = "InProgress", f.clock.Now().Add(time.Minute) // now + 3 min, sent after
	require.Equal(t, StatusUpdated, f.ingest(t, v2).Items[0].Status)
	require.Equal(t, StatusUnchanged, f.ingest(t, v1).Items[0].Status, "older, though both are ahead")
	require.Equal(t, StatusUnchanged, f.ingest(t, v2).Items[0].Status, "the same alert again")
	a, err = f.svc.Alert(f.ctx, "contoso", "skew1")
	require.NoError(t, err)
	require.Equal(t, "resolved", a.Status)
}
