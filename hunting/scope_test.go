package hunting

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	contosoToken  = "contoso-own-token-0123456789"
	fabrikamToken = "fabrikam-own-token-0123456789"
)

func orgTokens(c *Config) {
	c.OrgIngestTokens = map[string]string{"contoso": contosoToken, "fabrikam": fabrikamToken}
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

func TestOrgTokenConfig(t *testing.T) {
	t.Parallel()
	base := func() Config {
		return Config{Tenants: map[string]string{tenantContoso: "contoso", tenantFabrikam: "fabrikam"}, IngestToken: testToken}
	}
	for _, tc := range []struct {
		name   string
		tokens map[string]string
		want   string
	}{
		{"same as the global token", map[string]string{"contoso": testToken}, `org "contoso" is empty or the same as the admin-wide ingest token`},
		{"shared by two orgs", map[string]string{"contoso": contosoToken, "fabrikam": contosoToken}, "the same as org contoso's ingest token"},
		{"org without tenants", map[string]string{"northwind": "northwind-token-0123456789"}, `org "northwind" has an ingest token but no tenants`},
		{"empty", map[string]string{"contoso": ""}, "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			c.OrgIngestTokens = tc.tokens
			d := c.withDefaults()
			require.ErrorContains(t, d.validate(), tc.want)
		})
	}
	c := base()
	orgTokens(&c)
	d := c.withDefaults()
	require.NoError(t, d.validate())
}
