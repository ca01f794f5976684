package hunting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format says what shape of payload the intake received.
type Format string

// Payload formats.
const (
	FormatDefenderAlert Format = "defender-alert"
	FormatDefenderList  Format = "defender-list"
	FormatGraphAlert    Format = "graph-alert"
	FormatGraphList     Format = "graph-list"
	FormatMixedList     Format = "mixed-list"
	FormatEmptyList     Format = "empty-list"
)

// Limits on hostile input: every string is cut (in whole runes) to these
// sizes, and an alert keeps at most maxEntities entities.
const (
	maxIDLen          = 256
	maxTitleLen       = 512
	maxDescriptionLen = 4096
	maxRecommendedLen = 8192
	maxValueLen       = 1024
	maxShortLen       = 128
	maxEntities       = 64
	// maxEvidence is how many evidence entries of an alert are decoded;
	// the rest are checked and dropped (an item of empty entries, "[{},{},…]",
	// would otherwise cost hundreds of bytes of memory per 3 bytes sent).
	maxEvidence   = 4 * maxEntities
	maxTechniques = 32
	// maxListStrings is how many strings of a list in an alert (its
	// techniques, an entity's roles) are decoded; the rest are checked and
	// dropped (`["","",…]` would otherwise cost a string header, 16 bytes,
	// per 3 bytes sent).
	maxListStrings = 2 * maxTechniques
)

// RawAlert is one alert as received: its JSON, before normalization.
type RawAlert = json.RawMessage

// SyntaxError is malformed JSON, with where it broke.
type SyntaxError struct {
	Line   int
	Column int
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at line %d, column %d (byte offset %d): %s", e.Line, e.Column, e.Offset, e.Msg)
}

// ShapeError is valid JSON that is not an alert or a list of alerts.
type ShapeError struct{ Msg string }

func (e *ShapeError) Error() string { return e.Msg }

// SplitPayload parses a request body into its items: a list
// ({"value":[...]}) or one alert. It reports the format as far as the
// outer shape tells it; Ingest refines it per item. The items may share
// body's memory: body must not change while they are in use.
func SplitPayload(body []byte) (items []RawAlert, list bool, err error) {
	// The one-pass split checks the syntax as it goes: when it succeeds the
	// body is valid and needs no repair. Otherwise the full path below
	// validates, repairs raw control characters and reports where it broke.
	if t := trimOuter(body); len(t) > 0 && t[0] == '{' {
		if items, list, ok := splitFast(t); ok {
			return items, list, nil
		}
	}
	body, err = parseOuter(body)
	if err != nil {
		return nil, false, err
	}
	return splitStd(body)
}

// trimOuter drops leading whitespace and byte order marks.
func trimOuter(body []byte) []byte {
	trimmed := bytes.TrimLeft(body, " \t\r\n\ufeff")
	return bytes.TrimPrefix(trimmed, []byte("\xef\xbb\xbf"))
}

// splitFast splits a valid body in one pass (encoding/json scans a list
// three times: validation, decoding, and each item's copy). It gives up,
// for splitStd, on anything but the plain shapes: "value" written in another
// case or twice, a value that is not an array, invalid UTF-8.
func splitFast(body []byte) (items []RawAlert, list, ok bool) {
	d := fastDec{b: body}
	d.ws()
	ok = d.object(func(key []byte) bool {
		if string(key) != "value" {
			return d.unknown(key, "value")
		}
		if list || !d.lit('[') {
			return false
		}
		list = true
		items = []RawAlert{}
		d.ws()
		if d.lit(']') {
			return true
		}
		for {
			start := d.i
			if !d.skip() {
				return false
			}
			// Not copied: the items live as long as the request's body.
			items = append(items, RawAlert(d.b[start:d.i:d.i]))
			d.ws()
			if d.lit(']') {
				return true
			}
			if !d.lit(',') {
				return false
			}
			d.ws()
		}
	})
	d.ws()
	if !ok || d.i != len(d.b) {
		return nil, false, false
	}
	if !list {
		return []RawAlert{body}, false, true
	}
	return items, true, true
}

