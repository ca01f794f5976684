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
