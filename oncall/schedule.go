package oncall

import (
	"time"
)

// Reference returns the default epoch of a schedule: 1 January 2024, 00:00
// wall-clock time in loc (a Monday). Slot 0 starts at the first hand-over at
// or after it, and is held by Rotation[0]; slot k by Rotation[k mod n].
//
// A fixed reference makes the schedule a pure function of the config and the
// time: every replica, and every restart, agrees on who is on call without
// storing anything. With a weekly Monday hand-over and n experts, slot k is
// the k-th week since Monday 1 January 2024.
func Reference(loc *time.Location) time.Time {
	return time.Date(2024, time.January, 1, 0, 0, 0, 0, orUTC(loc))
}

// Schedule lays a rotation out in time. It is pure: At and NextAfter read
// nothing but their arguments and the schedule's fields.
//
// Hand-overs happen at the Handover's wall-clock time in Location, so across
// a daylight-saving change a daily slot lasts 23 or 25 hours (a weekly one
// 167 or 169). A wall-clock time the change skips (01:30 on the spring-forward
// Sunday in London) is read in the offset in force before the change, so the
// hand-over comes as long after the jump as it was meant to come after the
// gap's start (02:30 BST); a time that occurs twice (01:30 on the autumn
// Sunday) is its first occurrence (01:30 BST).
type Schedule struct {
	// Rotation is who holds the pager, in order.
	Rotation []Member
	// Handover is when the pager passes on.
	Handover Handover
	// Location is the time zone of the hand-over (nil: UTC).
	Location *time.Location
	// Epoch: the first hand-over at or after it starts slot 0, held by
	// Rotation[0]. The zero time means Reference(Location).
	Epoch time.Time
}

// Shift is one slot of a schedule: who holds the pager, from which hand-over
// to which.
type Shift struct {
	// Slot numbers the hand-overs: 0 is the first at or after the epoch;
	// earlier ones are negative.
	Slot int64
	// OnCall holds the pager from Since (included) to Until (excluded).
	OnCall Member
	// Since and Until are hand-overs, in the schedule's Location.
	Since, Until time.Time
	// Next holds the pager from Until. With one member it is OnCall again.
	Next Member
}

// At returns the shift that contains t. A schedule with no rotation or no
// hand-over has no shifts: At returns the zero Shift.
func (s Schedule) At(t time.Time) Shift {
	if len(s.Rotation) == 0 || s.Handover.valid() != nil {
		return Shift{}
	}
	start := s.slotStart(t)
	k := s.slotIndex(start)
	return Shift{
		Slot:   k,
		OnCall: s.member(k),
		Since:  s.at(start),
		Until:  s.at(start.addDays(s.periodDays())),
		Next:   s.member(k + 1),
	}
}

// NextAfter returns who is paged after holder at t: the holder of the first
// slot after t's slot that is not holder, in rotation order. The holder is
// the effective on-call (the scheduled one, or whoever took the pager). ok is
// false when the rotation has nobody else.
func (s Schedule) NextAfter(t time.Time, holder Member) (next Member, ok bool) {
	sh := s.At(t)
	if sh.OnCall.IsZero() {
		return Member{}, false
	}
	for i := int64(1); i <= int64(len(s.Rotation)); i++ {
		if m := s.member(sh.Slot + i); m != holder {
			return m, true
		}
	}
	return Member{}, false
}

// Has reports whether m is on the rotation.
func (s Schedule) Has(m Member) bool {
	for _, r := range s.Rotation {
		if r == m {
			return true
		}
	}
	return false
}

func (s Schedule) member(k int64) Member {
	n := int64(len(s.Rotation))
	return s.Rotation[((k%n)+n)%n]
}

func (s Schedule) periodDays() int {
	if s.Handover.Period == Daily {
		return 1
	}
	return 7
}

func (s Schedule) loc() *time.Location { return orUTC(s.Location) }

// slotStart returns the date of the last hand-over at or before t.
func (s Schedule) slotStart(t time.Time) civil {
	d := civilOf(t.In(s.loc()))
	if s.Handover.Period == Weekly {
		d = d.addDays(-((int(d.weekday()) - int(s.Handover.Weekday) + 7) % 7))
	}
	p := s.periodDays()
	// A hand-over lies within a few hours of its date's wall-clock time, so
	// these loops run at most once or twice.
	for s.at(d).After(t) {
		d = d.addDays(-p)
	}
	for !s.at(d.addDays(p)).After(t) {
		d = d.addDays(p)
	}
	return d
}

// slotIndex numbers the hand-over on date d from the epoch's.
func (s Schedule) slotIndex(d civil) int64 {
	epoch := s.Epoch
	if epoch.IsZero() {
		epoch = Reference(s.loc())
	}
	e := s.slotStart(epoch)
	if s.at(e).Before(epoch) {
		e = e.addDays(s.periodDays())
	}
	diff := d.day() - e.day()
	p := int64(s.periodDays())
	// Both dates are hand-over dates, so diff is a multiple of p.
	return diff / p
}

// at is the instant of the hand-over on date d (see Schedule for the rule at
// daylight-saving changes).
func (s Schedule) at(d civil) time.Time {
	return wallTime(d, s.Handover.Hour, s.Handover.Minute, s.loc())
}

// wallTime resolves a wall-clock time on a date in loc: when it occurs once,
// that instant; when twice, the first; when never (skipped by a change), the
// wall time read in the offset in force before the change.
func wallTime(d civil, hour, minute int, loc *time.Location) time.Time {
	naive := time.Date(d.y, d.m, d.d, hour, minute, 0, 0, time.UTC)
	// The offsets in force two days either side: no zone changes twice in
	// four days.
	_, before := naive.Add(-48 * time.Hour).In(loc).Zone()
	_, after := naive.Add(48 * time.Hour).In(loc).Zone()
	var found time.Time
	for _, off := range []int{before, after} {
		c := naive.Add(-time.Duration(off) * time.Second).In(loc)
		if c.Hour() == hour && c.Minute() == minute && civilOf(c) == d && (found.IsZero() || c.Before(found)) {
			found = c
		}
	}
	if found.IsZero() {
		found = naive.Add(-time.Duration(before) * time.Second).In(loc)
	}
	return found
}

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

// civil is a calendar date, free of time zones.
type civil struct {
	y int
	m time.Month
	d int
}

func civilOf(t time.Time) civil {
	y, m, d := t.Date()
	return civil{y, m, d}
}

func (c civil) utc() time.Time { return time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.UTC) }

func (c civil) addDays(n int) civil { return civilOf(c.utc().AddDate(0, 0, n)) }

func (c civil) weekday() time.Weekday { return c.utc().Weekday() }

// day numbers dates: days since 1970-01-01.
func (c civil) day() int64 { return c.utc().Unix() / 86400 }
