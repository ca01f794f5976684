package hunting

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Reason is one line of a score's breakdown: "why you are seeing this".
type Reason struct {
	// Factor names the input: severity, impact, volume, tactics,
	// progression, expert, rare_files, devices, users, recency.
	Factor string `json:"factor"`
	Points int    `json:"points"`
	Detail string `json:"detail"`
}

// Score factors.
const (
	FactorSeverity    = "severity"
	FactorImpact      = "impact"
	FactorVolume      = "volume"
	FactorTactics     = "tactics"
	FactorProgression = "progression"
	FactorExpert      = "expert"
	FactorRareFiles   = "rare_files"
	FactorDevices     = "devices"
	FactorUsers       = "users"
	FactorRecency     = "recency"
	// FactorCommodity holds an incident of commodity detections only under
	// the bar (negative points): however widespread, it is not an attack.
	FactorCommodity = "commodity"
)

// MaxScore is the top of the scale; expert-service incidents get it.
const MaxScore = 100

// tacticSeen is a tactic and when the incident first showed it.
type tacticSeen struct {
	ID    string
	First time.Time
}

// scoreInput is what an incident's score is computed from.
type scoreInput struct {
	MaxSeverity Severity
	MediumPlus  int // alerts of medium or high severity
	Alerts      int
	// Impact is the heaviest weight of what the alerts are (impactOf), and
	// ImpactDetail its words.
	Impact       int
	ImpactDetail string
	// Commodity counts the alerts that say nothing of an attack: commodity
	// detections and alerts found benign upstream.
	Commodity    int
	Tactics      []tacticSeen
	Expert       bool
	RareFiles    int
	Devices      int
	Users        int
	LastActivity time.Time
	// Bar is the org's notification score: volume never lifts an incident
	// over it (0: no such guard).
	Bar int
}

// Score points, documented in the README's score table.
const (
	commoditySeverityCap = 5  // all alerts commodity: severity weighs as low at most
	volumePoints         = 5  // three or more alerts of medium or high severity, once
	tacticPoints         = 6  // per ATT&CK tactic beyond the first
	tacticCap            = 24 //
	progressionPoints    = 5  // per forward step along the kill chain
	progressionCap       = 15 //
	rareFilePoints       = 4  // per file seen on at most two devices
	rareFileCap          = 12 //
	devicePoints         = 5  // per device beyond the first
	deviceCap            = 15 //
	userPoints           = 3  // per user beyond the first
	userCap              = 9  //
	recentHourPoints     = 10 // last activity within the hour
	recentDayPoints      = 5  // within the day
)

