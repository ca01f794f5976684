package hunting

import (
	"cmp"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeWire is a fast path for json.Unmarshal(raw, w): one pass over the
// bytes, no reflection, no validation pass of its own. It handles the
// common case only, and reports false on anything else (a type that is not
// what the field expects, a key matching a field only case-insensitively or
// written with escapes, a repeated field, invalid UTF-8, any syntax error);
// the caller then runs encoding/json, which gives the same result on what
// the fast path accepts (fastjson_test.go checks it) and the exact error on
// the rest. w must be zero. A repeated object or array field fails too:
// encoding/json merges the second into the first.
func decodeWire(raw []byte, w *wireAlert) bool {
	d := fastDec{b: raw}
	d.ws()
	ok := d.object(func(key []byte) bool {
		switch string(key) {
		case "@odata.type":
			return d.str(&w.ODataType)
		case "id":
			return d.str(&w.ID)
		case "incidentId":
			start := d.i
			if !d.skip() {
				return false
			}
			w.Incident = append([]byte(nil), d.b[start:d.i]...)
			return true
		case "severity":
			return d.str(&w.Severity)
		case "status":
			return d.str(&w.Status)
		case "classification":
			return d.str(&w.Class)
		case "determination":
			return d.str(&w.Determ)
		case "detectionSource":
			return d.str(&w.DetSource)
		case "category":
			return d.str(&w.Category)
		case "threatFamilyName":
			return d.str(&w.Family)
		case "title":
			return d.str(&w.Title)
		case "description":
			return d.str(&w.Desc)
		case "mitreTechniques":
			return d.strs(&w.Mitre)
		case "evidence":
			return d.evidence(&w.Evidence)
		case "aadTenantId":
			return d.strPtr(&w.AADTenantID)
		case "alertCreationTime":
			return d.str(&w.Created)
		case "firstEventTime":
			return d.str(&w.FirstEvent)
		case "lastEventTime":
			return d.str(&w.LastEvent)
		case "lastUpdateTime":
			return d.str(&w.LastUpdate)
		case "machineId":
			return d.str(&w.MachineID)
		case "computerDnsName":
			return d.str(&w.ComputerName)
		case "threatName":
			return d.str(&w.ThreatName)
		case "relatedUser":
			if w.RelatedUser != nil {
				return false // repeated: encoding/json merges
			}
			if d.null() {
				w.RelatedUser = nil
				return true
			}
			u := &struct {
				UserName   string `json:"userName"`
				DomainName string `json:"domainName"`
			}{}
			w.RelatedUser = u
			return d.object(func(k []byte) bool {
				switch string(k) {
				case "userName":
					return d.str(&u.UserName)
				case "domainName":
					return d.str(&u.DomainName)
				}
				return d.unknown(k, relatedUserKeys...)
			})
		case "tenantId":
			return d.strPtr(&w.TenantID)
		case "createdDateTime":
			return d.str(&w.CreatedDT)
		case "firstActivityDateTime":
			return d.str(&w.FirstActDT)
		case "lastActivityDateTime":
			return d.str(&w.LastActDT)
		case "lastUpdateDateTime":
			return d.str(&w.LastUpdateDT)
		case "recommendedActions":
			return d.str(&w.Recommended)
		case "alertWebUrl":
			return d.str(&w.AlertWebURL)
		case "threatDisplayName":
			return d.str(&w.ThreatDisplay)
		}
		return d.unknown(key, wireAlertKeys...)
	})
	if !ok {
		return false
	}
	d.ws()
	return d.i == len(d.b)
}

// Lower-cased field names, to send a key that matches one only
// case-insensitively (encoding/json accepts it) to encoding/json. They are
// read from the structs' json tags, so a new field needs no entry here; a
// field the switches above miss is caught by TestDecodeWireDecodesEveryField.
var (
	wireAlertKeys    = jsonKeys(reflect.TypeFor[wireAlert]())
	wireEvidenceKeys = jsonKeys(reflect.TypeFor[wireEvidence]())
	wireFileKeys     = jsonKeys(reflect.TypeFor[wireFile]())
	wireUserKeys     = jsonKeys(reflect.TypeFor[wireUser]())
	relatedUserKeys  = jsonKeys(reflect.TypeFor[wireAlert]().Field(fieldIndex(reflect.TypeFor[wireAlert](), "RelatedUser")).Type.Elem())
)

// jsonKeys lists the lower-cased json names of a struct's fields.
func jsonKeys(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		out = append(out, strings.ToLower(cmp.Or(name, f.Name)))
	}
	return out
}

