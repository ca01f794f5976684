package hunting

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// seen is an alert for the insight tests: evidence of any kind, a device,
// a threat family.
type seen struct {
	id, tenant, device, family string
	at                         time.Time
	files, ips, urls           []string
}

func (a seen) raw() RawAlert {
	ev := []map[string]any{}
	for _, f := range a.files {
		ev = append(ev, map[string]any{"entityType": "File", "sha256": f, "sha1": f[:40], "fileName": "drop.exe", "filePath": `C:\Users\Public`})
	}
	for _, ip := range a.ips {
		ev = append(ev, map[string]any{"entityType": "Ip", "ipAddress": ip})
	}
	for _, u := range a.urls {
		ev = append(ev, map[string]any{"entityType": "Url", "url": u})
	}
	at := a.at
	if at.IsZero() {
		at = t0.Add(-10 * time.Minute)
	}
	m := map[string]any{
		"id": a.id, "severity": "High", "status": "New", "detectionSource": "WindowsDefenderAtp", "category": "CommandAndControl",
		"title": "Suspicious connection " + a.id, "description": "test", "threatFamilyName": a.family,
		"alertCreationTime": at.Add(time.Minute).Format(time.RFC3339Nano), "firstEventTime": at.Format(time.RFC3339Nano),
		"lastEventTime": at.Format(time.RFC3339Nano), "lastUpdateTime": at.Add(2 * time.Minute).Format(time.RFC3339Nano),
		"machineId": fmt.Sprintf("%040x", hashString(a.device)), "computerDnsName": a.device, "aadTenantId": a.tenant, "evidence": ev,
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func (f *fixture) see(t *testing.T, as ...seen) []int64 {
	t.Helper()
	raws := make([]RawAlert, len(as))
	for i, a := range as {
		if a.tenant == "" {
			a.tenant = tenantContoso
		}
		raws[i] = a.raw()
	}
	res, err := f.svc.Ingest(f.ctx, raws)
	require.NoError(t, err)
	out := make([]int64, len(as))
	for i, it := range res.Items {
		require.Equal(t, StatusAccepted, it.Status, "%+v", it)
		out[i] = it.IncidentID
	}
	return out
}

func orgsOf(s Sightings) []string {
	out := []string{}
	for _, o := range s.Orgs {
		out = append(out, o.Org)
	}
	return out
}

// TestSightingsAcrossOrgs: a rare hash, an address and a URL in two orgs'
// alerts are each a sighting of the other org, found from either side and
// by any of a file's hashes, the URL's domain or the title's family; an
// org never sees itself, and an old sighting is outside the window.
func TestSightingsAcrossOrgs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	hash := sha("stager")
	c := f.see(t, seen{id: "c1", device: "ws-1", files: []string{hash}, ips: []string{"198.51.100.7"},
		urls: []string{"https://CDN.evil.example/a/p.bin"}, family: "Qakbot"})
	fb := f.see(t,
		seen{id: "f1", tenant: tenantFabrikam, device: "fab-1", files: []string{hash}, family: "QAKBOT"},
		seen{id: "f2", tenant: tenantFabrikam, device: "fab-2", files: []string{hash}, at: t0.Add(-5 * time.Minute)},
		seen{id: "f3", tenant: tenantFabrikam, device: "fab-3", ips: []string{"198.51.100.7"}, at: t0.Add(-40 * 24 * time.Hour)},
		seen{id: "f4", tenant: tenantFabrikam, device: "fab-4", urls: []string{"http://cdn.evil.example:8080/other"}})
	since := t0.Add(-30 * 24 * time.Hour)

	keys, err := f.svc.SubjectKeys(f.ctx, "contoso", "incident", fmt.Sprint(c[0]), since)
	require.NoError(t, err)
	require.Subset(t, keys, []Key{{KeyFile, hash}, {KeyIP, "198.51.100.7"}, {KeyURL, "https://cdn.evil.example/a/p.bin"},
		{KeyDomain, "cdn.evil.example"}, {KeyFamily, "qakbot"}})
	other, err := f.svc.SubjectKeys(f.ctx, "fabrikam", "incident", fmt.Sprint(c[0]), since)
	require.NoError(t, err)
	require.Empty(t, other, "another org's incident says nothing of itself")

	got, err := f.svc.Sightings(f.ctx, keys, since, "contoso")
	require.NoError(t, err)
	require.Equal(t, []string{"fabrikam"}, orgsOf(got), "Contoso never sees itself")
	fab := got.Orgs[0]
	require.ElementsMatch(t, []Key{{KeyFile, hash}, {KeyDomain, "cdn.evil.example"}, {KeyFamily, "qakbot"}}, fab.Keys,
		"the address was seen at Fabrikam 40 days ago: outside the window")
	require.Equal(t, 3, fab.Devices, "fab-1 and fab-2 (the hash) and fab-4 (the domain)")
	require.Len(t, fab.Incidents, fab.IncidentCount)
	for _, r := range fab.Incidents {
		require.NotEqual(t, fb[2], r.ID, "the old incident is not named")
	}

	// From Fabrikam's side, by the SHA-1 alone.
	got, err = f.svc.Sightings(f.ctx, []Key{{KeyFile, hash[:40]}}, since, "fabrikam")
	require.NoError(t, err)
	require.Equal(t, []string{"contoso"}, orgsOf(got))
	require.Equal(t, []int64{c[0]}, []int64{got.Orgs[0].Incidents[0].ID})
	require.Equal(t, 1, got.Orgs[0].Devices)

	// A wider window finds the old address.
	got, err = f.svc.Sightings(f.ctx, []Key{{KeyIP, "198.51.100.7"}}, t0.Add(-60*24*time.Hour), "contoso")
	require.NoError(t, err)
	require.Equal(t, []string{"fabrikam"}, orgsOf(got))
	require.Equal(t, fb[2], got.Orgs[0].Incidents[0].ID)
}

// TestCommonEntitiesAreNeverSightings: a file seen on the guard's number of
// devices in one org (a common installer) is no sighting anywhere, though
// another org has it too; a rare one next to it still is.
func TestCommonEntitiesAreNeverSightings(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.CommonEntityDevices = 3 })
	common, rare := sha("installer"), sha("implant")
	var batch []seen
	for i := range 4 {
		batch = append(batch, seen{id: fmt.Sprintf("c%d", i), device: fmt.Sprintf("ws-%d", i), files: []string{common}})
	}
	f.see(t, batch...)
	f.see(t, seen{id: "f1", tenant: tenantFabrikam, device: "fab-1", files: []string{common, rare}})
	c := f.see(t, seen{id: "c9", device: "ws-9", files: []string{common, rare}})
	since := t0.Add(-30 * 24 * time.Hour)

	got, err := f.svc.Sightings(f.ctx, []Key{{KeyFile, common}}, since, "fabrikam")
	require.NoError(t, err)
	require.Empty(t, got.Orgs, "common at Contoso: not a sighting for Fabrikam")
	require.Empty(t, got.Common, "common in one other org alone: only that org's sightings are left out")
	got, err = f.svc.Sightings(f.ctx, []Key{{KeyFile, common}}, since, "contoso")
	require.NoError(t, err)
	require.Empty(t, got.Orgs, "nor for Contoso, where it is common")
	require.Equal(t, []Key{{KeyFile, common}}, got.Common)

	keys, err := f.svc.SubjectKeys(f.ctx, "contoso", "incident", fmt.Sprint(c[0]), since)
	require.NoError(t, err)
	got, err = f.svc.Sightings(f.ctx, keys, since, "contoso")
	require.NoError(t, err)
	require.Equal(t, []string{"fabrikam"}, orgsOf(got))
	require.Equal(t, []Key{{KeyFile, rare}}, got.Orgs[0].Keys, "only the rare file")
	require.Contains(t, got.Common, Key{KeyFile, common})
}