// score computes a 0-100 score and its breakdown. Points (the README has
// the same table):
//   - severity: informational 0, low 5, medium 15, high 25; at most 5 when
//     every alert is a commodity detection (PUA, adware, test files);
//   - impact: what the alerts are, for the victim (impactOf): a High
//     Ransomware or Impact alert 30, a High credential-access alert 30, ...,
//     the heaviest alert only;
//   - volume: 5 once when three or more alerts are medium or above, however
//     many: a burst is one signal, and never lifts an incident over the bar;
//   - tactics: 6 per distinct ATT&CK tactic beyond the first, at most 24;
//   - progression: 5 per step forward along the kill chain when the tactics
//     are taken in time order, at most 15 (hands-on-keyboard looks like this);
//   - rare files: 4 per file seen on at most two devices of the org, at most 12;
//   - devices: 5 per device beyond the first, at most 15; users: 3 per user
//     beyond the first, at most 9;
//   - recency: last activity within the hour 10, within a day 5;
//   - the expert hunting service: the score is 100, whatever else.
func score(in scoreInput, now time.Time) (int, []Reason) {
	var rs []Reason
	add := func(f string, p int, d string) {
		if p != 0 {
			rs = append(rs, Reason{Factor: f, Points: p, Detail: d})
		}
	}
	sevPts := [...]int{0, 5, 15, 25}[in.MaxSeverity.Rank()]
	if in.Alerts > 0 && in.Commodity >= in.Alerts && sevPts > commoditySeverityCap {
		add(FactorSeverity, commoditySeverityCap, fmt.Sprintf("highest alert severity %s, but only commodity detections (PUA, adware, test files) or alerts found benign", in.MaxSeverity))
	} else {
		add(FactorSeverity, sevPts, fmt.Sprintf("highest alert severity %s", in.MaxSeverity))
	}
	add(FactorImpact, in.Impact, in.ImpactDetail)
	if n := len(in.Tactics); n > 1 {
		names := make([]string, 0, n)
		for _, t := range in.Tactics {
			names = append(names, tacticName(t.ID))
		}
		add(FactorTactics, min(tacticCap, tacticPoints*(n-1)), fmt.Sprintf("%d ATT&CK tactics: %s", n, strings.Join(names, ", ")))
	}
	if steps, path := progression(in.Tactics); steps > 0 {
		add(FactorProgression, min(progressionCap, progressionPoints*steps), "moves along the kill chain in time order: "+path)
	}
	if in.RareFiles > 0 {
		add(FactorRareFiles, min(rareFileCap, rareFilePoints*in.RareFiles), plural.S(in.RareFiles, "file")+" seen on at most 2 devices in the org")
	}
	if in.Devices > 1 {
		add(FactorDevices, min(deviceCap, devicePoints*(in.Devices-1)), plural.S(in.Devices, "device")+" involved")
	}
	if in.Users > 1 {
		add(FactorUsers, min(userCap, userPoints*(in.Users-1)), fmt.Sprintf("%d user accounts involved", in.Users))
	}
	if !in.LastActivity.IsZero() {
		age := now.Sub(in.LastActivity)
		switch {
		case age <= time.Hour:
			add(FactorRecency, recentHourPoints, "active within the last hour")
		case age <= 24*time.Hour:
			add(FactorRecency, recentDayPoints, "active within the last day")
		}
	}
	total := 0
	for _, r := range rs {
		total += r.Points
	}
	if in.MediumPlus >= 3 {
		// A burst is one signal: counted once, whatever its size, and it
		// never carries an incident over the bar on its own.
		pts, detail := volumePoints, fmt.Sprintf("%s, %d of medium or high severity (a burst counts once)", plural.S(in.Alerts, "alert"), in.MediumPlus)
		if in.Bar > 0 && total < in.Bar && total+pts >= in.Bar {
			pts = in.Bar - 1 - total
			detail += "; volume alone never crosses the bar"
		}
		add(FactorVolume, pts, detail)
		total += pts
	}
	if in.Alerts > 0 && in.Commodity >= in.Alerts && in.Bar > 0 && total >= in.Bar && !in.Expert {
		// Breadth (devices, users, new hashes) must not carry commodity
		// detections over the bar either.
		held := in.Bar - 1 - total
		add(FactorCommodity, held, "only commodity detections (PUA, adware, test files) or alerts found benign: held under the bar however widespread")
		total += held
	}
	if in.Expert {
		rs = append([]Reason{{Factor: FactorExpert, Points: MaxScore - min(total, MaxScore),
			Detail: "raised by the expert hunting service: always notified, top priority"}}, rs...)
		total = MaxScore
	}
	return min(total, MaxScore), rs
}

// impactOf weighs what an alert means for the victim, from its category
// (and the ATT&CK tactic it maps to) and severity: destruction or
// encryption of data and credential theft weigh most, discovery and
// commodity malware (PUA, adware, test files) nothing. It returns the
// points, their words, and whether the alert is a commodity detection.
func impactOf(a *Alert) (int, string, bool) {
	if isCommodity(a) {
		return 0, "", true
	}
	cat := normKey(a.Category)
	var w impactWeight
	switch {
	case cat == "ransomware":
		w = impactWeight{30, 20, 10, "encryption of the victim's data for ransom"}
	default:
		w = tacticImpact[a.Tactic]
	}
	pts := 0
	switch a.Severity {
	case SeverityHigh:
		pts = w.high
	case SeverityMedium:
		pts = w.medium
	case SeverityLow:
		pts = w.low
	}
	if pts == 0 {
		return 0, "", false
	}
	sev := strings.ToUpper(string(a.Severity[:1])) + string(a.Severity[1:])
	// In words an analyst reads: the tactic's name, not the category as
	// the sender spelt it ("CredentialAccess"); ransomware by its name.
	kind := tacticName(a.Tactic)
	switch {
	case cat == "ransomware":
		kind = "Ransomware" // not the sender's spelling: it may carry more than the word
	case kind == "" || kind == a.Tactic:
		kind = a.Category
	}
	return pts, fmt.Sprintf("%s %s alert (%s), %s", sev, kind, a.Tactic, w.what), false
}

