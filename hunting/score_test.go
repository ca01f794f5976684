package hunting

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reasonsOf sums a breakdown's points per factor.
func reasonsOf(rs []Reason) map[string]int {
	got := map[string]int{}
	for _, r := range rs {
		got[r.Factor] += r.Points
	}
	return got
}

func detailOf(rs []Reason, factor string) string {
	var ds []string
	for _, r := range rs {
		if r.Factor == factor {
			ds = append(ds, r.Detail)
		}
	}
	return strings.Join(ds, "; ")
}

func TestImpactUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		a         Alert
		pts       int
		commodity bool
		words     string
	}{
		{"high ransomware", Alert{Severity: SeverityHigh, Category: "Ransomware", Tactic: "TA0040"}, 30, false, "Ransomware"},
		{"high impact", Alert{Severity: SeverityHigh, Category: "Impact", Tactic: "TA0040"}, 30, false, "impact on the victim"},
		{"high credential access", Alert{Severity: SeverityHigh, Category: "CredentialAccess", Tactic: "TA0006"}, 30, false, "credential theft"},
		{"medium ransomware", Alert{Severity: SeverityMedium, Category: "Ransomware", Tactic: "TA0040"}, 20, false, "Medium Ransomware alert"},
		{"in the tactic's words", Alert{Severity: SeverityHigh, Category: "CredentialAccess", Tactic: "TA0006"}, 30, false, "High Credential Access alert (TA0006), credential theft"},
		{"high discovery weighs nothing", Alert{Severity: SeverityHigh, Category: "Discovery", Tactic: "TA0007"}, 0, false, ""},
		{"unwanted software", Alert{Severity: SeverityMedium, Category: "UnwantedSoftware"}, 0, true, ""},
		{"adware family", Alert{Severity: SeverityMedium, Category: "Malware", ThreatFamily: "Adware:Win32/Hotbar"}, 0, true, ""},
		{"EICAR test file", Alert{Severity: SeverityInformational, Category: "Malware", Title: "EICAR_Test_File malware was detected"}, 0, true, ""},
		{"low antivirus malware", Alert{Severity: SeverityLow, Category: "Malware", DetectionSource: "antivirus"}, 0, true, ""},
		{"high malware is not commodity", Alert{Severity: SeverityHigh, Category: "Malware", DetectionSource: "antivirus", ThreatFamily: "Emotet"}, 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pts, words, commodity := impactOf(&tc.a)
			require.Equal(t, tc.pts, pts)
			require.Equal(t, tc.commodity, commodity)
			require.Contains(t, words, tc.words)
		})
	}
}

func TestVolumeNeverCrossesTheBar(t *testing.T) {
	t.Parallel()
	now := t0
	// 15 medium + 10 impact (medium lateral movement) + 10 recency + 6
	// tactics + 5 progression = 46; the burst adds at most 3.
	in := scoreInput{MaxSeverity: SeverityMedium, MediumPlus: 2000, Alerts: 2000, Impact: 10, ImpactDetail: "x", LastActivity: now, Bar: 50,
		Tactics: []tacticSeen{{"TA0002", now.Add(-time.Hour)}, {"TA0008", now}}}
	got, rs := score(in, now)
	require.Equal(t, 49, got, "%+v", rs)
	require.Equal(t, 3, reasonsOf(rs)[FactorVolume])
	require.Contains(t, detailOf(rs, FactorVolume), "volume alone never crosses the bar")
	// Over the bar already: the burst counts its 5, once.
	in.Impact = 20
	got, rs = score(in, now)
	require.Equal(t, 61, got, "%+v", rs)
	require.Equal(t, 5, reasonsOf(rs)[FactorVolume])
	require.Contains(t, detailOf(rs, FactorVolume), "2000 alerts")
}