// splitStd is SplitPayload by encoding/json, for any valid body.
func splitStd(body []byte) (items []RawAlert, list bool, err error) {
	var top struct {
		Value *[]json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, false, &ShapeError{Msg: fmt.Sprintf("expected one alert object or {\"value\": [alerts]}, got %s at %q", te.Value, te.Field)}
		}
		return nil, false, &ShapeError{Msg: "expected one alert object or {\"value\": [alerts]}: " + err.Error()}
	}
	if top.Value != nil {
		return *top.Value, true, nil
	}
	return []RawAlert{body}, false, nil
}

// parseOuter checks the body is a JSON object, repairing raw control
// characters inside strings (real payloads carry tabs).
func parseOuter(body []byte) ([]byte, error) {
	trimmed := trimOuter(body)
	if len(trimmed) == 0 {
		return nil, &ShapeError{Msg: "empty body: expected one alert object or {\"value\": [alerts]}"}
	}
	if err := validJSON(trimmed); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && strings.Contains(se.Error(), "in string literal") {
			if fixed := escapeControls(trimmed); validJSON(fixed) == nil {
				trimmed = fixed
				goto ok
			}
		}
		return nil, syntaxError(trimmed, err)
	}
ok:
	if trimmed[0] != '{' {
		return nil, &ShapeError{Msg: "expected one alert object or {\"value\": [alerts]}, got a JSON " + jsonKind(trimmed[0])}
	}
	return trimmed, nil
}

