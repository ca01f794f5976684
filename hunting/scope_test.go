package hunting

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	contosoToken  = "contoso-own-token-0123456789"
	fabrikamToken = "fabrikam-own-token-0123456789"
)

func orgTokens(c *Config) {
	c.Orgs[0].IngestToken, c.Orgs[1].IngestToken = contosoToken, fabrikamToken
}

func batch(t *testing.T, gs ...gen) []byte {
	t.Helper()
	raws := make([]json.RawMessage, len(gs))
	for i, g := range gs {
		raws[i] = g.raw()
	}
	b, err := json.Marshal(map[string]any{"value": raws})
	require.NoError(t, err)
	return b
}

// TestOrgTokenOnlyAcceptsItsTenants: an org's own ingest token posts that
// org's alerts; an alert of another org's tenant (or of an unknown tenant)
// refuses the whole request with 403, storing nothing; the admin-wide token
// still posts for every org.
func TestOrgTokenOnlyAcceptsItsTenants(t *testing.T) {
	t.Parallel()
	f := setup(t, orgTokens)
	h := f.svc.Handler()

	code, out := post(t, h, contosoToken, batch(t, gen{ID: "c1", Tenant: tenantContoso, Device: "ws1"}))
	require.Equal(t, http.StatusOK, code, string(out))
	var res IngestResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, "contoso", res.Items[0].Org)

	// Contoso's forwarder posts a Fabrikam alert, alone or hidden in a batch.
	for name, body := range map[string][]byte{
		"alone":    batch(t, gen{ID: "f1", Tenant: tenantFabrikam, Device: "fab1", Title: "Targeted attack notification"}),
		"in batch": batch(t, gen{ID: "c2", Tenant: tenantContoso, Device: "ws2"}, gen{ID: "f2", Tenant: tenantFabrikam, Device: "fab2"}),
		"unknown":  batch(t, gen{ID: "x1", Tenant: "00000000-1111-2222-3333-444444444444", Device: "x"}),
	} {
		code, out := post(t, h, contosoToken, body)
		require.Equal(t, http.StatusForbidden, code, "%s: %s", name, out)
		var eb ErrorBody
		require.NoError(t, json.Unmarshal(out, &eb))
		require.Contains(t, eb.Error, "this ingest token belongs to org contoso and only accepts alerts of its tenants", name)
		require.Contains(t, eb.Error, "nothing was stored", name)
		require.NotContains(t, eb.Error, "fabrikam", "%s: never names another org", name)
	}
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'contoso'`), "c2 was refused with its batch")
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM outbox WHERE stream LIKE '%fabrikam%'`))

	// Fabrikam's own token, and the admin-wide one, post Fabrikam's alerts.
	code, out = post(t, h, fabrikamToken, batch(t, gen{ID: "f3", Tenant: tenantFabrikam, Device: "fab3"}))
	require.Equal(t, http.StatusOK, code, string(out))
	code, out = post(t, h, testToken, batch(t, gen{ID: "c4", Tenant: tenantContoso, Device: "ws4"}, gen{ID: "f4", Tenant: tenantFabrikam, Device: "fab4"}))
	require.Equal(t, http.StatusOK, code, string(out))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`))

	code, _ = post(t, h, "not-a-token-of-anyone", batch(t, gen{ID: "c5", Tenant: tenantContoso}))
	require.Equal(t, http.StatusUnauthorized, code)
}

// TestOrgTokenCannotTellAnotherOrgsTenant: a customer holding its own
// ingest token probes whether a tenant id (public, found from a company's
// domain) is another customer's, with an item that is also invalid in
// some other way. Another org's tenant and an unknown one get the same
// 403, alone or beside a valid alert of its own, and nothing is stored;
// the same faults on its own tenant are rejected one by one.
func TestOrgTokenCannotTellAnotherOrgsTenant(t *testing.T) {
	t.Parallel()
	f := setup(t, orgTokens)
	h := f.svc.Handler()
	const unknown = "00000000-1111-2222-3333-444444444444"
	probes := map[string]func(tenant string) string{
		"bad severity": func(tenant string) string {
			return `{"id":"p1","aadTenantId":"` + tenant + `","alertCreationTime":"2026-01-01T00:00:00Z","severity":"bogus"}`
		},
		"no time": func(tenant string) string {
			return `{"id":"p2","aadTenantId":"` + tenant + `","severity":"High","title":"x","alertCreationTime":""}`
		},
		"bad time": func(tenant string) string {
			return `{"id":"p3","aadTenantId":"` + tenant + `","alertCreationTime":"yesterday","severity":"High"}`
		},
	}
	own := string(gen{ID: "c1", Tenant: tenantContoso, Device: "ws1"}.raw())
	for name, probe := range probes {
		for _, withOwn := range []bool{false, true} {
			answer := func(tenant string) (int, string) {
				items := probe(tenant)
				if withOwn {
					items = own + "," + items
				}
				code, out := post(t, h, contosoToken, []byte(`{"value":[`+items+`]}`))
				return code, strings.ReplaceAll(string(out), tenant, "<tenant>")
			}
			codeOther, outOther := answer(tenantFabrikam)
			codeUnknown, outUnknown := answer(unknown)
			require.Equal(t, http.StatusForbidden, codeOther, "%s (with own alert %v): %s", name, withOwn, outOther)
			require.Equal(t, codeUnknown, codeOther, "%s (with own alert %v)", name, withOwn)
			require.Equal(t, outUnknown, outOther, "%s (with own alert %v): the answer tells another org's tenant from an unknown one", name, withOwn)

			// Its own tenant with the same fault: that item alone is rejected.
			code, out := answer(tenantContoso)
			wantCode := http.StatusUnprocessableEntity
			if withOwn {
				wantCode = http.StatusOK
			}
			require.Equal(t, wantCode, code, "%s (with own alert %v): %s", name, withOwn, out)
		}
	}
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM hunting_alerts WHERE org = 'fabrikam'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM hunting_alerts`), "only c1, posted beside its own tenant's faulty items")
}

func TestOrgTokenConfig(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{Orgs: testOrgs(), IngestToken: testToken} }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"same as the global token", func(c *Config) { c.Orgs[0].IngestToken = testToken },
			"orgs[0] (contoso): the token in IngestToken is the same as THREATDESK_INGEST_TOKEN"},
		{"shared by two orgs", func(c *Config) {
			c.Orgs[0].IngestToken, c.Orgs[1].IngestTokenEnv, c.Orgs[1].IngestToken = contosoToken, "FABRIKAM_TOKEN", contosoToken
		}, "orgs[1] (fabrikam): the token in FABRIKAM_TOKEN is the same as the ingest token of org contoso"},
		{"org without tenants", func(c *Config) {
			c.Orgs = append(c.Orgs, Org{ID: "northwind", IngestToken: "northwind-token-0123456789"})
		}, "orgs[2] (northwind).ingest_token_env is set but the org lists no tenants"},
		{"empty", func(c *Config) { c.Orgs[0].IngestTokenEnv = "CONTOSO_TOKEN" },
			"orgs[0] (contoso): environment variable CONTOSO_TOKEN (ingest_token_env) is not set or empty"},
		{"short", func(c *Config) { c.Orgs[0].IngestToken = "short" }, "the token in IngestToken is too short (5 characters)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.mod(&c)
			err := c.WithDefaults().Validate()
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), contosoToken, "tokens never appear in errors")
		})
	}
	c := base()
	orgTokens(&c)
	require.NoError(t, c.WithDefaults().Validate())
}