// TestRansomwareAloneCrossesTheBar: 2,000 High Ransomware and Impact alerts
// on one device in half an hour are one incident that is notified, and a
// single High ransomware or credential-theft alert crosses the bar alone.
func TestRansomwareAloneCrossesTheBar(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-40 * time.Minute)
	var gs []gen
	for i := range 2000 {
		cat := "Ransomware"
		if i%2 == 1 {
			cat = "Impact"
		}
		gs = append(gs, gen{ID: fmt.Sprintf("r%04d", i), Device: "fileserver01", Severity: "High", Category: cat,
			Title: "Ransomware behavior detected", At: at.Add(time.Duration(i) * 900 * time.Millisecond)})
	}
	var inc int64
	for lo := 0; lo < len(gs); lo += 500 {
		res := f.ingest(t, gs[lo:lo+500]...)
		require.Zero(t, res.Rejected, "%+v", res.Items[0])
		for _, it := range res.Items {
			if inc == 0 {
				inc = it.IncidentID
			}
			require.Equal(t, inc, it.IncidentID, "one incident")
		}
	}
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	t.Logf("ransomware outbreak: score %d, %+v", v.Score, v.Reasons)
	require.GreaterOrEqual(t, v.Score, DefaultNotifyScore)
	got := reasonsOf(v.Reasons)
	// Before impact was weighed: 25 + 5 (burst) + 10 (recency) = 40, never posted.
	require.Equal(t, map[string]int{FactorSeverity: 25, FactorImpact: 30, FactorVolume: 5, FactorRecency: 10}, got)
	require.Equal(t, 70, v.Score)
	require.Equal(t, 30, got[FactorImpact])
	require.Contains(t, detailOf(v.Reasons, FactorImpact), "Ransomware")
	require.Equal(t, 5, got[FactorVolume], "2,000 alerts count once")
	require.Contains(t, detailOf(v.Reasons, FactorVolume), "2000 alerts")
	f.clock.Advance(time.Second)
	f.sweep(t)
	require.Equal(t, []string{EventNotify}, kinds(f.outbox(t)))

	// One alert, two days old (no recency), alone: over the bar.
	for _, c := range []string{"Ransomware", "Impact", "CredentialAccess"} {
		res := f.ingest(t, gen{ID: "lone-" + c, Device: "lone-" + c, Severity: "High", Category: c, At: t0.Add(-48 * time.Hour)})
		v, err := f.svc.Incident(f.ctx, "contoso", res.Items[0].IncidentID)
		require.NoError(t, err)
		t.Logf("lone High %s alert: score %d, %+v", c, v.Score, v.Reasons)
		require.Equal(t, 55, v.Score, "%s: %+v", c, v.Reasons)
		require.Equal(t, map[string]int{FactorSeverity: 25, FactorImpact: 30}, reasonsOf(v.Reasons))
	}
	// A lone High discovery alert does not.
	res := f.ingest(t, gen{ID: "lone-discovery", Device: "lone-d", Severity: "High", Category: "Discovery", At: t0.Add(-48 * time.Hour)})
	v, err = f.svc.Incident(f.ctx, "contoso", res.Items[0].IncidentID)
	require.NoError(t, err)
	require.Equal(t, 25, v.Score, "%+v", v.Reasons)
}