// fieldIndex is the index of the named field of struct type t.
func fieldIndex(t reflect.Type, name string) int {
	f, ok := t.FieldByName(name)
	if !ok || len(f.Index) != 1 {
		panic("hunting: no field " + name + " in " + t.String())
	}
	return f.Index[0]
}

func (d *fastDec) evidence(dst *evidenceList) bool {
	if *dst != nil {
		return false
	}
	if d.null() {
		*dst = nil
		return true
	}
	if !d.lit('[') {
		return false
	}
	out := make(evidenceList, 0, 8)
	var spare wireEvidence // entries past maxEvidence: checked, not kept
	d.ws()
	if d.lit(']') {
		*dst = out
		return true
	}
	for {
		e := &spare
		if len(out) < maxEvidence {
			out = append(out, wireEvidence{})
			e = &out[len(out)-1]
		} else {
			spare = wireEvidence{}
		}
		if !d.object(func(k []byte) bool { return d.evidenceField(k, e) }) {
			return false
		}
		d.ws()
		if d.lit(']') {
			*dst = out
			return true
		}
		if !d.lit(',') {
			return false
		}
		d.ws()
	}
}

func (d *fastDec) evidenceField(k []byte, e *wireEvidence) bool {
	switch string(k) {
	case "entityType":
		return d.str(&e.EntityType)
	case "@odata.type":
		return d.str(&e.ODataType)
	case "sha1":
		return d.str(&e.SHA1)
	case "sha256":
		return d.str(&e.SHA256)
	case "fileName":
		return d.str(&e.FileName)
	case "filePath":
		return d.str(&e.FilePath)
	case "processCommandLine":
		return d.str(&e.CommandLine)
	case "ipAddress":
		return d.str(&e.IPAddress)
	case "url":
		return d.str(&e.URL)
	case "registryKey":
		return d.str(&e.RegistryKey)
	case "registryHive":
		return d.str(&e.RegistryHive)
	case "accountName":
		return d.str(&e.AccountName)
	case "domainName":
		return d.str(&e.DomainName)
	case "userSid":
		return d.str(&e.UserSid)
	case "aadUserId":
		return d.str(&e.AADUserID)
	case "userPrincipalName":
		return d.str(&e.UPN)
	case "mdeDeviceId":
		return d.str(&e.MdeDeviceID)
	case "deviceDnsName":
		return d.str(&e.DeviceDNSName)
	case "fileDetails":
		return d.file(&e.FileDetails)
	case "imageFile":
		return d.file(&e.ImageFile)
	case "userAccount":
		if e.UserAccount != nil {
			return false
		}
		if d.null() {
			e.UserAccount = nil
			return true
		}
		u := &wireUser{}
		e.UserAccount = u
		return d.object(func(k []byte) bool {
			switch string(k) {
			case "accountName":
				return d.str(&u.AccountName)
			case "domainName":
				return d.str(&u.DomainName)
			case "userSid":
				return d.str(&u.UserSid)
			case "azureAdUserId":
				return d.str(&u.AADUserID)
			case "userPrincipalName":
				return d.str(&u.UPN)
			}
			return d.unknown(k, wireUserKeys...)
		})
	case "roles":
		return d.strs(&e.Roles)
	}
	return d.unknown(k, wireEvidenceKeys...)
}

func (d *fastDec) file(dst **wireFile) bool {
	if *dst != nil {
		return false
	}
	if d.null() {
		*dst = nil
		return true
	}
	f := &wireFile{}
	*dst = f
	return d.object(func(k []byte) bool {
		switch string(k) {
		case "sha1":
			return d.str(&f.SHA1)
		case "sha256":
			return d.str(&f.SHA256)
		case "fileName":
			return d.str(&f.FileName)
		case "filePath":
			return d.str(&f.FilePath)
		}
		return d.unknown(k, wireFileKeys...)
	})
}

type fastDec struct {
	b     []byte
	i     int
	depth int
}

// maxFastDepth bounds nesting on the fast path (it recurses); deeper input
// goes to encoding/json, which has its own limit.
const maxFastDepth = 200

func (d *fastDec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// lit consumes c if it is next.
func (d *fastDec) lit(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *fastDec) word(w string) bool {
	if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
		d.i += len(w)
		return true
	}
	return false
}

// null consumes a null literal if it is next.
func (d *fastDec) null() bool { return d.word("null") }

