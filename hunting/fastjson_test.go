package hunting

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// checkDecodeWire asserts that whenever the fast path accepts an item,
// encoding/json accepts it too and decodes the very same wireAlert.
func checkDecodeWire(t *testing.T, raw []byte) bool {
	t.Helper()
	var fast, std wireAlert
	ok := decodeWire(raw, &fast)
	err := json.Unmarshal(raw, &std)
	if ok {
		require.NoError(t, err, "fast path accepted what encoding/json rejects: %q", raw)
		require.True(t, reflect.DeepEqual(fast, std), "fast path differs from encoding/json on %q:\nfast %+v\nstd  %+v", raw, fast, std)
	}
	return ok
}

func TestDecodeWireMatchesEncodingJSON(t *testing.T) {
	var items [][]byte
	files, err := os.ReadDir(samplesDir)
	require.NoError(t, err)
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".json") {
			continue
		}
		body, err := os.ReadFile(filepath.Join(samplesDir, f.Name()))
		require.NoError(t, err)
		its, _, err := SplitPayload(body)
		if err != nil {
			continue
		}
		for _, it := range its {
			items = append(items, it)
		}
	}
	c := newCorpus(7, 100, 10)
	for _, r := range c.batch(300, t0) {
		items = append(items, r)
	}
	items = append(items,
		[]byte(`{"id":"a","aadTenantId":null,"evidence":null,"mitreTechniques":null,"relatedUser":null,"incidentId":null}`),
		[]byte(`{"id":"a\u00e9\ud83d\ude00\n\t\"\\\/","title":"caf\u00c9","evidence":[{},{"fileDetails":{"sha1":"x"},"userAccount":{"accountName":"a"}}]}`),
		[]byte(` {"id":"a","incidentId":12345,"x":[1,-2.5e3,true,false,null,{"a":[]}],"severity":"High"} `),
		[]byte(`{"ID":"a"}`), []byte(`{"id":"a","id":"b"}`), []byte(`{"evidence":[],"evidence":[{"sha1":"x"}]}`),
		[]byte(`{"id":1}`), []byte(`{"id":"\ud800"}`), []byte(`{"id":"a"} x`), []byte(`{"id":"a",}`), []byte(`{"id":"\x01"}`),
		[]byte("{\"id\":\"\xff\"}"), []byte(`{"mitreTechniques":["T1",2]}`), []byte(`{"x":01}`), []byte(`{"x":1.}`), []byte(`{"x":-}`),
		[]byte(`{"relatedUser":{"userName":"a"},"relatedUser":{"domainName":"b"}}`),
		[]byte(`{"x":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`}`),
		[]byte(`{"x":`+strings.Repeat(`{"a":`, 100000)+"1"+strings.Repeat("}", 100000)+`}`), []byte(`{"\u0069d":"a"}`), []byte(`{"ıd":"a"}`),
	)
	accepted := 0
	for _, raw := range items {
		if checkDecodeWire(t, raw) {
			accepted++
		}
	}
	t.Logf("fast path took %d of %d items", accepted, len(items))
	// Real payloads take the fast path.
	require.Greater(t, accepted, len(items)-25, "fast path accepted %d of %d", accepted, len(items))
	// Mutations: whatever the fast path accepts decodes as encoding/json does.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]:,"\\ u0aZ-1.eE` + "\x00\xff\t")
	deadline := time.Now().Add(2 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		raw := mutate(rng, items[rng.IntN(len(items))], alphabet)
		checkDecodeWire(t, raw)
	}
}

// SplitPayload's one-pass split gives what encoding/json gives.
func TestSplitFastMatchesEncodingJSON(t *testing.T) {
	var bodies [][]byte
	files, err := os.ReadDir(samplesDir)
	require.NoError(t, err)
	for _, f := range files {
		body, err := os.ReadFile(filepath.Join(samplesDir, f.Name()))
		require.NoError(t, err)
		bodies = append(bodies, body)
	}
	c := newCorpus(3, 50, 5)
	list := []byte(`{"value":[`)
	for i, r := range c.batch(50, t0) {
		if i > 0 {
			list = append(list, ",\n "...)
		}
		list = append(list, r...)
	}
	bodies = append(bodies, append(list, "]}"...),
		[]byte(`{"value":[]}`), []byte(`{"value":null}`), []byte(`{"Value":[{}]}`), []byte(`{"value":[{}],"value":[{},{}]}`),
		[]byte(`{"value":{}}`), []byte(`{"value":[`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`]}`), []byte(`{"x":1, "value" : [ {"a":1} , [2] , "s" ] , "@odata.context":"y"}`), []byte(`{"id":"a"}`))
	fast := 0
	check := func(body []byte) {
		// SplitPayload as a whole answers as the encoding/json path does.
		gotItems, gotList, gotErr := SplitPayload(body)
		wantItems, wantList, wantErr := []RawAlert(nil), false, error(nil)
		if b, err := parseOuter(body); err != nil {
			wantErr = err
		} else {
			wantItems, wantList, wantErr = splitStd(b)
		}
		if wantErr != nil {
			require.Error(t, gotErr, "%q", body)
			require.Equal(t, wantErr.Error(), gotErr.Error(), "%q", body)
		} else {
			require.NoError(t, gotErr, "%q", body)
			require.Equal(t, wantList, gotList, "%q", body)
			require.Equal(t, len(wantItems), len(gotItems), "%q", body)
			for i := range gotItems {
				require.Equal(t, string(wantItems[i]), string(gotItems[i]), "%q", body)
			}
		}
		b, err := parseOuter(body)
		if err != nil {
			return
		}
		items, list, ok := splitFast(b)
		stdItems, stdList, stdErr := splitStd(b)
		if !ok {
			return
		}
		fast++
		require.NoError(t, stdErr, "fast split accepted what encoding/json rejects: %q", b)
		require.Equal(t, stdList, list, "%q", b)
		require.Equal(t, len(stdItems), len(items), "%q", b)
		for i := range items {
			require.Equal(t, string(stdItems[i]), string(items[i]), "%q", b)
		}
	}
	for _, b := range bodies {
		check(b)
	}
	t.Logf("fast split took %d of %d bodies", fast, len(bodies))
	require.GreaterOrEqual(t, fast, len(files)+1)
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte(`{}[]:,"\\ uvV0aZ-1.eE` + "\x00\xff\t")
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		raw := mutate(rng, bodies[rng.IntN(len(bodies))], alphabet)
		check(raw)
	}
}

