package rules

import (
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Calendar arithmetic for calendar rules: local dates in the customer's
// IANA zone, days added on the calendar (not as 24 h, so a DST change
// between does not shift the time of day), and the documented resolution of
// local times that do not exist or exist twice.

// localTime returns the instant at which the wall clock in loc shows date d,
// hh:mm.
//
//   - A time in a DST gap (spring forward: 02:30 does not exist in
//     Europe/Berlin on the last Sunday of March) moves forward by the length
//     of the gap: 02:30 becomes 03:30 local, the instant 02:30 would have been
//     under the offset in force before the gap.
//   - A time in a DST overlap (fall back: 02:30 occurs twice on the last
//     Sunday of October) is the first occurrence, under the offset in force
//     before the change.
//
// Go's time.Date leaves both cases unspecified, so this does not rely on it.
func localTime(d schemas.Date, hh, mm int, loc *time.Location) time.Time {
	wall := time.Date(d.Year, d.Month, d.Day, hh, mm, 0, 0, time.UTC)
	// The offsets in force a day either side: a zone changes its offset
	// at most once within two days.
	_, offBefore := wall.Add(-26 * time.Hour).In(loc).Zone()
	_, offAfter := wall.Add(26 * time.Hour).In(loc).Zone()
	var best time.Time
	found := false
	for _, off := range [2]int{offBefore, offAfter} {
		t := wall.Add(-time.Duration(off) * time.Second)
		l := t.In(loc)
		if l.Year() == d.Year && l.Month() == d.Month && l.Day() == d.Day && l.Hour() == hh && l.Minute() == mm {
			if !found || t.Before(best) {
				best, found = t, true
			}
		}
	}
	if found {
		return best
	}
	// In a gap: the instant the wall time names under the old offset,
	// which the clock shows as the same time plus the gap.
	return wall.Add(-time.Duration(offBefore) * time.Second)
}

// addDays adds n calendar days to d.
func addDays(d schemas.Date, n int) schemas.Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC)
	return schemas.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// anniversary returns the date's anniversary in year y: 29 February falls
// on 28 February in a year without one.
func anniversary(d schemas.Date, y int) schemas.Date {
	if d.Month == time.February && d.Day == 29 && !isLeap(y) {
		return schemas.Date{Year: y, Month: time.February, Day: 28}
	}
	return schemas.Date{Year: y, Month: d.Month, Day: d.Day}
}

// calendar is the schedule of a calendar rule.
type calendar struct {
	date       string // profile field: birthday, signup_date, contract_end
	hh, mm     int
	offsetDays int
	yearly     bool
}

func (cal *calendar) dateOf(p *schemas.Profile) schemas.Date {
	switch cal.date {
	case "birthday":
		return p.Birthday
	case "signup_date":
		return p.SignupDate
	case "contract_end":
		return p.ContractEnd
	}
	return schemas.Date{}
}

// due returns when the occurrence occ (the anniversary being celebrated, or
// the once-only date) is due in loc: its offset applied, at the schedule's
// local time.
func (cal *calendar) due(occ schemas.Date, loc *time.Location) time.Time {
	return localTime(addDays(occ, cal.offsetDays), cal.hh, cal.mm, loc)
}

// next returns the first occurrence of the schedule for date d that is due
// strictly after `after`, and the occurrence's date (the anniversary being
// celebrated, before the offset) that names it. A yearly schedule counts
// only the years after d's own year (a birthday is not celebrated on the day
// of birth, nor an anniversary on the day of registration).
func (cal *calendar) next(d schemas.Date, loc *time.Location, after time.Time) (time.Time, schemas.Date, bool) {
	if d.IsZero() {
		return time.Time{}, schemas.Date{}, false
	}
	if !cal.yearly {
		due := cal.due(d, loc)
		return due, d, due.After(after)
	}
	// The offset may move an occurrence into another year; the due times
	// grow with the year, so the first one past `after` is the answer.
	span := 2 + abs(cal.offsetDays)/365
	year := after.In(loc).Year()
	for y := max(year-span, d.Year+1); y <= year+span; y++ {
		occ := anniversary(d, y)
		due := cal.due(occ, loc)
		if due.After(after) {
			return due, occ, true
		}
	}
	return time.Time{}, schemas.Date{}, false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
