package oncall_test

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the host has installed

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/oncall"
)

var (
	alice = oncall.Member{Platform: oncall.PlatformSlack, UserID: "U0ALICE"}
	bob   = oncall.Member{Platform: oncall.PlatformSlack, UserID: "U0BOB"}
	carol = oncall.Member{Platform: oncall.PlatformDiscord, UserID: "100000000000000003"}
	dave  = oncall.Member{Platform: oncall.PlatformSlack, UserID: "U0DAVE"}
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func mustHandover(t testing.TB, spec string) oncall.Handover {
	t.Helper()
	h, err := oncall.ParseHandover(spec)
	require.NoError(t, err)
	return h
}

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

func TestScheduleAt(t *testing.T) {
	t.Parallel()
	london := mustLoad(t, "Europe/London")
	newYork := mustLoad(t, "America/New_York")
	abc := []oncall.Member{alice, bob, carol}
	tests := []struct {
		name     string
		rotation []oncall.Member
		handover string
		loc      *time.Location
		epoch    time.Time
		at       time.Time
		// want
		slot         int64
		onCall, next oncall.Member
		since, until time.Time
	}{
		{
			name: "weekly: the reference Monday's hand-over starts slot 0", rotation: abc, handover: "Mon 09:00", loc: time.UTC,
			at: utc(2024, 1, 1, 9, 0), slot: 0, onCall: alice, next: bob,
			since: utc(2024, 1, 1, 9, 0), until: utc(2024, 1, 8, 9, 0),
		},
		{
			name: "weekly: a minute before the first hand-over is the slot before", rotation: abc, handover: "Mon 09:00", loc: time.UTC,
			at: utc(2024, 1, 1, 8, 59), slot: -1, onCall: carol, next: alice,
			since: utc(2023, 12, 25, 9, 0), until: utc(2024, 1, 1, 9, 0),
		},
		{
			name: "weekly: mid-week", rotation: abc, handover: "Mon 09:00", loc: time.UTC,
			at: utc(2024, 1, 10, 23, 0), slot: 1, onCall: bob, next: carol,
			since: utc(2024, 1, 8, 9, 0), until: utc(2024, 1, 15, 9, 0),
		},
		{
			name: "weekly: wraps around the rotation", rotation: abc, handover: "Mon 09:00", loc: time.UTC,
			at: utc(2024, 1, 22, 9, 0), slot: 3, onCall: alice, next: bob,
			since: utc(2024, 1, 22, 9, 0), until: utc(2024, 1, 29, 9, 0),
		},
		{
			// 2026-03-02 is a Monday, 113 weeks after 2024-01-01: 113 mod 3 = 2.
			name: "weekly: years later", rotation: abc, handover: "Mon 09:00", loc: time.UTC,
			at: utc(2026, 3, 4, 12, 0), slot: 113, onCall: carol, next: alice,
			since: utc(2026, 3, 2, 9, 0), until: utc(2026, 3, 9, 9, 0),
		},
		{
			name: "weekly on Sunday: slot 0 is the first Sunday on or after the reference", rotation: abc, handover: "Sun 18:30", loc: time.UTC,
			at: utc(2024, 1, 7, 18, 30), slot: 0, onCall: alice, next: bob,
			since: utc(2024, 1, 7, 18, 30), until: utc(2024, 1, 14, 18, 30),
		},
		{
			name: "weekly on Sunday: the Saturday before is slot -1", rotation: abc, handover: "Sun 18:30", loc: time.UTC,
			at: utc(2024, 1, 6, 12, 0), slot: -1, onCall: carol, next: alice,
			since: utc(2023, 12, 31, 18, 30), until: utc(2024, 1, 7, 18, 30),
		},
		{
			name: "daily", rotation: abc, handover: "daily 09:00", loc: time.UTC,
			at: utc(2024, 1, 3, 8, 0), slot: 1, onCall: bob, next: carol,
			since: utc(2024, 1, 2, 9, 0), until: utc(2024, 1, 3, 9, 0),
		},
		{
			name: "daily at midnight", rotation: abc, handover: "daily 00:00", loc: time.UTC,
			at: utc(2024, 1, 3, 0, 0), slot: 2, onCall: carol, next: alice,
			since: utc(2024, 1, 3, 0, 0), until: utc(2024, 1, 4, 0, 0),
		},
		{
			name: "one member is always on call and next", rotation: []oncall.Member{alice}, handover: "Fri 17:00", loc: time.UTC,
			at: utc(2025, 6, 1, 0, 0), onCall: alice, next: alice, slot: 73,
			since: utc(2025, 5, 30, 17, 0), until: utc(2025, 6, 6, 17, 0),
		},
		{
			name: "a custom epoch moves slot 0", rotation: abc, handover: "Mon 09:00", loc: time.UTC, epoch: utc(2026, 3, 1, 0, 0),
			at: utc(2026, 3, 2, 9, 0), slot: 0, onCall: alice, next: bob,
			since: utc(2026, 3, 2, 9, 0), until: utc(2026, 3, 9, 9, 0),
		},
		{
			name: "an epoch exactly at a hand-over starts slot 0 there", rotation: abc, handover: "daily 09:00", loc: time.UTC, epoch: utc(2026, 3, 2, 9, 0),
			at: utc(2026, 3, 2, 9, 0), slot: 0, onCall: alice, next: bob,
			since: utc(2026, 3, 2, 9, 0), until: utc(2026, 3, 3, 9, 0),
		},
		{
			name: "the reference is local midnight: London in winter is UTC", rotation: abc, handover: "Mon 09:00", loc: london,
			at: utc(2024, 1, 1, 9, 0), slot: 0, onCall: alice, next: bob,
			since: utc(2024, 1, 1, 9, 0), until: utc(2024, 1, 8, 9, 0),
		},
		{
			// Clocks go forward at 01:00 UTC on Sunday 29 March 2026.
			name: "London daily across spring-forward: 23 hours", rotation: abc, handover: "daily 09:00", loc: london,
			at: utc(2026, 3, 29, 7, 59), slot: 817, onCall: bob, next: carol,
			since: utc(2026, 3, 28, 9, 0), until: utc(2026, 3, 29, 8, 0),
		},
		{
			name: "London daily after spring-forward: 09:00 BST", rotation: abc, handover: "daily 09:00", loc: london,
			at: utc(2026, 3, 29, 8, 0), slot: 818, onCall: carol, next: alice,
			since: utc(2026, 3, 29, 8, 0), until: utc(2026, 3, 30, 8, 0),
		},
		{
			// Clocks go back at 01:00 UTC on Sunday 25 October 2026.
			name: "London daily across fall-back: 25 hours", rotation: abc, handover: "daily 09:00", loc: london,
			at: utc(2026, 10, 25, 8, 30), slot: 1027, onCall: bob, next: carol,
			since: utc(2026, 10, 24, 8, 0), until: utc(2026, 10, 25, 9, 0),
		},
		{
			name: "London weekly across spring-forward: 167 hours", rotation: abc, handover: "Mon 09:00", loc: london,
			at: utc(2026, 3, 27, 12, 0), slot: 116, onCall: carol, next: alice,
			since: utc(2026, 3, 23, 9, 0), until: utc(2026, 3, 30, 8, 0),
		},
		{
			name: "London weekly across fall-back: 169 hours", rotation: abc, handover: "Mon 09:00", loc: london,
			at: utc(2026, 10, 30, 12, 0), slot: 147, onCall: alice, next: bob,
			since: utc(2026, 10, 26, 9, 0), until: utc(2026, 11, 2, 9, 0),
		},
		{
			name: "London: a hand-over in the skipped hour comes after the jump (01:30 -> 02:30 BST)", rotation: abc, handover: "Sun 01:30", loc: london,
			at: utc(2026, 3, 29, 1, 30), slot: 116, onCall: carol, next: alice,
			since: utc(2026, 3, 29, 1, 30), until: utc(2026, 4, 5, 0, 30),
		},
		{
			name: "London: a minute before the skipped-hour hand-over", rotation: abc, handover: "Sun 01:30", loc: london,
			at: utc(2026, 3, 29, 1, 29), slot: 115, onCall: bob, next: carol,
			since: utc(2026, 3, 22, 1, 30), until: utc(2026, 3, 29, 1, 30),
		},
		{
			name: "London: a hand-over in the repeated hour is the first 01:30 (BST)", rotation: abc, handover: "Sun 01:30", loc: london,
			at: utc(2026, 10, 25, 0, 30), slot: 146, onCall: carol, next: alice,
			since: utc(2026, 10, 25, 0, 30), until: utc(2026, 11, 1, 1, 30),
		},
		{
			name: "London: during the second 01:30 the shift has already changed", rotation: abc, handover: "Sun 01:30", loc: london,
			at: utc(2026, 10, 25, 1, 30), slot: 146, onCall: carol, next: alice,
			since: utc(2026, 10, 25, 0, 30), until: utc(2026, 11, 1, 1, 30),
		},
		{
			// New York springs forward at 02:00 EST on 8 March 2026.
			name: "New York: a hand-over in the skipped hour comes after the jump (02:30 -> 03:30 EDT)", rotation: abc, handover: "daily 02:30", loc: newYork,
			at: utc(2026, 3, 8, 7, 30), slot: 797, onCall: carol, next: alice,
			since: utc(2026, 3, 8, 7, 30), until: utc(2026, 3, 9, 6, 30),
		},
		{
			name: "New York: the repeated 01:30 is the first (EDT)", rotation: abc, handover: "daily 01:30", loc: newYork,
			at: utc(2026, 11, 1, 5, 30), slot: 1035, onCall: alice, next: bob,
			since: utc(2026, 11, 1, 5, 30), until: utc(2026, 11, 2, 6, 30),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := oncall.Schedule{Rotation: tc.rotation, Handover: mustHandover(t, tc.handover), Location: tc.loc, Epoch: tc.epoch}
			got := s.At(tc.at)
			require.Equal(t, tc.slot, got.Slot, "slot")
			require.Equal(t, tc.onCall, got.OnCall, "on call")
			require.Equal(t, tc.next, got.Next, "next")
			require.True(t, tc.since.Equal(got.Since), "since: want %s, got %s", tc.since, got.Since)
			require.True(t, tc.until.Equal(got.Until), "until: want %s, got %s", tc.until, got.Until)
			require.Equal(t, tc.loc.String(), got.Since.Location().String(), "times are in the schedule's zone")
			// The boundaries are consistent: Until starts the next shift,
			// and the instant before Since is the previous one.
			after := s.At(got.Until)
			require.Equal(t, got.Slot+1, after.Slot)
			require.Equal(t, got.Next, after.OnCall)
			require.True(t, got.Until.Equal(after.Since))
			require.Equal(t, got.Slot-1, s.At(got.Since.Add(-time.Nanosecond)).Slot)
		})
	}
}

