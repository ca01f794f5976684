package hunting

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// corpus generates realistic Defender alerts with evidence: a fleet of
// devices with background noise (commodity malware, popular IPs, OS
// binaries, SYSTEM) and a few hundred multi-stage campaigns, each on one to
// five devices with its own rare payload hashes, C2 address and account.
type corpus struct {
	rng       *rand.Rand
	devices   int
	campaigns []campaign
	seq       int
}

type campaign struct {
	devices []int
	hashes  []string
	c2      string
	url     string
	user    string
	stage   int
}

var (
	benchCategories = []string{"InitialAccess", "Execution", "Persistence", "PrivilegeEscalation", "DefenseEvasion",
		"CredentialAccess", "Discovery", "LateralMovement", "Collection", "CommandAndControl", "Exfiltration", "Impact"}
	benchNoiseCats = []string{"Malware", "UnwantedSoftware", "SuspiciousActivity"}
	benchPopular   = []string{"8.8.8.8", "1.1.1.1", "13.107.4.50", "20.190.159.0"}
)

func newCorpus(seed uint64, devices, campaigns int) *corpus {
	c := &corpus{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), devices: devices}
	for i := range campaigns {
		k := campaign{c2: fmt.Sprintf("198.51.%d.%d", i/250, i%250+1), url: fmt.Sprintf("https://cdn-%d.example.net/p.bin", i),
			user: fmt.Sprintf("user%d", c.rng.IntN(5000))}
		for range 1 + c.rng.IntN(5) {
			k.devices = append(k.devices, c.rng.IntN(devices))
		}
		for j := range 1 + c.rng.IntN(3) {
			k.hashes = append(k.hashes, sha(fmt.Sprintf("camp%d-%d", i, j)))
		}
		c.campaigns = append(c.campaigns, k)
	}
	return c
}

type ev = map[string]any

