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
		[]byte(`{"relatedUser":{"userName":"a"},"relatedUser":{"domainName":"b"}}`), []byte(`{"\u0069d":"a"}`), []byte(`{"ıd":"a"}`),
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
		raw := []byte(string(items[rng.IntN(len(items))]))
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(raw))
			switch rng.IntN(3) {
			case 0:
				raw[i] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				raw = append(raw[:i], raw[i+1:]...)
			default:
				raw = append(raw[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, raw[i:]...)...)
			}
			if len(raw) == 0 {
				raw = []byte("{")
			}
		}
		checkDecodeWire(t, raw)
	}
}