// object parses an object, calling field for each key with the decoder
// positioned on the value.
func (d *fastDec) object(field func(key []byte) bool) bool {
	if !d.lit('{') {
		return false
	}
	if d.depth++; d.depth > maxFastDepth {
		return false
	}
	defer func() { d.depth-- }()
	d.ws()
	if d.lit('}') {
		return true
	}
	for {
		key, ok := d.rawKey()
		if !ok {
			return false
		}
		d.ws()
		if !d.lit(':') {
			return false
		}
		d.ws()
		if !field(key) {
			return false
		}
		d.ws()
		if d.lit('}') {
			return true
		}
		if !d.lit(',') {
			return false
		}
		d.ws()
	}
}

// rawKey reads a key of plain ASCII; others go to encoding/json.
func (d *fastDec) rawKey() ([]byte, bool) {
	if !d.lit('"') {
		return nil, false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			// Escapes, and non-ASCII (which may fold to a field name).
			return nil, false
		}
		d.i++
	}
	return nil, false
}

// unknown skips the value of a key that is not a field, unless the key
// names one case-insensitively.
func (d *fastDec) unknown(key []byte, fields ...string) bool {
	for _, f := range fields {
		if len(f) == len(key) && strings.EqualFold(f, string(key)) {
			return false
		}
	}
	return d.skip()
}

// str reads a string or null (which leaves dst as it is, as encoding/json does).
func (d *fastDec) str(dst *string) bool {
	if d.null() {
		return true
	}
	s, ok := d.string()
	if ok {
		*dst = s
	}
	return ok
}

func (d *fastDec) strPtr(dst **string) bool {
	if d.null() {
		*dst = nil
		return true
	}
	s, ok := d.string()
	if ok {
		*dst = &s
	}
	return ok
}

func (d *fastDec) strs(dst *stringList) bool {
	if *dst != nil {
		return false
	}
	if d.null() {
		*dst = nil
		return true
	}
	if !d.lit('[') {
		return false
	}
	out := stringList{}
	d.ws()
	if d.lit(']') {
		*dst = out
		return true
	}
	for {
		s, ok := d.string()
		if !ok {
			return false
		}
		if len(out) < maxListStrings {
			out = append(out, s)
		}
		d.ws()
		if d.lit(']') {
			*dst = out
			return true
		}
		if !d.lit(',') {
			return false
		}
		d.ws()
	}
}

// string reads a JSON string. Invalid UTF-8 fails (encoding/json replaces
// it), as do raw control characters (a syntax error).
func (d *fastDec) string() (string, bool) {
	if !d.lit('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(d.b[start : d.i-1]), true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			d.i += n
		}
	}
	return "", false
}

// escaped finishes a string that has escapes, from its start.
func (d *fastDec) escaped(start int) (string, bool) {
	out := make([]byte, 0, d.i-start+32)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), true
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return "", false
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", false
				}
				if utf16.IsSurrogate(r) {
					// A valid pair makes one rune; anything else goes to
					// encoding/json, which has its own rules for it.
					if !d.word(`\u`) {
						return "", false
					}
					r2, ok := d.hex4()
					if !ok {
						return "", false
					}
					r = utf16.DecodeRune(r, r2)
					if r == utf8.RuneError {
						return "", false
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			out = append(out, d.b[d.i:d.i+n]...)
			d.i += n
		}
	}
	return "", false
}

func (d *fastDec) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}

// skip passes over one value of any kind, checking its syntax.
func (d *fastDec) skip() bool {
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, ok := d.string()
		return ok
	case c == '{':
		return d.object(func([]byte) bool { return d.skip() })
	case c == '[':
		d.i++
		if d.depth++; d.depth > maxFastDepth {
			return false
		}
		defer func() { d.depth-- }()
		d.ws()
		if d.lit(']') {
			return true
		}
		for {
			if !d.skip() {
				return false
			}
			d.ws()
			if d.lit(']') {
				return true
			}
			if !d.lit(',') {
				return false
			}
			d.ws()
		}
	case c == 't':
		return d.word("true")
	case c == 'f':
		return d.word("false")
	case c == 'n':
		return d.word("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return false
}

// number passes over a number of JSON's grammar.
func (d *fastDec) number() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	d.lit('-')
	switch {
	case d.lit('0'):
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		digits()
	default:
		return false
	}
	if d.lit('.') && digits() == 0 {
		return false
	}
	if d.lit('e') || d.lit('E') {
		if !d.lit('+') {
			d.lit('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