func (c *corpus) alert(at time.Time) json.RawMessage {
	c.seq++
	id := fmt.Sprintf("da%018d_%d", c.seq, c.rng.IntN(1<<30))
	var dev int
	var sev, cat, title, src string
	var evs []ev
	sys := ev{"entityType": "User", "accountName": "SYSTEM", "domainName": "NT AUTHORITY", "userSid": "S-1-5-18"}
	lolbin := ev{"entityType": "Process", "sha1": "ff836cfb1af40252bd2a2ea843032e99a5b262ed",
		"sha256": "a4752c71d81afd3d5865d24ddb11a6b0c615062fcc448d24050c2172d2cbccd6", "fileName": "rundll32.exe",
		"filePath": `C:\Windows\System32`, "processId": 3276, "processCommandLine": "rundll32.exe c:\\temp\\x.dll,Run"}
	if c.rng.IntN(100) < 35 {
		// A campaign moves one stage on one of its devices.
		k := &c.campaigns[c.rng.IntN(len(c.campaigns))]
		dev = k.devices[c.rng.IntN(len(k.devices))]
		cat = benchCategories[min(k.stage, len(benchCategories)-1)]
		k.stage = (k.stage + c.rng.IntN(2)) % (len(benchCategories) + 2)
		sev = []string{"Medium", "High", "High"}[c.rng.IntN(3)]
		title = "Suspicious " + cat + " activity"
		src = "WindowsDefenderAtp"
		h := k.hashes[c.rng.IntN(len(k.hashes))]
		evs = append(evs,
			ev{"entityType": "User", "accountName": k.user, "domainName": "CONTOSO", "userSid": "S-1-5-21-1-2-3-" + k.user[4:],
				"userPrincipalName": k.user + "@contoso.com"},
			ev{"entityType": "File", "sha1": h[:40], "sha256": h, "fileName": "svch0st.exe", "filePath": `C:\ProgramData\svc`},
			ev{"entityType": "Process", "sha1": h[:40], "sha256": h, "fileName": "svch0st.exe", "filePath": `C:\ProgramData\svc`,
				"processId": 4242, "processCommandLine": "svch0st.exe -k netsvcs -connect " + k.c2},
			ev{"entityType": "Ip", "ipAddress": k.c2},
			ev{"entityType": "Url", "url": k.url},
			lolbin, sys)
	} else {
		dev = c.rng.IntN(c.devices)
		cat = benchNoiseCats[c.rng.IntN(len(benchNoiseCats))]
		sev = []string{"Informational", "Low", "Low", "Medium"}[c.rng.IntN(4)]
		title = "Commodity malware detected"
		src = "WindowsDefenderAv"
		h := sha(fmt.Sprint("commodity", c.rng.IntN(200)))
		evs = append(evs,
			ev{"entityType": "File", "sha1": h[:40], "sha256": h, "fileName": "setup.exe", "filePath": `C:\Users\x\Downloads`},
			ev{"entityType": "Ip", "ipAddress": benchPopular[c.rng.IntN(len(benchPopular))]},
			lolbin, sys)
	}
	if c.rng.IntN(100) < 5 {
		evs = append(evs, ev{"entityType": "Registry", "registryKey": `SOFTWARE\Microsoft\Windows\CurrentVersion\Run`, "registryHive": "HKEY_LOCAL_MACHINE"})
	}
	m := map[string]any{
		"id": id, "incidentId": c.seq / 7, "investigationId": nil, "assignedTo": nil, "severity": sev, "status": "New",
		"classification": nil, "determination": nil, "investigationState": "Queued", "detectionSource": src,
		"detectorId": "17e10bbc-3a68-474a-8aad-faef14d43952", "category": cat, "threatFamilyName": nil, "title": title,
		"description":       "Binaries signed by Microsoft can be used to run low-reputation arbitrary code. This technique hides the execution of malicious code within a trusted process.",
		"alertCreationTime": at.Add(2 * time.Minute).Format(time.RFC3339Nano), "firstEventTime": at.Format(time.RFC3339Nano),
		"lastEventTime": at.Add(time.Second).Format(time.RFC3339Nano), "lastUpdateTime": at.Add(3 * time.Minute).Format(time.RFC3339Nano),
		"resolvedTime": nil, "machineId": fmt.Sprintf("%040x", dev+1), "computerDnsName": fmt.Sprintf("ws%05d.contoso.local", dev),
		"rbacGroupName": "A", "aadTenantId": tenantContoso, "threatName": nil, "mitreTechniques": []string{"T1064", "T1085", "T1220"},
		"relatedUser": map[string]any{"userName": "temp123", "domainName": "DOMAIN"}, "comments": []any{}, "evidence": evs,
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *corpus) batch(n int, start time.Time) []RawAlert {
	out := make([]RawAlert, n)
	for i := range out {
		out[i] = c.alert(start.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	return out
}

// BenchmarkIngestBatch500 ingests batches of 500 realistic alerts with
// evidence through Ingest (parse, normalize, store, correlate, score, policy)
// on the test PostgreSQL, with a sweep after every batch as the scheduler
// would run it. The fake clock moves one minute per batch, so group_wait
// elapses and first posts and updates are written by the sweeps.
func BenchmarkIngestBatch500(b *testing.B) {
	f := setup(b)
	c := newCorpus(1, 5000, 400)
	const size = 500
	// Pre-generate so JSON encoding is not measured.
	batches := make([][]RawAlert, b.N)
	for i := range batches {
		batches[i] = c.batch(size, f.clock.Now().Add(time.Duration(i)*time.Minute-time.Hour))
	}
	var bytesIn int
	for _, r := range batches[0] {
		bytesIn += len(r)
	}
	lat := make([]time.Duration, 0, b.N)
	var sweep time.Duration
	var expertLat []time.Duration
	b.ResetTimer()
	split := f.svc.stageSplit()
	start := time.Now()
	for i := range b.N {
		// One alert in 500 is from the expert hunting service; its
		// notification is written by the ingest transaction itself.
		if i%4 == 0 {
			batches[i][size-1] = json.RawMessage(fmt.Sprintf(`{"id":"mte-%d","aadTenantId":"%s","severity":"High","detectionSource":"ThreatExperts","category":"LateralMovement","title":"Hands-on-keyboard","alertCreationTime":"%s","machineId":"%040x"}`,
				i, tenantContoso, f.clock.Now().Add(-time.Minute).Format(time.RFC3339Nano), 900000+i))
		}
		t := time.Now()
		res, err := f.svc.Ingest(f.ctx, batches[i])
		d := time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		if res.Rejected > 0 {
			b.Fatalf("rejected: %+v", res.Items[0])
		}
		lat = append(lat, d)
		if i%4 == 0 {
			expertLat = append(expertLat, d)
		}
		f.clock.Advance(time.Minute)
		t = time.Now()
		if _, err := f.svc.Sweep(f.ctx); err != nil {
			b.Fatal(err)
		}
		sweep += time.Since(t)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(size*b.N)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(size*b.N)/(elapsed-sweep).Seconds(), "ingest-only-alerts/s")
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms/batch")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms/batch")
	b.ReportMetric(float64(sweep.Microseconds())/1000/float64(b.N), "sweep-ms/batch")
	split.report(b, size*b.N)
	if len(expertLat) > 0 {
		var sum time.Duration
		for _, d := range expertLat {
			sum += d
		}
		// Ingest call to committed outbox row, for a notification due at once.
		b.ReportMetric(float64((sum/time.Duration(len(expertLat))).Microseconds())/1000, "ingest-to-outbox-ms")
	}
	b.ReportMetric(float64(bytesIn)/size, "bytes/alert")
	var incidents, events int
	require.NoError(b, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM hunting_incidents`).Scan(&incidents))
	require.NoError(b, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM outbox`).Scan(&events))
	b.ReportMetric(float64(incidents), "incidents")
	b.ReportMetric(float64(events), "outbox-rows")
}

// TestIngestToOutboxLatency measures, on the real clock, the time from an
// ingest whose incident crosses the bar to its outbox row, with group_wait
// at its smallest: the sweep runs every 100 ms.
func TestIngestToOutboxLatency(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) {
		c.Now = time.Now
		c.GroupWait = time.Millisecond
		c.SweepInterval = 100 * time.Millisecond
	})
	require.NoError(t, f.svc.Start(f.ctx))
	defer func() { require.NoError(t, f.svc.Stop()) }()
	start := time.Now()
	f.ingest(t, chain("c", "victim", time.Now().Add(-50*time.Minute))...)
	var created time.Time
	require.Eventually(t, func() bool {
		return f.pool.QueryRow(f.ctx, `SELECT created_at FROM outbox WHERE kind = $1`, EventNotify).Scan(&created) == nil
	}, 10*time.Second, 5*time.Millisecond)
	t.Logf("ingest to outbox row: %s (group_wait 1ms, sweep every 100ms)", time.Since(start).Round(time.Millisecond))
}