// TestScheduleHandoversKeepWallTime walks a year of London hand-overs, both
// daylight-saving changes included: every one is at 09:00 local time, and
// consecutive slots are numbered without a gap.
func TestScheduleHandoversKeepWallTime(t *testing.T) {
	t.Parallel()
	london := mustLoad(t, "Europe/London")
	for _, spec := range []string{"daily 09:00", "Mon 09:00"} {
		s := oncall.Schedule{Rotation: []oncall.Member{alice, bob, carol}, Handover: mustHandover(t, spec), Location: london}
		sh := s.At(utc(2026, 1, 1, 0, 0))
		lengths := map[time.Duration]int{}
		for sh.Until.Before(utc(2027, 1, 1, 0, 0)) {
			next := s.At(sh.Until)
			require.Equal(t, sh.Slot+1, next.Slot, spec)
			require.Equal(t, 9, next.Since.Hour(), "%s: hand-over at %s", spec, next.Since)
			require.Equal(t, 0, next.Since.Minute(), spec)
			lengths[next.Since.Sub(sh.Since)]++
			sh = next
		}
		p := 24 * time.Hour
		if spec == "Mon 09:00" {
			p = 7 * 24 * time.Hour
		}
		require.Equal(t, 1, lengths[p-time.Hour], "%s: one short shift (spring)", spec)
		require.Equal(t, 1, lengths[p+time.Hour], "%s: one long shift (autumn)", spec)
		require.Len(t, lengths, 3, spec)
	}
}