// impactWeight is what an alert of a kind weighs at each severity.
type impactWeight struct {
	high, medium, low int
	what              string
}

// tacticImpact weighs alerts by the ATT&CK tactic of their category.
var tacticImpact = map[string]impactWeight{
	"TA0040": {30, 20, 10, "impact on the victim's data or systems (encryption, destruction, disruption)"},
	"TA0006": {30, 15, 5, "credential theft: the attacker can act as the victim's users"},
	"TA0010": {25, 15, 5, "data leaving the network"},
	"TA0008": {20, 10, 0, "moving to other devices"},
	"TA0011": {15, 10, 0, "a command-and-control channel to the attacker"},
	"TA0112": {10, 5, 0, "security tools or logging disabled"},
	"TA0004": {10, 5, 0, "privilege escalation"},
	"TA0001": {5, 0, 0, "an attacker's way in"},
	"TA0002": {5, 0, 0, "attacker code running"},
	"TA0003": {5, 0, 0, "persistence on the device"},
	"TA0005": {5, 0, 0, "defence evasion"},
	"TA0009": {5, 0, 0, "data being collected"},
	// Reconnaissance, resource development and discovery weigh nothing:
	// common, noisy, and followed by something heavier when they matter.
}

// commodityText reports whether a threat family or title names a
// commodity detection, by whole words (letters only, so that
// "PUA:Win32/Presenoker", "PUADlManager" and "EICAR_Test_File" count and
// "papua.dll" or "latest files" do not): a word starting with "pua" or
// "adware", "eicar", "testfile", or the words "potentially unwanted" or
// "test file" in a row.
func commodityText(text string) bool {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return r < 'a' || r > 'z' })
	for i, w := range words {
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		switch {
		case strings.HasPrefix(w, "pua"), strings.HasPrefix(w, "adware"), w == "eicar", w == "testfile",
			w == "potentially" && next == "unwanted", w == "test" && strings.HasPrefix(next, "file"):
			return true
		}
	}
	return false
}

// isCommodity reports whether an alert is a commodity detection: unwanted
// software, or a malware detection whose family or title names PUA, adware
// or a test file (EICAR), or a low or informational antivirus detection.
func isCommodity(a *Alert) bool {
	cat := normKey(a.Category)
	if cat == "unwantedsoftware" {
		return true
	}
	if cat != "malware" && cat != "" {
		return false
	}
	if commodityText(a.ThreatFamily + " " + a.Title) {
		return true
	}
	return cat == "malware" && a.Severity.Rank() <= SeverityLow.Rank() && a.DetectionSource == "antivirus"
}

// progression counts forward steps along the kill chain when tactics are
// taken in the order they were first seen.
func progression(ts []tacticSeen) (int, string) {
	if len(ts) < 2 {
		return 0, ""
	}
	s := append([]tacticSeen(nil), ts...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].First.Before(s[j].First) })
	steps := 0
	names := []string{tacticName(s[0].ID)}
	last := tacticOrder(s[0].ID)
	for _, t := range s[1:] {
		o := tacticOrder(t.ID)
		if o > last {
			steps++
			last = o
			names = append(names, tacticName(t.ID))
		}
	}
	return steps, strings.Join(names, " → ")
}

func tacticOrder(id string) int {
	t, _ := TacticByID(id)
	return t.Order
}

func tacticName(id string) string {
	if t, ok := TacticByID(id); ok {
		return t.Name
	}
	return id
}