// TestCommonByIncidentsIsNeverASighting: an address held by the guard's
// number of incidents of one org is common, even once its prevalence rows
// are pruned.
func TestCommonByIncidentsIsNeverASighting(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.CommonEntityDevices = 3 })
	for i := range 3 {
		// Days apart: separate incidents.
		f.see(t, seen{id: fmt.Sprintf("c%d", i), device: "ws-1", ips: []string{"203.0.113.9"}, at: t0.Add(-time.Duration(3*i+1) * 24 * time.Hour)})
	}
	f.see(t, seen{id: "f1", tenant: tenantFabrikam, device: "fab-1", ips: []string{"203.0.113.9"}})
	_, err := f.pool.Exec(f.ctx, `DELETE FROM hunting_entity_devices`)
	require.NoError(t, err)
	require.Equal(t, 3, f.count(t, `SELECT count(DISTINCT incident_id) FROM hunting_incident_entities WHERE org = 'contoso' AND kind = 'ip'`))
	got, err := f.svc.Sightings(f.ctx, []Key{{KeyIP, "203.0.113.9"}}, t0.Add(-30*24*time.Hour), "fabrikam")
	require.NoError(t, err)
	require.Empty(t, got.Orgs)
	got, err = f.svc.Sightings(f.ctx, []Key{{KeyIP, "203.0.113.9"}}, t0.Add(-30*24*time.Hour), "contoso")
	require.NoError(t, err)
	require.Equal(t, []Key{{KeyIP, "203.0.113.9"}}, got.Common)
}