func TestScheduleEmpty(t *testing.T) {
	t.Parallel()
	require.Equal(t, oncall.Shift{}, oncall.Schedule{Handover: mustHandover(t, "Mon 09:00")}.At(utc(2026, 1, 1, 0, 0)))
	require.Equal(t, oncall.Shift{}, oncall.Schedule{Rotation: []oncall.Member{alice}}.At(utc(2026, 1, 1, 0, 0)))
	_, ok := oncall.Schedule{}.NextAfter(utc(2026, 1, 1, 0, 0), alice)
	require.False(t, ok)
}

func TestScheduleNilLocationIsUTC(t *testing.T) {
	t.Parallel()
	s := oncall.Schedule{Rotation: []oncall.Member{alice, bob}, Handover: mustHandover(t, "daily 09:00")}
	got := s.At(utc(2024, 1, 2, 10, 0))
	require.Equal(t, bob, got.OnCall)
	require.Equal(t, utc(2024, 1, 2, 9, 0), got.Since)
	require.Equal(t, time.UTC, got.Since.Location())
}

func TestScheduleNextAfter(t *testing.T) {
	t.Parallel()
	abcd := []oncall.Member{alice, bob, carol, dave}
	// Slot 0 (alice): 2024-01-01 09:00 to 2024-01-08 09:00.
	at := utc(2024, 1, 3, 12, 0)
	tests := []struct {
		name     string
		rotation []oncall.Member
		holder   oncall.Member
		want     oncall.Member
		ok       bool
	}{
		{"the scheduled holder: the next slot's", abcd, alice, bob, true},
		{"someone took the pager from alice: next is still the next slot's", abcd, carol, bob, true},
		{"the next slot's holder took it early: skip them", abcd, bob, carol, true},
		{"two members, the other took it: alice's slot is still the next different holder", []oncall.Member{alice, bob}, bob, alice, true},
		{"alone on the rotation: nobody else", []oncall.Member{alice}, alice, oncall.Member{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := oncall.Schedule{Rotation: tc.rotation, Handover: mustHandover(t, "Mon 09:00")}
			got, ok := s.NextAfter(at, tc.holder)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}