// TestCommodityNoiseStaysQuiet: a thousand low-severity commodity
// detections across the org (PUA and adware on 200 devices, a few common
// hashes and popular IPs) notify nothing, and each breakdown says why.
func TestCommodityNoiseStaysQuiet(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-50 * time.Minute)
	families := []string{"PUA:Win32/Presenoker", "Adware:Win32/Hotbar", "PUA:Win32/CandyOpen", "EICAR_Test_File"}
	var gs []gen
	for i := range 1000 {
		gs = append(gs, gen{ID: fmt.Sprintf("pua%04d", i), Device: fmt.Sprintf("ws%03d", i%200), Severity: []string{"Low", "Informational"}[i%2],
			Category: "UnwantedSoftware", Source: "WindowsDefenderAv", Title: families[i%4] + " detected",
			At: at.Add(time.Duration(i) * 2 * time.Second), Files: []string{sha(families[i%4])}, IPs: []string{"8.8.8.8"}})
	}
	for lo := 0; lo < len(gs); lo += 250 {
		res := f.ingest(t, gs[lo:lo+250]...)
		require.Zero(t, res.Rejected)
	}
	f.clock.Advance(time.Second)
	f.sweep(t)
	require.Empty(t, f.outbox(t), "nothing is notified")
	var top int64
	var max int
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT id, score FROM hunting_incidents ORDER BY score DESC, id LIMIT 1`).Scan(&top, &max))
	require.Less(t, max, DefaultNotifyScore)
	v, err := f.svc.Incident(f.ctx, "contoso", top)
	require.NoError(t, err)
	t.Logf("loudest commodity incident: %d alerts, score %d, %+v", v.AlertCount, v.Score, v.Reasons)
	require.Zero(t, reasonsOf(v.Reasons)[FactorImpact])
	require.LessOrEqual(t, reasonsOf(v.Reasons)[FactorSeverity], 5)
	require.NotEmpty(t, v.Reasons)
	for _, r := range v.Reasons {
		require.NotEmpty(t, r.Detail)
	}
	scores := []int{}
	rows, err := f.pool.Query(f.ctx, `SELECT score FROM hunting_incidents`)
	require.NoError(t, err)
	for rows.Next() {
		var s int
		require.NoError(t, rows.Scan(&s))
		scores = append(scores, s)
	}
	rows.Close()
	sort.Ints(scores)
	t.Logf("%d commodity incidents, scores %d..%d", len(scores), scores[0], scores[len(scores)-1])
}

// TestWidespreadCommodityStaysUnderTheBar: commodity detections linked into
// one incident across devices, users and new hashes are held under the
// bar however widespread (breadth is not an attack), and an alert found
// benign upstream does not lift the commodity limit on severity.
func TestWidespreadCommodityStaysUnderTheBar(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.GroupWait = time.Nanosecond })
	at := t0.Add(-20 * time.Minute)
	var gs []gen
	for i := range 4 {
		gs = append(gs, gen{ID: fmt.Sprintf("pua%d", i), Device: fmt.Sprintf("pc%d", i), Severity: "Low", Category: "UnwantedSoftware",
			Source: "WindowsDefenderAv", Title: "PUA:Win32/Presenoker detected", At: at.Add(time.Duration(i) * time.Minute),
			Files: []string{sha(fmt.Sprint("bundle", i))}, Users: []string{"shared", fmt.Sprint("user", i)}})
	}
	inc := f.ingest(t, gs...).Items[0].IncidentID
	v, err := f.svc.Incident(f.ctx, "contoso", inc)
	require.NoError(t, err)
	require.Equal(t, 4, v.AlertCount, "linked by the shared account")
	require.Equal(t, DefaultNotifyScore-1, v.Score, "%+v", v.Reasons)
	require.Negative(t, reasonsOf(v.Reasons)[FactorCommodity])
	f.clock.Advance(time.Second)
	f.sweep(t)
	require.Empty(t, f.outbox(t), "not posted")

	// Three High PUA detections and a benign Execution alert: still
	// commodity only.
	var hs []gen
	for i := range 3 {
		hs = append(hs, gen{ID: fmt.Sprintf("hpua%d", i), Device: "pc-h", Severity: "High", Category: "UnwantedSoftware",
			Source: "WindowsDefenderAv", Title: "PUA:Win32/CandyOpen detected", At: at.Add(time.Duration(i) * time.Minute)})
	}
	hs = append(hs, gen{ID: "fp", Device: "pc-h", Severity: "Low", Category: "Execution", Class: "FalsePositive", At: at.Add(5 * time.Minute)})
	h := f.ingest(t, hs...).Items[0].IncidentID
	v, err = f.svc.Incident(f.ctx, "contoso", h)
	require.NoError(t, err)
	require.Equal(t, 5, reasonsOf(v.Reasons)[FactorSeverity], "%+v", v.Reasons)

	// Malware detections named PUA, then renamed upstream as ransomware
	// (same category and severity): no longer commodity, no longer held.
	var ms []gen
	for i := range 4 {
		ms = append(ms, gen{ID: fmt.Sprintf("mal%d", i), Device: fmt.Sprintf("pm%d", i), Severity: "High", Category: "Malware",
			Source: "WindowsDefenderAv", Title: "PUA:Win32/Presenoker detected", At: at.Add(time.Duration(i) * time.Minute),
			Files: []string{sha(fmt.Sprint("m", i))}, Users: []string{"shared-m", fmt.Sprint("um", i)}})
	}
	m := f.ingest(t, ms...).Items[0].IncidentID
	v, err = f.svc.Incident(f.ctx, "contoso", m)
	require.NoError(t, err)
	require.Equal(t, DefaultNotifyScore-1, v.Score, "%+v", v.Reasons)
	for i := range ms {
		ms[i].Title = "Ransom:Win32/LockBit detected"
	}
	f.clock.Advance(time.Minute)
	f.ingest(t, ms...)
	v, err = f.svc.Incident(f.ctx, "contoso", m)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v.Score, DefaultNotifyScore, "recomputed: %+v", v.Reasons)
	require.Zero(t, reasonsOf(v.Reasons)[FactorCommodity])
}

// TestExpertCommodityIsNotHeld: an expert incident is 100 whatever its
// alerts are, and its breakdown does not also say it is held under the bar.
func TestExpertCommodityIsNotHeld(t *testing.T) {
	t.Parallel()
	in := scoreInput{MaxSeverity: SeverityHigh, Alerts: 4, Commodity: 4, MediumPlus: 4, Devices: 4, Users: 4, RareFiles: 3, Bar: DefaultNotifyScore,
		Expert: true, LastActivity: t0}
	got, rs := score(in, t0)
	require.Equal(t, MaxScore, got)
	require.Zero(t, reasonsOf(rs)[FactorCommodity], "%+v", rs)
	in.Expert = false
	got, rs = score(in, t0)
	require.Equal(t, DefaultNotifyScore-1, got)
	require.Negative(t, reasonsOf(rs)[FactorCommodity])
}

// TestCommodityByWholeWords: a detection is commodity when its family or
// title names PUA, adware or a test file as words. Substrings made a real
// High malware alert commodity ("latest files", "papua.dll"), held under
// the bar (from a review).
func TestCommodityByWholeWords(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"PUA:Win32/Presenoker":                      true,
		"PUADlManager:Win32/OfferCore":              true,
		"Adware:Win32/Hotbar":                       true,
		"Virus:DOS/EICAR_Test_File":                 true,
		"An EICAR test file was detected":           true,
		"Potentially unwanted application found":    true,
		"Trojan dropped in the user's latest files": false,
		"Malicious papua.dll loaded by explorer":    false,
		"Ransom:Win32/LockBit.A":                    false,
		"Contest filed":                             false,
	} {
		require.Equal(t, want, commodityText(text), text)
		a := &Alert{Category: "Malware", Title: text, Severity: SeverityHigh}
		require.Equal(t, want, isCommodity(a), text)
	}
}