// recommendations per tactic, in kill-chain order, for the card.
var tacticActions = map[string]string{
	"TA0001": "Find the entry point (phishing mail, exposed service, vulnerable app) and close it",
	"TA0002": "Review the command lines and block the malicious files by hash",
	"TA0003": "Remove the persistence (services, scheduled tasks, run keys) found on the devices",
	"TA0004": "Check for new local administrators and privileged tokens; remove what is not expected",
	"TA0005": "Verify that Defender protections are on and tamper protection is enabled",
	"TA0112": "Re-enable disabled security tools and logging, and find out who disabled them",
	"TA0006": "Reset the passwords of the involved accounts and revoke their sessions and tokens",
	"TA0007": "Expect follow-on activity: watch the involved accounts and devices closely",
	"TA0008": "Isolate the involved devices to stop lateral movement",
	"TA0009": "Identify the data that was staged or collected",
	"TA0011": "Block the command-and-control IPs and URLs at the perimeter",
	"TA0010": "Determine what data left the network and start your breach-response process",
	"TA0040": "Isolate the devices now and check backups: this is the impact stage",
}

// recommend builds the card's recommended actions.
func recommend(tactics []string, devices int, expert bool, sev Severity) []string {
	var out []string
	if expert {
		out = append(out, "Read the expert hunting service's notification and follow its guidance first")
	}
	if sev == SeverityHigh && devices > 0 && !contains(tactics, "TA0008") && !contains(tactics, "TA0040") {
		out = append(out, "Consider isolating the affected "+plural.Word(devices, "device", "devices")+" while you investigate")
	}
	ordered := append([]string(nil), tactics...)
	sort.Slice(ordered, func(i, j int) bool { return tacticOrder(ordered[i]) < tacticOrder(ordered[j]) })
	for _, t := range ordered {
		if a, ok := tacticActions[t]; ok {
			out = append(out, a)
		}
	}
	out = append(out, "Collect an investigation package from the affected devices and review their timelines",
		"Consult a threat expert if anything here is unclear")
	return out
}

// titleFor names the attack for the card.
func titleFor(base, family string, expert bool, tactics int, devices int, firstDevice string) string {
	name := strings.TrimSpace(base)
	if family != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(family)) {
		name = family + ": " + name
	}
	if name == "" {
		name = "Suspicious activity"
	}
	if tactics >= 3 && !expert {
		name = "Multi-stage attack: " + name
	}
	switch {
	case devices == 1 && firstDevice != "":
		name += " on " + firstDevice
	case devices > 1:
		name += fmt.Sprintf(" across %d devices", devices)
	}
	return clip(name, maxTitleLen)
}

// summaryFor is the card's one paragraph.
func summaryFor(st *incState) string {
	var b strings.Builder
	b.WriteString(plural.S(st.AlertCount, "alert"))
	if !st.FirstActivity.IsZero() {
		fmt.Fprintf(&b, " between %s and %s", st.FirstActivity.UTC().Format("2006-01-02 15:04"), st.LastActivity.UTC().Format("2006-01-02 15:04 UTC"))
	}
	b.WriteString(" on " + plural.S(st.DeviceCount, "device"))
	if len(st.DeviceNames) > 0 {
		names := st.DeviceNames
		if len(names) > 3 {
			names = names[:3]
		}
		fmt.Fprintf(&b, " (%s", strings.Join(names, ", "))
		if st.DeviceCount > len(names) {
			fmt.Fprintf(&b, " and %d more", st.DeviceCount-len(names))
		}
		b.WriteString(")")
	}
	if st.UserCount > 0 {
		b.WriteString(" involving " + plural.S(st.UserCount, "user account"))
	}
	b.WriteString(".")
	if len(st.Tactics) > 0 {
		_, path := progression(st.tacticSeen)
		if path == "" {
			path = tacticName(st.Tactics[0])
		}
		fmt.Fprintf(&b, " Observed tactics: %s.", joinTactics(st.Tactics))
		if len(st.Tactics) > 1 {
			fmt.Fprintf(&b, " Progression: %s.", path)
		}
	}
	fmt.Fprintf(&b, " Highest severity %s, score %d/100.", st.Severity, st.Score)
	if st.Expert {
		b.WriteString(" Raised by the expert hunting service.")
	}
	return clip(b.String(), 3000)
}

func joinTactics(ids []string) string {
	s := append([]string(nil), ids...)
	sort.Slice(s, func(i, j int) bool { return tacticOrder(s[i]) < tacticOrder(s[j]) })
	for i, id := range s {
		s[i] = tacticName(id) + " (" + id + ")"
	}
	return strings.Join(s, ", ")
}