// mutate returns a copy of src with one to three bytes replaced, deleted or
// inserted from alphabet (never empty).
func mutate(rng *rand.Rand, src, alphabet []byte) []byte {
	raw := []byte(string(src))
	for range 1 + rng.IntN(3) {
		if len(raw) == 0 {
			raw = []byte("{")
		}
		i := rng.IntN(len(raw))
		switch rng.IntN(3) {
		case 0:
			raw[i] = alphabet[rng.IntN(len(alphabet))]
		case 1:
			raw = append(raw[:i], raw[i+1:]...)
		default:
			raw = append(raw[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, raw[i:]...)...)
		}
	}
	if len(raw) == 0 {
		raw = []byte("{")
	}
	return raw
}

// FuzzDecodeWire: whatever the fast decoder accepts, encoding/json accepts
// and decodes identically; and splitting a body never panics. The seeds run
// with every `go test`; fuzz longer with
// go test ./hunting/ -run '^$' -fuzz FuzzDecodeWire -fuzztime 60s
func FuzzDecodeWire(f *testing.F) {
	files, err := os.ReadDir(samplesDir)
	if err != nil {
		f.Fatalf("samples: %v", err)
	}
	for _, e := range files {
		body, err := os.ReadFile(filepath.Join(samplesDir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
		if its, _, err := SplitPayload(body); err == nil {
			for _, it := range its {
				f.Add([]byte(it))
			}
		}
	}
	f.Add([]byte(`{"id":"a\u00e9\ud83d\ude00","evidence":[{"fileDetails":{"sha1":"x"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeWire(t, raw)
		_, _, _ = SplitPayload(raw)
	})
}

// fieldDocs returns one JSON document per field reachable from struct type
// t (through nested structs, pointers and slices of them), each setting
// only that field to a sample value, and the field's path for messages.
func fieldDocs(t reflect.Type) (docs []map[string]any, paths []string) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		ft := f.Type
		wrap := func(v any) any { return v }
		switch {
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			ft = ft.Elem()
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			ft = ft.Elem()
			wrap = func(v any) any { return []any{v} }
		}
		if ft.Kind() == reflect.Struct {
			sub, subPaths := fieldDocs(ft)
			for i, d := range sub {
				docs = append(docs, map[string]any{name: wrap(d)})
				paths = append(paths, name+"."+subPaths[i])
			}
			continue
		}
		var v any
		switch {
		case ft == reflect.TypeFor[json.RawMessage]():
			v = 12345
		case ft.Kind() == reflect.String, ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.String:
			v = "sample-" + name
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			v = []string{"sample-" + name}
		default:
			panic("fieldDocs: no sample for " + ft.String() + "; teach the test and the fast decoder this type")
		}
		docs = append(docs, map[string]any{name: v})
		paths = append(paths, name)
	}
	return docs, paths
}

// TestDecodeWireDecodesEveryField: every json-tagged field of the wire
// structs is decoded by the fast path itself (not left to encoding/json),
// so a field added to a struct but missed in a switch of fastjson.go fails
// here instead of being silently dropped.
func TestDecodeWireDecodesEveryField(t *testing.T) {
	t.Parallel()
	docs, paths := fieldDocs(reflect.TypeFor[wireAlert]())
	require.Greater(t, len(docs), 50, "the walk found the fields")
	for i, d := range docs {
		raw, err := json.Marshal(d)
		require.NoError(t, err)
		var fast, std wireAlert
		require.True(t, decodeWire(raw, &fast), "field %s: the fast decoder did not take %s", paths[i], raw)
		require.NoError(t, json.Unmarshal(raw, &std))
		require.False(t, reflect.ValueOf(std).IsZero(), "field %s: encoding/json set nothing from %s", paths[i], raw)
		require.True(t, reflect.DeepEqual(fast, std), "field %s: fast %+v, encoding/json %+v", paths[i], fast, std)
	}
	for _, keys := range [][]string{wireAlertKeys, wireEvidenceKeys, wireFileKeys, wireUserKeys, relatedUserKeys} {
		require.NotEmpty(t, keys)
		for _, k := range keys {
			require.Equal(t, strings.ToLower(k), k)
		}
	}
	require.Contains(t, wireAlertKeys, "incidentid")
	require.Contains(t, wireEvidenceKeys, "@odata.type")
}

// TestEvidenceIsCapped: an item of empty evidence entries ("[{},{},…]")
// made memory grow by hundreds of bytes per 3 bytes sent: one 16 MiB item
// took 6 GB. Both decoders now keep maxEvidence entries and check, then
// drop, the rest; an entry that is not an object still refuses the item.
func TestEvidenceIsCapped(t *testing.T) {
	t.Parallel()
	many := `{"id":"cap","evidence":[` + strings.Repeat(`{},`, 10*maxEvidence) + `{"entityType":"Ip","ipAddress":"10.0.0.1"}]}`
	var fast wireAlert
	require.True(t, decodeWire([]byte(many), &fast), "the fast decoder takes it")
	require.Len(t, fast.Evidence, maxEvidence)
	var std wireAlert
	require.NoError(t, json.Unmarshal([]byte(many), &std))
	require.Len(t, std.Evidence, maxEvidence)
	require.Equal(t, fast.Evidence, std.Evidence)

	bad := `{"id":"cap","evidence":[` + strings.Repeat(`{},`, 2*maxEvidence) + `"not an entry"]}`
	require.False(t, decodeWire([]byte(bad), &wireAlert{}))
	require.Error(t, json.Unmarshal([]byte(bad), &wireAlert{}))
}

// TestStringListsAreCapped: techniques and an entity's roles keep at most
// maxListStrings strings in both decoders; the rest are checked, not kept
// (an item of empty strings cost 16 bytes of memory per 3 bytes sent).
func TestStringListsAreCapped(t *testing.T) {
	t.Parallel()
	many := `{"id":"cap","mitreTechniques":[` + strings.Repeat(`"",`, 10*maxListStrings) + `"T1059"],` +
		`"evidence":[{"entityType":"User","roles":[` + strings.Repeat(`"x",`, 10*maxListStrings) + `"y"]}]}`
	var fast wireAlert
	require.True(t, decodeWire([]byte(many), &fast), "the fast decoder takes it")
	require.Len(t, fast.Mitre, maxListStrings)
	require.Len(t, fast.Evidence[0].Roles, maxListStrings)
	var std wireAlert
	require.NoError(t, json.Unmarshal([]byte(many), &std))
	require.Equal(t, fast, std)

	for _, bad := range []string{
		`{"id":"cap","mitreTechniques":[` + strings.Repeat(`"",`, 2*maxListStrings) + `1]}`,
		`{"id":"cap","mitreTechniques":[` + strings.Repeat(`"",`, 2*maxListStrings) + `["T1059"]]}`,
	} {
		require.False(t, decodeWire([]byte(bad), &wireAlert{}))
		require.Error(t, json.Unmarshal([]byte(bad), &wireAlert{}))
	}
	var withNull wireAlert
	require.NoError(t, json.Unmarshal([]byte(`{"id":"n","mitreTechniques":["T1059",null]}`), &withNull))
	require.Equal(t, stringList{"T1059", ""}, withNull.Mitre, "null is an empty string, as before")
}

// TestRawControlCharactersCostTheirSize: real payloads carry raw tabs in
// strings, which are repaired (escaped); a tab takes two bytes, not six,
// and a body of other raw control characters that would grow past twice
// its size is refused as malformed, not repaired. A 16 MB body of them
// took 3.5 s and 756 MB to repair (fmt.Sprintf per byte, six bytes each).
func TestRawControlCharactersCostTheirSize(t *testing.T) {
	t.Parallel()
	tabs := []byte(`{"id":"da1","title":"` + strings.Repeat("\t", 1<<20) + `"}`)
	fixed := escapeControls(tabs)
	require.Len(t, fixed, len(tabs)+1<<20, "two bytes a tab")
	require.True(t, json.Valid(fixed))
	var v struct{ Title string }
	require.NoError(t, json.Unmarshal(fixed, &v))
	require.Equal(t, strings.Repeat("\t", 1<<20), v.Title)

	ctl := []byte(`{"id":"da1","title":"` + strings.Repeat("\x01", 1<<20) + `"}`)
	require.Equal(t, ctl, escapeControls(ctl), "six bytes each: past the bound, not repaired")
	_, _, err := SplitPayload(ctl)
	var se *SyntaxError
	require.ErrorAs(t, err, &se, "refused as malformed JSON")
	small := []byte(`{"id":"da1","title":"a` + "\x01\x1f" + `b"}`)
	require.Equal(t, `{"id":"da1","title":"a\u0001\u001fb"}`, string(escapeControls(small)))
}
