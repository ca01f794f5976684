package hunting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// encodeNames must round-trip any name through a text[] literal.
func TestEncodeNamesRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, names := range [][]string{
		nil, {}, {""}, {"ws01.contoso.local"}, {"NULL", "null", " spaced ", "a,b", `{x}`, `q"uote`, `back\slash`, `\"`, "tab\there", "ünïcode ☃"},
	} {
		var got []string
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT $1::text::text[]`, encodeNames(names)).Scan(&got))
		if names == nil {
			names = []string{}
		}
		require.Equal(t, names, got)
	}
}

// TestInvisibleDeviceIDIsNoID: a device id of control or invisible
// characters only is no id (the name stands in, else there is no device):
// kept, it rendered as nothing on the card and joined every alert that sent
// the same one.
func TestInvisibleDeviceIDIsNoID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"\u0001", "\u200b", "\u00ad", " \u200b "} {
		require.Equal(t, Entity{}, deviceEntity(id, ""), "%q", id)
		e := deviceEntity(id, "WS-01")
		require.Equal(t, "name:ws-01", e.Value, "%q: the name stands in", id)
	}
	require.Equal(t, "4a1b", deviceEntity("4A1B\u200b", "").Value)
}