// TestOneOrgCannotHideOthersSightings: an indicator common in any org was
// left out of every org's sightings, so one customer (ten alerts naming
// made-up devices, or an outbreak of its own) hid a sighting between two
// others from the experts (from a review). It is no sighting where it is
// common; left out everywhere when common in the org asking, or in two
// orgs or more.
func TestOneOrgCannotHideOthersSightings(t *testing.T) {
	t.Parallel()
	const tenantNorthwind, tenantWoodgrove = "c4d2e6a0-1111-4222-8333-944444444444", "d5e3f7b1-2222-4333-8444-a55555555555"
	f := setup(t, func(c *Config) {
		c.CommonEntityDevices = 3
		c.Orgs = append(c.Orgs, Org{ID: "northwind", Tenants: []string{tenantNorthwind}}, Org{ID: "woodgrove", Tenants: []string{tenantWoodgrove}})
	})
	ip := "198.51.100.23"
	c := f.see(t, seen{id: "c1", device: "ws-1", ips: []string{ip}})
	f.see(t, seen{id: "n1", tenant: tenantNorthwind, device: "nw-1", ips: []string{ip}})
	since := t0.Add(-30 * 24 * time.Hour)
	keys, err := f.svc.SubjectKeys(f.ctx, "contoso", "incident", fmt.Sprint(c[0]), since)
	require.NoError(t, err)
	sightings := func() Sightings {
		t.Helper()
		got, err := f.svc.Sightings(f.ctx, keys, since, "contoso")
		require.NoError(t, err)
		return got
	}
	require.Equal(t, []string{"northwind"}, orgsOf(sightings()))

	commonAt := func(tenant, prefix string) {
		t.Helper()
		var batch []seen
		for i := range 4 {
			batch = append(batch, seen{id: fmt.Sprintf("%s%d", prefix, i), tenant: tenant, device: fmt.Sprintf("%s-%d", prefix, i), ips: []string{ip}})
		}
		f.see(t, batch...)
	}
	commonAt(tenantFabrikam, "fab")
	got := sightings()
	require.Equal(t, []string{"northwind"}, orgsOf(got), "Fabrikam alone does not hide Northwind's sighting")
	require.Empty(t, got.Common)

	commonAt(tenantWoodgrove, "wood")
	got = sightings()
	require.Empty(t, got.Orgs, "common in two orgs: shared infrastructure, no sighting anywhere")
	require.Equal(t, []Key{{KeyIP, ip}}, got.Common)
}

