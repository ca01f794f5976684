package bot

import "testing"

// TestChatBefore: Slack ts and Discord snowflakes sort as the numbers
// they are, not as text.
func TestChatBefore(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1700000000.000100", "1700000000.000200", true},
		{"1700000000.000200", "1700000000.000100", false},
		{"1699999999.999999", "1700000000.000001", true},
		{"999999999999999999", "1000000000000000000", true}, // a snowflake gains a digit
		{"1000000000000000000", "999999999999999999", false},
		{"1100000000000000001", "1100000000000000001", false},
		{"r9", "r10", true},
	} {
		if got := chatBefore(c.a, c.b); got != c.want {
			t.Errorf("chatBefore(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
