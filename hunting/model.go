package hunting

import (
	"strings"
	"time"
)

// Source names where an alert came from.
type Source string

// Alert sources.
const (
	SourceDefender Source = "defender" // Defender for Endpoint /api/alerts
	SourceGraph    Source = "graph"    // Microsoft Graph security alerts_v2
)

// Severity is an alert's or incident's severity, lower case.
type Severity string

// Severities, in increasing order.
const (
	SeverityInformational Severity = "informational"
	SeverityLow           Severity = "low"
	SeverityMedium        Severity = "medium"
	SeverityHigh          Severity = "high"
)

// Rank orders severities: informational 0 ... high 3.
func (s Severity) Rank() int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	}
	return 0
}

func severityFromRank(r int) Severity {
	switch r {
	case 1:
		return SeverityLow
	case 2:
		return SeverityMedium
	case 3:
		return SeverityHigh
	}
	return SeverityInformational
}

func parseSeverity(s string) (Severity, bool) {
	switch normKey(s) {
	case "informational", "info", "unspecified", "unknown", "":
		return SeverityInformational, true
	case "unknownfuturevalue":
		// Graph's evolvable-enum sentinel: a severity newer than the API
		// version we asked for. Not a reason to drop the alert.
		return SeverityInformational, true
	case "low":
		return SeverityLow, true
	case "medium":
		return SeverityMedium, true
	case "high", "critical":
		return SeverityHigh, true
	}
	return SeverityInformational, false
}

// EntityKind is the type of an entity taken from an alert's evidence.
type EntityKind string

// Entity kinds. Devices, users, files, IPs and URLs are strong entities that
// correlate alerts; processes and registry keys are kept for scope only.
const (
	EntityDevice   EntityKind = "device"
	EntityUser     EntityKind = "user"
	EntityFile     EntityKind = "file"
	EntityIP       EntityKind = "ip"
	EntityURL      EntityKind = "url"
	EntityProcess  EntityKind = "process"
	EntityRegistry EntityKind = "registry"
)

// Entity is one normalized piece of evidence.
type Entity struct {
	Kind EntityKind `json:"kind"`
	// Value is the entity's key: device id, user SID/object id/UPN, file
	// SHA-256 (else SHA-1), IP, URL, command line, registry path. Lower-cased
	// where the source is case-insensitive.
	Value string `json:"value"`
	// Display is what a person reads: device name, UPN, file path.
	Display string `json:"display"`
	// Alt is a second key: a file's SHA-1 when Value is its SHA-256.
	Alt string `json:"alt,omitempty"`
	// JoinKey is false for entities that never correlate alerts.
	JoinKey bool `json:"join_key"`
}

// Alert is the one internal alert model both sources normalize to.
type Alert struct {
	Source           Source
	ID               string
	Tenant           string
	Org              string
	ProviderIncident string
	Title            string
	Description      string
	Recommended      string
	Severity         Severity
	Status           string
	Classification   string
	Determination    string
	Category         string
	// Tactic is the ATT&CK tactic id (TA00xx, TA0112) from the category, or "".
	Tactic     string
	Techniques []string
	// DetectionSource is normalized to the Graph vocabulary (e.g.
	// "microsoftDefenderForEndpoint", "antivirus", "microsoftThreatExperts").
	DetectionSource string
	// Expert reports that the expert hunting service raised the alert.
	Expert        bool
	ThreatFamily  string
	DeviceID      string
	DeviceName    string
	WebURL        string
	Created       time.Time
	FirstActivity time.Time
	LastActivity  time.Time
	LastUpdate    time.Time
	Entities      []Entity

	hash     []byte // content hash, set by normalize
	evidence []byte // hunting_alerts.evidence, set by normalize
}

// Upstream alert status and classifications, as normalized (normKey).
const (
	alertResolved              = "resolved"
	alertFalsePositive         = "falsepositive"
	alertTruePositive          = "truepositive"
	alertInformationalExpected = "informationalexpectedactivity"
)

// resolved reports whether the alert is resolved upstream (Defender status
// Resolved, Graph status resolved).
func (a *Alert) resolved() bool { return a.Status == alertResolved }

// benign reports whether upstream classified the alert as a false positive
// or as informational, expected activity.
func (a *Alert) benign() bool {
	return a.Classification == alertFalsePositive || a.Classification == alertInformationalExpected
}

// activity is the alert's latest activity: its last, or its first.
func (a *Alert) activity() time.Time { return maxTime(a.when(), a.LastActivity) }

// when is the time correlation uses: first activity, else creation.
func (a *Alert) when() time.Time {
	if !a.FirstActivity.IsZero() {
		return a.FirstActivity
	}
	return a.Created
}

// Tactic describes an ATT&CK tactic.
type Tactic struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Order is the tactic's place along the kill chain.
	Order int `json:"-"`
}

// tactics in kill-chain order (ATT&CK Enterprise v19: TA0005 is now
// "Stealth"; "Defense Impairment" TA0112 was split from it).
var tacticList = []Tactic{
	{"TA0043", "Reconnaissance", 1},
	{"TA0042", "Resource Development", 2},
	{"TA0001", "Initial Access", 3},
	{"TA0002", "Execution", 4},
	{"TA0003", "Persistence", 5},
	{"TA0004", "Privilege Escalation", 6},
	{"TA0005", "Defense Evasion", 7},
	{"TA0112", "Defense Impairment", 8},
	{"TA0006", "Credential Access", 9},
	{"TA0007", "Discovery", 10},
	{"TA0008", "Lateral Movement", 11},
	{"TA0009", "Collection", 12},
	{"TA0011", "Command and Control", 13},
	{"TA0010", "Exfiltration", 14},
	{"TA0040", "Impact", 15},
}