func validJSON(b []byte) error {
	if json.Valid(b) {
		return nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return errors.New("invalid JSON")
	}
	return err
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func syntaxError(body []byte, err error) error {
	var se *json.SyntaxError
	off := int64(len(body))
	msg := err.Error()
	if errors.As(err, &se) {
		off = se.Offset
		msg = se.Error()
	}
	line, col := 1, 1
	for i := int64(0); i < off && i < int64(len(body)); i++ {
		if body[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &SyntaxError{Line: line, Column: col, Offset: off, Msg: msg}
}

// escapeControls escapes raw control characters inside JSON strings.
func escapeControls(b []byte) []byte {
	// First the size: tabs and line breaks take two bytes escaped, other
	// control characters six. A body that would grow past twice its size
	// and a mebibyte is not repaired (it stays a syntax error): a request
	// of raw control characters must not cost many times its size.
	extra := 0
	forStringControls(b, func(_ int, c byte) { extra += len(controlEscape(c)) - 1 })
	if extra > len(b)+1<<20 {
		return b
	}
	out := make([]byte, 0, len(b)+extra)
	last := 0
	forStringControls(b, func(i int, c byte) {
		out = append(append(out, b[last:i]...), controlEscape(c)...)
		last = i + 1
	})
	return append(out, b[last:]...)
}

// forStringControls calls fn with each raw control character inside a JSON
// string of b, and its index.
func forStringControls(b []byte, fn func(i int, c byte)) {
	in, esc := false, false
	for i, c := range b {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in && c < 0x20:
			fn(i, c)
		}
	}
}

// controlEscape is a control character as JSON escapes it.
func controlEscape(c byte) string {
	switch c {
	case '\t':
		return `\t`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	}
	const hex = "0123456789abcdef"
	return `\u00` + string(hex[c>>4]) + string(hex[c&15])
}

// wireAlert is the union of a Defender /api/alerts alert and a Graph
// alerts_v2 alert; unknown fields are ignored.
type wireAlert struct {
	ODataType string          `json:"@odata.type"`
	ID        string          `json:"id"`
	Incident  json.RawMessage `json:"incidentId"`
	Severity  string          `json:"severity"`
	Status    string          `json:"status"`
	Class     string          `json:"classification"`
	Determ    string          `json:"determination"`
	DetSource string          `json:"detectionSource"`
	Category  string          `json:"category"`
	Family    string          `json:"threatFamilyName"`
	Title     string          `json:"title"`
	Desc      string          `json:"description"`
	Mitre     stringList      `json:"mitreTechniques"`
	Evidence  evidenceList    `json:"evidence"`

	// Defender
	AADTenantID  *string `json:"aadTenantId"`
	Created      string  `json:"alertCreationTime"`
	FirstEvent   string  `json:"firstEventTime"`
	LastEvent    string  `json:"lastEventTime"`
	LastUpdate   string  `json:"lastUpdateTime"`
	MachineID    string  `json:"machineId"`
	ComputerName string  `json:"computerDnsName"`
	ThreatName   string  `json:"threatName"`
	RelatedUser  *struct {
		UserName   string `json:"userName"`
		DomainName string `json:"domainName"`
	} `json:"relatedUser"`

	// Graph
	TenantID      *string `json:"tenantId"`
	CreatedDT     string  `json:"createdDateTime"`
	FirstActDT    string  `json:"firstActivityDateTime"`
	LastActDT     string  `json:"lastActivityDateTime"`
	LastUpdateDT  string  `json:"lastUpdateDateTime"`
	Recommended   string  `json:"recommendedActions"`
	AlertWebURL   string  `json:"alertWebUrl"`
	ThreatDisplay string  `json:"threatDisplayName"`
}

type wireFile struct {
	SHA1     string `json:"sha1"`
	SHA256   string `json:"sha256"`
	FileName string `json:"fileName"`
	FilePath string `json:"filePath"`
}

type wireUser struct {
	AccountName string `json:"accountName"`
	DomainName  string `json:"domainName"`
	UserSid     string `json:"userSid"`
	AADUserID   string `json:"azureAdUserId"`
	UPN         string `json:"userPrincipalName"`
}

// wireEvidence is the union of Defender's flat evidence (entityType) and
// Graph's typed evidence (@odata.type).
type wireEvidence struct {
	EntityType string `json:"entityType"`
	ODataType  string `json:"@odata.type"`
	// Defender flat fields (Graph shares ipAddress, url, registry*).
	SHA1         string `json:"sha1"`
	SHA256       string `json:"sha256"`
	FileName     string `json:"fileName"`
	FilePath     string `json:"filePath"`
	CommandLine  string `json:"processCommandLine"`
	IPAddress    string `json:"ipAddress"`
	URL          string `json:"url"`
	RegistryKey  string `json:"registryKey"`
	RegistryHive string `json:"registryHive"`
	AccountName  string `json:"accountName"`
	DomainName   string `json:"domainName"`
	UserSid      string `json:"userSid"`
	AADUserID    string `json:"aadUserId"`
	UPN          string `json:"userPrincipalName"`
	// Graph typed fields.
	MdeDeviceID   string     `json:"mdeDeviceId"`
	DeviceDNSName string     `json:"deviceDnsName"`
	FileDetails   *wireFile  `json:"fileDetails"`
	ImageFile     *wireFile  `json:"imageFile"`
	UserAccount   *wireUser  `json:"userAccount"`
	Roles         stringList `json:"roles"`
}

// isTechnique reports whether t looks like T1234 or T1234.001.
func isTechnique(t string) bool {
	if len(t) != 5 && len(t) != 9 || t[0] != 'T' || !allDigits(t[1:5]) {
		return false
	}
	return len(t) == 5 || t[5] == '.' && allDigits(t[6:])
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// isHex reports whether s is lower-case hex of length n.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ItemError is why one item was rejected.
type ItemError struct {
	ID     string
	Reason string
	// Tenant is set once the item's tenant was read, whatever is wrong
	// with the item after that; Org is the tenant's org ("" when no org
	// lists it). An org's token is refused by scope (ScopeError) for an
	// item of any other tenant before anything else is said of the item,
	// so that its answer cannot tell another customer's tenant from an
	// unknown one.
	Tenant, Org string
}

func (e *ItemError) Error() string { return e.Reason }

// normalize decodes one item and turns it into an Alert. tenants maps a
// tenant id to its org.
func normalize(raw []byte, tenants map[string]string) (*Alert, Source, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		kind := "nothing"
		if len(t) > 0 {
			kind = "a JSON " + jsonKind(t[0])
		}
		return nil, "", &ItemError{Reason: "expected an alert object, got " + kind}
	}
	var w wireAlert
	if !decodeWire(raw, &w) {
		w = wireAlert{}
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, "", unmarshalError(err)
		}
	}
	return normalizeWire(&w, tenants)
}

// unmarshalError is why encoding/json could not decode an item.
func unmarshalError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &ItemError{Reason: fmt.Sprintf("field %q: expected %s, got %s", te.Field, te.Type, te.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &ItemError{Reason: fmt.Sprintf("malformed JSON at byte %d of the item: %v", se.Offset, se)}
	}
	return &ItemError{Reason: "not an alert object: " + err.Error()}
}

// normalizeWire turns a decoded item into an Alert.
func normalizeWire(wp *wireAlert, tenants map[string]string) (*Alert, Source, error) {
	w := *wp
	src := SourceGraph
	switch {
	case w.AADTenantID != nil || w.Created != "" || w.MachineID != "":
		src = SourceDefender
	case w.TenantID != nil || w.CreatedDT != "" || strings.Contains(w.ODataType, "security.alert"):
		src = SourceGraph
	default:
		return nil, "", &ItemError{ID: clip(w.ID, maxIDLen), Reason: "neither a Defender alert (aadTenantId, alertCreationTime) nor a Graph alerts_v2 alert (tenantId, createdDateTime)"}
	}
	a := &Alert{Source: src}
	a.ID = clip(strings.TrimSpace(w.ID), maxIDLen)
	if a.ID == "" {
		return nil, src, &ItemError{Reason: "missing alert id"}
	}
	var tenant string
	if src == SourceDefender {
		tenant = deref(w.AADTenantID)
	} else {
		tenant = deref(w.TenantID)
	}
	tenant = strings.ToLower(strings.TrimSpace(clip(tenant, maxShortLen)))
	if tenant == "" {
		return nil, src, &ItemError{ID: a.ID, Reason: "missing tenant id (aadTenantId / tenantId)"}
	}
	org, ok := tenants[tenant]
	if !ok {
		return nil, src, &ItemError{ID: a.ID, Tenant: tenant, Reason: fmt.Sprintf("unknown tenant %q: no org in the config lists it", tenant)}
	}
	a.Tenant, a.Org = tenant, org
	fail := func(reason string) error { return &ItemError{ID: a.ID, Tenant: tenant, Org: org, Reason: reason} }
	sev, ok := parseSeverity(w.Severity)
	if !ok {
		return nil, src, fail(fmt.Sprintf("unknown severity %q", clip(w.Severity, maxShortLen)))
	}
	a.Severity = sev
	a.ProviderIncident = clip(strings.Trim(string(w.Incident), `"`), maxShortLen)
	if a.ProviderIncident == "null" {
		a.ProviderIncident = ""
	}
	a.Title = clip(w.Title, maxTitleLen)
	a.Description = clip(w.Desc, maxDescriptionLen)
	a.Recommended = clip(w.Recommended, maxRecommendedLen)
	a.Status = normKey(clip(w.Status, maxShortLen))
	a.Classification = normKey(clip(w.Class, maxShortLen))
	a.Determination = normKey(clip(w.Determ, maxShortLen))
	a.Category = clip(w.Category, maxShortLen)
	a.Tactic = tacticForCategory(a.Category)
	a.DetectionSource = normalizeDetectionSource(w.DetSource)
	a.Expert = a.DetectionSource == DetectionExperts
	a.ThreatFamily = clip(firstNonEmpty(w.Family, w.ThreatDisplay, w.ThreatName), maxShortLen)
	a.WebURL = clip(w.AlertWebURL, maxValueLen)
	for _, t := range w.Mitre {
		t = strings.ToUpper(strings.TrimSpace(t))
		if isTechnique(t) && len(a.Techniques) < maxTechniques && !contains(a.Techniques, t) {
			a.Techniques = append(a.Techniques, t)
		}
	}
	var err error
	times := []struct {
		name string
		dst  *time.Time
		raw  string
	}{
		{"created", &a.Created, firstNonEmpty(w.Created, w.CreatedDT)},
		{"first activity", &a.FirstActivity, firstNonEmpty(w.FirstEvent, w.FirstActDT)},
		{"last activity", &a.LastActivity, firstNonEmpty(w.LastEvent, w.LastActDT)},
		{"last update", &a.LastUpdate, firstNonEmpty(w.LastUpdate, w.LastUpdateDT)},
	}
	for _, t := range times {
		if t.raw == "" {
			continue
		}
		if *t.dst, err = ParseTime(t.raw); err != nil {
			return nil, src, fail(fmt.Sprintf("%s time: %v", t.name, err))
		}
	}
	if a.Created.IsZero() && a.FirstActivity.IsZero() {
		return nil, src, fail("no creation or activity time")
	}
	if a.FirstActivity.IsZero() {
		a.FirstActivity = a.Created
	}
	if a.LastActivity.IsZero() {
		a.LastActivity = a.FirstActivity
	}
	if a.LastUpdate.IsZero() {
		a.LastUpdate = a.Created
	}
	a.extractEntities(&w)
	// Hashed here, on the decoding goroutines, not in the transaction.
	a.hash = alertHash(a)
	a.evidence = evidenceJSON(a)
	return a, src, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (a *Alert) extractEntities(w *wireAlert) {
	a.Entities = make([]Entity, 0, min(len(w.Evidence)+2, maxEntities))
	add := func(e Entity) {
		if e.Value == "" || len(a.Entities) >= maxEntities {
			return
		}
		// A scan, not a map: there are a few, at most maxEntities.
		for i := range a.Entities {
			if o := &a.Entities[i]; o.Kind == e.Kind && o.Value == e.Value {
				if o.Display == "" {
					o.Display = e.Display
				}
				if o.Alt == "" {
					o.Alt = e.Alt
				}
				return
			}
		}
		a.Entities = append(a.Entities, e)
	}
	if d := deviceEntity(w.MachineID, w.ComputerName); d.Value != "" {
		add(d)
		a.DeviceID, a.DeviceName = d.Value, d.Display
	}
	if w.RelatedUser != nil {
		add(userEntity(wireUser{AccountName: w.RelatedUser.UserName, DomainName: w.RelatedUser.DomainName}))
	}
	for i := range w.Evidence {
		ev := &w.Evidence[i]
		typ := normKey(ev.EntityType)
		if typ == "" {
			typ = normKey(ev.ODataType)
			typ = strings.TrimPrefix(typ, "microsoftgraphsecurity")
			typ = strings.TrimSuffix(typ, "evidence")
		}
		switch typ {
		case "device", "machine":
			d := deviceEntity(ev.MdeDeviceID, ev.DeviceDNSName)
			add(d)
			// The alert's device: the first one, or the one marked compromised.
			if d.Value != "" && (a.DeviceID == "" || contains(ev.Roles, "compromised")) {
				a.DeviceID, a.DeviceName = d.Value, d.Display
			}
		case "user":
			if ev.UserAccount != nil {
				add(userEntity(*ev.UserAccount))
			} else {
				add(userEntity(wireUser{AccountName: ev.AccountName, DomainName: ev.DomainName, UserSid: ev.UserSid, AADUserID: ev.AADUserID, UPN: ev.UPN}))
			}
		case "file":
			if ev.FileDetails != nil {
				add(fileEntity(*ev.FileDetails))
			} else {
				add(fileEntity(wireFile{SHA1: ev.SHA1, SHA256: ev.SHA256, FileName: ev.FileName, FilePath: ev.FilePath}))
			}
		case "process":
			if ev.ImageFile != nil {
				add(fileEntity(*ev.ImageFile))
			} else {
				add(fileEntity(wireFile{SHA1: ev.SHA1, SHA256: ev.SHA256, FileName: ev.FileName, FilePath: ev.FilePath}))
			}
			if cl := clip(strings.TrimSpace(ev.CommandLine), maxValueLen); cl != "" {
				add(Entity{Kind: EntityProcess, Value: cl, Display: cl})
			}
			if ev.UserAccount != nil {
				add(userEntity(*ev.UserAccount))
			}
		case "ip":
			add(ipEntity(ev.IPAddress))
		case "url":
			add(urlEntity(ev.URL))
		case "registry", "registrykey", "registryvalue":
			k := clip(strings.Trim(ev.RegistryHive+`\`+ev.RegistryKey, `\`), maxValueLen)
			add(Entity{Kind: EntityRegistry, Value: strings.ToLower(k), Display: k})
		default:
			// Mailboxes, cloud apps, ... : keep what the common fields say.
			add(ipEntity(ev.IPAddress))
			add(urlEntity(ev.URL))
		}
		if ev.MdeDeviceID != "" && typ != "device" {
			add(deviceEntity(ev.MdeDeviceID, ""))
		}
	}
}

func deviceEntity(id, name string) Entity {
	id = strings.ToLower(visible(clip(id, maxShortLen)))
	name = visible(clip(name, maxShortLen))
	switch {
	case id != "":
		return Entity{Kind: EntityDevice, Value: id, Display: firstNonEmpty(name, id), JoinKey: true}
	case name != "":
		return Entity{Kind: EntityDevice, Value: "name:" + strings.ToLower(name), Display: name, JoinKey: true}
	}
	return Entity{}
}

// visible is s without control and invisible format characters (and line
// or paragraph separators), trimmed: an id made only of them (a hostile
// or broken alert) is no id, and would otherwise join every alert that
// sends the same one.
func visible(s string) string {
	bad := func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
	}
	if strings.ContainsFunc(s, bad) {
		s = strings.Map(func(r rune) rune {
			if bad(r) {
				return -1
			}
			return r
		}, s)
	}
	return strings.TrimSpace(s)
}

// wellKnownAccounts never correlate: every Windows machine has them.
var wellKnownAccounts = map[string]bool{
	"s-1-5-18": true, "s-1-5-19": true, "s-1-5-20": true,
	"system": true, "localsystem": true, "localservice": true, "networkservice": true,
	"ntauthoritysystem": true, "ntauthoritylocalservice": true, "ntauthoritynetworkservice": true,
	"administrator": true, "guest": true,
}

func userEntity(u wireUser) Entity {
	acct := clip(strings.TrimSpace(u.AccountName), maxShortLen)
	dom := clip(strings.TrimSpace(u.DomainName), maxShortLen)
	upn := strings.ToLower(clip(strings.TrimSpace(u.UPN), maxShortLen))
	sid := strings.ToUpper(clip(strings.TrimSpace(u.UserSid), maxShortLen))
	aad := strings.ToLower(clip(strings.TrimSpace(u.AADUserID), maxShortLen))
	display := upn
	if display == "" && acct != "" {
		display = acct
		if dom != "" {
			display = dom + `\` + acct
		}
	}
	e := Entity{Kind: EntityUser, Display: display, JoinKey: true}
	switch {
	case aad != "":
		e.Value = "aad:" + aad
	case sid != "":
		e.Value = "sid:" + strings.ToLower(sid)
	case upn != "":
		e.Value = "upn:" + upn
	case acct != "":
		e.Value = "acct:" + strings.ToLower(display)
	default:
		return Entity{}
	}
	if e.Display == "" {
		e.Display = strings.SplitN(e.Value, ":", 2)[1]
	}
	if wellKnownAccounts[strings.ToLower(sid)] || wellKnownAccounts[normKey(acct)] || wellKnownAccounts[normKey(dom+acct)] {
		e.JoinKey = false
	}
	return e
}

func fileEntity(f wireFile) Entity {
	s256 := strings.ToLower(strings.TrimSpace(f.SHA256))
	s1 := strings.ToLower(strings.TrimSpace(f.SHA1))
	if !isHex(s256, 64) {
		s256 = ""
	}
	if !isHex(s1, 40) {
		s1 = ""
	}
	name := clip(strings.TrimSpace(f.FileName), maxValueLen/2)
	dir := clip(strings.TrimRight(strings.TrimSpace(f.FilePath), `\/`), maxValueLen/2)
	display := name
	if dir != "" && name != "" {
		display = dir + `\` + name
	} else if dir != "" {
		display = dir
	}
	e := Entity{Kind: EntityFile, Display: display, JoinKey: true}
	switch {
	case s256 != "":
		e.Value, e.Alt = s256, s1
	case s1 != "":
		e.Value = s1
	case display != "":
		// No hash: keep it for scope, but a name alone never correlates.
		e.Value, e.JoinKey = "path:"+strings.ToLower(display), false
	default:
		return Entity{}
	}
	if osBinary(dir) {
		e.JoinKey = false
	}
	return e
}

// osBinary reports whether a path is an operating-system directory whose
// binaries (rundll32, services, ...) are on every machine.
func osBinary(dir string) bool {
	for _, p := range [...]string{`c:\windows\system32`, `c:\windows\syswow64`, `c:\windows\winsxs`, `%systemroot%\system32`} {
		if len(dir) >= len(p) && pathPrefixFold(dir[:len(p)], p) && (len(dir) == len(p) || dir[len(p)] == '\\' || dir[len(p)] == '/') {
			return true
		}
	}
	return false
}

// pathPrefixFold reports whether s equals the lower-case path p, ignoring
// ASCII case and taking a slash for a backslash (p is ASCII: no other
// character folds to one of its bytes).
func pathPrefixFold(s, p string) bool {
	for i := 0; i < len(p); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '/' {
			c = '\\'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}

func ipEntity(s string) Entity {
	s = strings.TrimSpace(clip(s, maxShortLen))
	if s == "" {
		return Entity{}
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return Entity{}
	}
	ip = ip.Unmap()
	e := Entity{Kind: EntityIP, Value: ip.String(), Display: ip.String(), JoinKey: true}
	if ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		e.JoinKey = false
	}
	return e
}

func urlEntity(s string) Entity {
	s = strings.TrimSpace(clip(s, maxValueLen))
	if s == "" {
		return Entity{}
	}
	return Entity{Kind: EntityURL, Value: strings.ToLower(s), Display: s, JoinKey: true}
}

// ParseTime parses an ISO 8601 time with fractional seconds of any
// precision (digits beyond nanoseconds are dropped) and an optional zone
// (none means UTC).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return time.Time{}, fmt.Errorf("%q is too long for a time", s[:64])
	}
	// Cut fractional digits beyond nine.
	if i := strings.IndexByte(s, '.'); i > 0 {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i-1 > 9 {
			s = s[:i+10] + s[j:]
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			// PostgreSQL stores years 1 to 9999 only (year 0 does not
			// exist there): anything else would fail the whole batch.
			if y := t.UTC().Year(); y < 1 || y > 9999 {
				return time.Time{}, fmt.Errorf("%q is out of the years 1 to 9999", s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

// clipRunes is clip counting characters, not bytes: a person's words,
// which the chat forms count in characters, keep n of them in any script.
func clipRunes(s string, n int) string {
	s = clip(s, len(s))
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// clip makes s safe to store: valid UTF-8, no NUL (PostgreSQL text refuses
// it), at most n bytes cut on a rune boundary.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// evidenceList is an alert's evidence, at most maxEvidence entries kept.
type evidenceList []wireEvidence

// UnmarshalJSON decodes the list entry by entry: entries past maxEvidence
// are checked and dropped, not kept.
func (l *evidenceList) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*l = nil
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("evidence is not a list")
	}
	out := evidenceList{}
	for dec.More() {
		if len(out) < maxEvidence {
			var e wireEvidence
			if err := dec.Decode(&e); err != nil {
				return err
			}
			out = append(out, e)
			continue
		}
		var skip struct{}
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*l = out
	return nil
}

// stringList is a list of strings in an alert, at most maxListStrings kept.
type stringList []string

// UnmarshalJSON decodes the list string by string: strings past
// maxListStrings are checked and dropped, not kept.
func (l *stringList) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*l = nil
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("not a list of strings")
	}
	out := stringList{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok && tok != nil { // null is "", as encoding/json has it
			return fmt.Errorf("not a list of strings")
		}
		if len(out) < maxListStrings {
			out = append(out, s)
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*l = out
	return nil
}