// TestKnownOf: what one org knows of an address, a domain and a family,
// and nothing of another org's.
func TestKnownOf(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.see(t, seen{id: "c1", device: "ws-1", ips: []string{"198.51.100.7"}, urls: []string{"https://evil.example/x"}, family: "Emotet"})
	f.see(t, seen{id: "f1", tenant: tenantFabrikam, device: "fab-1", ips: []string{"198.51.100.7"}, urls: []string{"https://evil.example/y"}})
	since := t0.Add(-30 * 24 * time.Hour)
	for _, tc := range []struct{ kind, id string }{{"ip", "198.51.100.7"}, {"url", "evil.example"}, {"url", "https://EVIL.example/x"}, {"actor", "emotet"}} {
		k, err := f.svc.KnownOf(f.ctx, "contoso", tc.kind, tc.id, since)
		require.NoError(t, err, tc)
		require.Equal(t, 1, k.IncidentCount, tc)
		require.Equal(t, c[0], k.Incidents[0].ID, tc)
		require.Equal(t, []string{"ws-1"}, k.Devices, tc)
		require.Equal(t, 1, k.AlertCount, tc)
		require.Equal(t, "c1", k.Alerts[0].ID, tc)
	}
	k, err := f.svc.KnownOf(f.ctx, "contoso", "ip", "192.0.2.1", since)
	require.NoError(t, err)
	require.True(t, k.IsZero())
	k, err = f.svc.KnownOf(f.ctx, "contoso", "url", "https://evil.example/y", since)
	require.NoError(t, err)
	require.True(t, k.IsZero(), "Fabrikam's URL is not Contoso's")
}

func TestURLHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://CDN.Evil.example/a?b#c":   "cdn.evil.example",
		"http://user:pw@evil.example:8080": "evil.example",
		"evil.example/path":                "evil.example",
		"evil.example":                     "evil.example",
		"ftp://10.0.0.5/x":                 "10.0.0.5",
		"":                                 "",
	} {
		require.Equal(t, want, URLHost(in), in)
	}
}

// TestOneOrgsVolumeCannotHideSightings: an indicator's sightings were
// read up to a limit (100) across all orgs, oldest first, so one org's
// hundred incidents holding it hid another org's sighting (from a review
// of this session's changes). They are read latest first, and a key read
// to the limit is read again without the orgs it is common in.
func TestOneOrgsVolumeCannotHideSightings(t *testing.T) {
	t.Parallel()
	const tenantNorthwind = "c4d2e6a0-1111-4222-8333-944444444444"
	for name, fabrikamAt := range map[string]time.Duration{"older than Northwind's": 3 * time.Hour, "newer than Northwind's": 10 * time.Minute} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(c *Config) {
				c.CommonEntityDevices = 3
				c.Orgs = append(c.Orgs, Org{ID: "northwind", Tenants: []string{tenantNorthwind}})
			})
			ip := "198.51.100.23"
			c := f.see(t, seen{id: "c1", device: "ws-1", ips: []string{ip}})
			f.see(t, seen{id: "n1", tenant: tenantNorthwind, device: "nw-1", ips: []string{ip}, at: t0.Add(-2 * time.Hour)})
			since := t0.Add(-30 * 24 * time.Hour)
			keys, err := f.svc.SubjectKeys(f.ctx, "contoso", "incident", fmt.Sprint(c[0]), since)
			require.NoError(t, err)
			for b := range 4 {
				var batch []seen
				for i := range 30 {
					batch = append(batch, seen{id: fmt.Sprintf("fab%d_%d", b, i), tenant: tenantFabrikam, device: fmt.Sprintf("fab-%d-%d", b, i),
						ips: []string{ip}, at: t0.Add(-fabrikamAt - time.Duration(b*30+i)*time.Second)})
				}
				f.see(t, batch...)
			}
			require.GreaterOrEqual(t, f.count(t, `SELECT count(DISTINCT incident_id) FROM hunting_incident_entities WHERE org = 'fabrikam' AND kind = 'ip'`), 100)
			got, err := f.svc.Sightings(f.ctx, keys, since, "contoso")
			require.NoError(t, err)
			require.Equal(t, []string{"northwind"}, orgsOf(got), "Fabrikam's volume does not hide Northwind's sighting")
		})
	}
}