// TacticByID returns the tactic with the given id.
func TacticByID(id string) (Tactic, bool) {
	for _, t := range tacticList {
		if t.ID == id {
			return t, true
		}
	}
	return Tactic{}, false
}

// categoryTactic maps Defender and Graph categories (PascalCase, camelCase,
// spaced; compared lower case without separators) to tactic ids. Categories
// that are not a tactic (Malware, SuspiciousActivity, UnwantedSoftware)
// map to "".
var categoryTactic = map[string]string{
	"reconnaissance":      "TA0043",
	"resourcedevelopment": "TA0042",
	"initialaccess":       "TA0001",
	"execution":           "TA0002",
	"exploit":             "TA0002",
	"persistence":         "TA0003",
	"privilegeescalation": "TA0004",
	"defenseevasion":      "TA0005",
	"stealth":             "TA0005",
	"defenseimpairment":   "TA0112",
	"credentialaccess":    "TA0006",
	"credentialtheft":     "TA0006",
	"discovery":           "TA0007",
	"lateralmovement":     "TA0008",
	"collection":          "TA0009",
	"commandandcontrol":   "TA0011",
	"exfiltration":        "TA0010",
	"impact":              "TA0040",
	"ransomware":          "TA0040",
	"malware":             "",
	"suspiciousactivity":  "",
	"unwantedsoftware":    "",
	"threatmanagement":    "",
	"none":                "",
}

// tacticForCategory maps a category to a tactic id; a category that already
// is a tactic id (TA0001) is taken as it is.
func tacticForCategory(c string) string {
	k := normKey(c)
	if t, ok := categoryTactic[k]; ok {
		return t
	}
	if len(k) == 6 && strings.HasPrefix(k, "ta") {
		id := "TA" + k[2:]
		if _, ok := TacticByID(id); ok {
			return id
		}
	}
	return ""
}

// Detection sources, in the Graph vocabulary.
const (
	DetectionExperts = "microsoftThreatExperts"
)

// detectionSources maps the Defender API (WindowsDefenderAtp, ThreatExperts),
// Graph (microsoftDefenderForEndpoint, microsoftThreatExperts) and Advanced
// Hunting ("EDR", "Microsoft Threat Experts") vocabularies, compared lower
// case without separators, to one set named as Graph names them.
var detectionSources = map[string]string{
	// Defender for Endpoint EDR
	"windowsdefenderatp":           "microsoftDefenderForEndpoint",
	"edr":                          "microsoftDefenderForEndpoint",
	"microsoftdefenderforendpoint": "microsoftDefenderForEndpoint",
	// Antivirus
	"windowsdefenderav": "antivirus",
	"antivirus":         "antivirus",
	// SmartScreen
	"windowsdefendersmartscreen": "smartScreen",
	"smartscreen":                "smartScreen",
	// Custom threat intelligence
	"customerti": "customTi",
	"customti":   "customTi",
	// Office 365
	"officeatp":                     "microsoftDefenderForOffice365",
	"microsoftdefenderforoffice365": "microsoftDefenderForOffice365",
	// Automated investigation
	"automatedinvestigation": "automatedInvestigation",
	// Expert hunting service
	"threatexperts":            DetectionExperts,
	"microsoftthreatexperts":   DetectionExperts,
	"microsoftdefenderexperts": DetectionExperts,
	// Custom detections
	"customdetection": "customDetection",
	// Identity
	"azureatp":                     "microsoftDefenderForIdentity",
	"microsoftdefenderforidentity": "microsoftDefenderForIdentity",
	// Cloud apps
	"mcas":                          "microsoftDefenderForCloudApps",
	"cloudappsecurity":              "microsoftDefenderForCloudApps",
	"microsoftcloudappsecurity":     "microsoftDefenderForCloudApps",
	"microsoftdefenderforcloudapps": "microsoftDefenderForCloudApps",
	// XDR
	"mtp":                  "microsoft365Defender",
	"microsoft365defender": "microsoft365Defender",
	"microsoftdefenderxdr": "microsoft365Defender",
	// Others
	"azureadidentityprotection":   "azureAdIdentityProtection",
	"aadidentityprotection":       "azureAdIdentityProtection",
	"entraidprotection":           "azureAdIdentityProtection",
	"manual":                      "manual",
	"microsoftdatalossprevention": "microsoftDataLossPrevention",
	"datalossprevention":          "microsoftDataLossPrevention",
	"appgovernancepolicy":         "appGovernancePolicy",
	"appgovernancedetection":      "appGovernanceDetection",
	"microsoftdefenderforcloud":   "microsoftDefenderForCloud",
	"azuresecuritycenter":         "microsoftDefenderForCloud",
	"microsoftsentinel":           "microsoftSentinel",
	"microsoftthreatintelligence": "microsoftThreatIntelligence",
	"unknown":                     "unknown",
	"":                            "unknown",
}

// normalizeDetectionSource returns the canonical name, or the input cut to
// a sane length when the vocabulary does not know it.
func normalizeDetectionSource(s string) string {
	if v, ok := detectionSources[normKey(s)]; ok {
		return v
	}
	return clip(s, 100)
}

// normKey lower-cases s and drops everything but letters and digits
// (ASCII: the bytes of other characters are all 0x80 or more).
func normKey(s string) string {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i == len(s) {
		return s // already a key: most are
	}
	b := make([]byte, i, len(s))
	copy(b, s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+('a'-'A'))
		}
	}
	return string(b)
}
