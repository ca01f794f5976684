// Package plural writes counts as people read them: "1 alert", "2 alerts",
// never "1 alert(s)". It is a leaf package, shared by every package that
// words a count for a person (chat messages, cards, logs meant for
// operators).
package plural

import "strconv"

// Count is n followed by one (when n is 1) or many: Count(1, "alert",
// "alerts") is "1 alert", Count(0, "entry", "entries") "0 entries".
func Count(n int, one, many string) string {
	return strconv.Itoa(n) + " " + Word(n, one, many)
}

// Word is one when n is 1 (or -1), many otherwise, for sentences that put
// the count elsewhere: "3 of 4 " + Word(4, "alert", "alerts").
func Word(n int, one, many string) string {
	if n == 1 || n == -1 {
		return one
	}
	return many
}

// S is Count for the regular English plurals that add an s: S(1, "device")
// is "1 device", S(2, "device") "2 devices".
func S(n int, one string) string { return Count(n, one, one+"s") }
