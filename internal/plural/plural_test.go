package plural_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/plural"
)

func TestCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want string
	}{
		{plural.S(1, "alert"), "1 alert"},
		{plural.S(2, "alert"), "2 alerts"},
		{plural.S(0, "device"), "0 devices"},
		{plural.Count(1, "entry", "entries"), "1 entry"},
		{plural.Count(7, "entry", "entries"), "7 entries"},
		{plural.Word(1, "user account", "user accounts"), "user account"},
		{plural.Word(3, "user account", "user accounts"), "user accounts"},
	} {
		require.Equal(t, tc.want, tc.got)
	}
}

func TestPercent(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		part, whole int
		want        string
	}{
		{199, 200, "99%"}, {200, 200, "100%"}, {0, 200, "0%"}, {1, 400, "1%"},
		{1, 8, "13%"}, {5, 8, "63%"}, {1, 2, "50%"}, {2, 3, "67%"}, {1, 3, "33%"}, {0, 0, "—"},
	} {
		require.Equal(t, c.want, plural.Percent(c.part, c.whole), "%d of %d", c.part, c.whole)
	}
}
