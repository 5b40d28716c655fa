package rules

import (
	"slices"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// TestCalendarCatchUpExample is the measured case, on the built-in rules and
// fired the way the processor fires timers (every timer due by the
// watermark, each at the watermark): a profile stamped in 2021 with a
// birthday, processed when the watermark is in 2026, sent six years of
// birthdays at once. Now it sends one, this year's, and puts the five it
// passed over on record as suppressions.
func TestCalendarCatchUpExample(t *testing.T) {
	s, err := ExampleSet()
	if err != nil {
		t.Fatal(err)
	}
	c := &schemas.Customer{ID: "c1"}
	wm := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) // 09:00 Berlin on 1 March was two hours ago
	ev := schemas.Event{Source: schemas.SourceProfile, ID: "p1", Customer: c.ID, Type: schemas.ProfileUpdate,
		Time: time.Date(2021, 1, 10, 0, 0, 0, 0, time.UTC),
		Profile: schemas.Profile{Birthday: schemas.Date{Year: 1990, Month: time.March, Day: 1},
			OptIns: map[schemas.Channel]bool{schemas.ChannelEmail: true}}}
	var a Actions
	s.OnEvent(c, &ev, &a)
	timers := map[string]schemas.Timer{}
	apply := func() {
		for _, ref := range a.Cancel {
			delete(timers, ref.ID)
		}
		for _, tm := range a.Schedule {
			timers[tm.ID] = tm
		}
	}
	apply()
	var sent, superseded []time.Time
	for range 100 {
		var due []schemas.Timer
		for _, tm := range timers {
			if !tm.Due.After(wm) {
				due = append(due, tm)
			}
		}
		if len(due) == 0 {
			break
		}
		next := slices.MinFunc(due, func(x, y schemas.Timer) int { return x.Due.Compare(y.Due) })
		delete(timers, next.ID)
		a.Reset()
		s.OnTimersAt(c, []schemas.Timer{next}, wm, &a)
		apply()
		for _, tr := range a.Emit {
			if tr.Rule == "birthday" {
				sent = append(sent, tr.DueAt)
			}
		}
		for _, sp := range a.Suppress {
			if sp.Trigger.Rule == "birthday" && sp.Reason == ReasonSuperseded && sp.Policy == PolicyCatchUp && sp.DecidedAt.Equal(wm) {
				superseded = append(superseded, sp.Trigger.DueAt)
			}
		}
	}
	if want := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC); len(sent) != 1 || !sent[0].Equal(want) {
		t.Errorf("birthdays sent %v, want one, due %v", sent, want)
	}
	if len(superseded) != 5 || superseded[0].Year() != 2021 || superseded[4].Year() != 2025 {
		t.Errorf("birthdays superseded %v, want 2021 to 2025", superseded)
	}
	if tm, ok := timers["birthday"]; !ok || tm.Occurrence != "2027-03-01" {
		t.Errorf("pending birthday %+v, want 2027-03-01", tm)
	}
}

// TestOnTimersFiresAtDue: OnTimers is OnTimersAt at the timers' due time,
// so a caller that does not pass its watermark sees no catch-up, and a now
// before the due time counts as the due time.
func TestOnTimersFiresAtDue(t *testing.T) {
	s, err := Parse("cal.yaml", []byte(`rules:
  - id: birthday
    version: 1
    family: recurring
    channel: email
    calendar: {date: birthday, time: "09:00", every: year}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fire func(*Set, *schemas.Customer, []schemas.Timer, *Actions)
	}{
		{"OnTimers", func(s *Set, c *schemas.Customer, ts []schemas.Timer, a *Actions) { s.OnTimers(c, ts, a) }},
		{"OnTimersAt before due", func(s *Set, c *schemas.Customer, ts []schemas.Timer, a *Actions) {
			s.OnTimersAt(c, ts, ts[0].Due.Add(-time.Hour), a)
		}},
	} {
		c := &schemas.Customer{ID: "c1"}
		var a Actions
		s.OnEvent(c, &schemas.Event{Source: schemas.SourceProfile, ID: "p1", Customer: c.ID, Type: schemas.ProfileUpdate,
			Time: time.Date(2021, 1, 10, 0, 0, 0, 0, time.UTC), Profile: schemas.Profile{Birthday: schemas.Date{Year: 1990, Month: time.March, Day: 1}}}, &a)
		tm := a.Schedule[0]
		a.Reset()
		tc.fire(s, c, []schemas.Timer{tm}, &a)
		if len(a.Emit) != 1 || !a.Emit[0].DueAt.Equal(tm.Due) || len(a.Suppress) != 0 {
			t.Errorf("%s: emitted %+v, suppressed %+v; want the timer's own occurrence", tc.name, a.Emit, a.Suppress)
		}
	}
}
