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

// Percent is part of whole as a whole percent, as a person reads a share:
// rounded to the nearest (halves up), except that only all of whole reads
// 100% and only none of it 0% (199 of 200 is 99%, 1 of 400 is 1%). A whole
// of 0 has no share: "—".
func Percent(part, whole int) string {
	if whole <= 0 {
		return "—"
	}
	p := (200*part + whole) / (2 * whole) // round(100*part/whole), halves up
	switch {
	case part > 0 && p == 0:
		p = 1
	case part < whole && p == 100:
		p = 99
	}
	return strconv.Itoa(p) + "%"
}