// BenchmarkIngestBatch500Concurrent is BenchmarkIngestBatch500 with two
// producers, as two intake requests in flight would be: one request's items
// are decoded while the other's transaction runs (the org lock serializes
// the transactions themselves). Each producer sweeps after each of its
// batches, and the fake clock moves one minute per batch.
func BenchmarkIngestBatch500Concurrent(b *testing.B) {
	f := setup(b)
	c := newCorpus(1, 5000, 400)
	const size, producers = 500, 2
	batches := make([][]RawAlert, b.N)
	for i := range batches {
		batches[i] = c.batch(size, f.clock.Now().Add(time.Duration(i)*time.Minute-time.Hour))
	}
	var (
		mu    sync.Mutex
		next  int
		lat   []time.Duration
		sweep time.Duration
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				t := time.Now()
				res, err := f.svc.Ingest(f.ctx, batches[i])
				d := time.Since(t)
				if err != nil {
					b.Error(err)
					return
				}
				if res.Rejected > 0 {
					b.Errorf("rejected: %+v", res.Items[0])
					return
				}
				f.clock.Advance(time.Minute)
				t = time.Now()
				if _, err := f.svc.Sweep(f.ctx); err != nil {
					b.Error(err)
					return
				}
				sd := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				sweep += sd
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(size*b.N)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms/batch")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms/batch")
	b.ReportMetric(float64(sweep.Microseconds())/1000/float64(b.N), "sweep-ms/batch")
}

// BenchmarkNormalize decodes and normalizes realistic Defender alerts with
// evidence (the corpus of the intake benchmarks), one alert per op: the
// Go work of intake before any database.
func BenchmarkNormalize(b *testing.B) {
	c := newCorpus(1, 5000, 400)
	raws := c.batch(500, t0.Add(-time.Hour))
	tenants := map[string]string{tenantContoso: "contoso"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := normalize(raws[i%len(raws)], tenants); err != nil {
			b.Fatal(err)
		}
	}
}
