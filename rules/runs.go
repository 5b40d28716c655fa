package rules

import (
	"strings"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Runs are the pending work of sequence, calendar and silence rules, kept in
// the customer record (schemas.Run) next to their one timer each: the
// timer says when, the run says what (which stage, which occurrence), so a
// timer that outlived its run (moved, exited) is recognised at fire time and
// ignored.

// seqStart starts (or restarts) a run of a sequence rule for the event.
func (s *Set) seqStart(st *evalState, r *rule, a *Actions) {
	sq := r.seq
	if sq.startWhen != nil && !st.cond(sq.startWhen, r.id, "start.when") {
		return
	}
	c, ev := st.c, st.ev
	key := ""
	if sq.key != nil {
		k, ok := st.evalString(sq.key, r.id, "start.key")
		if !ok || k == "" {
			return // no key, no run (e.g. a purchase without an order ID)
		}
		key = k
	}
	i := findRun(c, r.id, key)
	if i >= 0 && !sq.restart {
		return
	}
	if r.once != nil && marked(c, r.id, key, ev.Time) {
		return
	}
	if i >= 0 {
		// A restart replaces the run: its deferred stages are of the
		// cart (or order) as it was, and go with it.
		s.cancelDeferred(c, r, &c.Runs[i], a)
	}
	// The run is built in st.run0 (not on the heap: st.run points to it
	// while expressions read seq.*), reusing the Due capacity of the run
	// it replaces or of a vacated slot.
	run := &st.run0
	*run = schemas.Run{Rule: r.id, Key: key, Occurrence: key, StartedAt: ev.Time, Version: r.version, CausedBy: ev.ID}
	if key == "" {
		run.Occurrence = ev.ID
	}
	if i >= 0 {
		run.Due = c.Runs[i].Due[:0]
	} else if len(c.Runs) < cap(c.Runs) {
		run.Due = c.Runs[:len(c.Runs)+1][len(c.Runs)].Due[:0]
	}
	// Every stage's due time is fixed at the start: a delay counts from
	// the previous stage's due time (stage 1 from the start event), an
	// "at" is a timestamp computed from the start event. A stage is
	// skipped when its when is false, when it is due before the start, or
	// before an earlier stage that is not skipped.
	st.run = run
	prev, last := ev.Time, ev.Time
	for j := range sq.stages {
		sg := &sq.stages[j]
		// when first: a skipped stage's at need not be computable
		// (a coupon without an expiry).
		ok := sg.when == nil || st.cond(sg.when, r.id, "stage when")
		due := prev.Add(sg.delay)
		if ok && sg.at != nil {
			due, ok = st.evalTime(sg.at, r.id, "stage at")
		}
		if ok || sg.at == nil {
			prev = due
		}
		if !ok || due.Before(last) {
			run.Due = append(run.Due, time.Time{})
			continue
		}
		last = due
		run.Due = append(run.Due, due)
	}
	if r.once != nil {
		setMark(c, r.id, key, ev.Time, r.once.period)
	}
	tid := timerID(r.id, key)
	next := -1
	for j, due := range run.Due {
		if due.IsZero() {
			continue
		}
		if due.After(ev.Time) {
			next = j
			break
		}
		run.Stage = int32(j + 1)
		s.emit(st, r, run.Stage, sq.stages[j].channel, sq.stages[j].payload, run.Occurrence, due, ev.ID, a)
	}
	st.run = nil
	if next < 0 {
		if i >= 0 {
			a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: tid})
			removeRun(c, i)
		}
		return
	}
	run.Stage = int32(next + 1)
	if i >= 0 {
		c.Runs[i] = *run
	} else {
		c.Runs = append(c.Runs, *run)
		boundRuns(c, r.id, a)
	}
	a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: tid, Due: run.Due[next], Rule: r.id,
		Stage: run.Stage, Occurrence: run.Occurrence, CausedBy: []string{ev.ID}})
}

// seqExit ends the rule's runs whose exit condition holds for the event.
func (s *Set) seqExit(st *evalState, r *rule, a *Actions) {
	c := st.c
	for i := 0; i < len(c.Runs); {
		run := &c.Runs[i]
		if run.Rule != r.id {
			i++
			continue
		}
		st.run = run
		exit := r.seq.exitWhen == nil || st.cond(r.seq.exitWhen, r.id, "exit.when")
		st.run = nil
		if !exit {
			i++
			continue
		}
		a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: timerID(r.id, run.Key)})
		s.cancelDeferred(c, r, run, a)
		removeRun(c, i)
	}
}

// runKey recovers a run's key from its timer ID.
func runKey(r schemas.RuleID, id string) string {
	k, _ := strings.CutPrefix(id, string(r)+"/")
	if k == id {
		return ""
	}
	return k
}

// seqFire fires a sequence stage: exit criteria are checked again (with an
// empty event: conditions on the customer's state decide), then the stage
// is emitted and the next one scheduled.
func (s *Set) seqFire(st *evalState, r *rule, t *schemas.Timer, a *Actions) {
	c := st.c
	i := findRun(c, r.id, runKey(r.id, t.ID))
	if i < 0 {
		return
	}
	run := &c.Runs[i]
	if run.Occurrence != t.Occurrence || run.Stage != t.Stage {
		return // a timer of an earlier run
	}
	st.run = run
	defer func() { st.run = nil }()
	j := int(t.Stage) - 1
	if j < 0 || j >= len(r.seq.stages) || (r.seq.exitWhen != nil && st.cond(r.seq.exitWhen, r.id, "exit.when")) {
		removeRun(c, i)
		return
	}
	sg := &r.seq.stages[j]
	s.emit(st, r, t.Stage, sg.channel, sg.payload, run.Occurrence, t.Due, run.CausedBy, a)
	for k := j + 1; k < len(run.Due) && k < len(r.seq.stages); k++ {
		if run.Due[k].IsZero() {
			continue
		}
		run.Stage = int32(k + 1)
		a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: t.ID, Due: run.Due[k], Rule: r.id,
			Stage: run.Stage, Occurrence: run.Occurrence, CausedBy: t.CausedBy})
		return
	}
	removeRun(c, i)
}

// calendarCheck schedules each calendar rule's next occurrence when its
// date becomes known, moves it when the profile's date or time zone changed,
// and drops it when the date no longer yields one.
//
// An occurrence is a date (the anniversary, or the once-only date), due at
// the rule's local time in the zone in force when it is scheduled. A zone
// change keeps the pending occurrence and moves only its instant to the
// new zone, even into the past (it then fires at once, if its trigger is
// not yet expired: calendarFire): the occurrence that comes next is fixed
// by the last one that fired, never by the time of the change. So a
// customer who moves east on their birthday, before it fired, still gets
// it (in the new zone, 09:00 may have passed), and one who moves west
// after it fired does not get it twice (09:00 is still to come there, but
// that birthday is done). A date change is a new schedule, from the event's
// time.
func (s *Set) calendarCheck(st *evalState, a *Actions) {
	if len(s.calendars) == 0 {
		return
	}
	c, ev := st.c, st.ev
	zoneChanged := st.pre.profile.TimeZone != c.Profile.TimeZone
	for _, r := range s.calendars {
		d := r.cal.dateOf(&c.Profile)
		i := findRun(c, r.id, "")
		dateChanged := d != r.cal.dateOf(&st.pre.profile)
		if i >= 0 && !zoneChanged && !dateChanged {
			continue // scheduled, and nothing it depends on changed
		}
		if i >= 0 && !dateChanged {
			if occ, err := schemas.ParseDate(c.Runs[i].Occurrence); err == nil {
				due := r.cal.due(occ, s.zones.get(c.Profile.TimeZone))
				s.scheduleCalendar(c, r, i, due, c.Runs[i].Occurrence, ev.Time, ev.ID, a)
				continue
			}
		}
		if i < 0 && (d.IsZero() || (!r.cal.yearly && marked(c, r.id, d.String(), ev.Time))) {
			continue
		}
		due, occ, ok := r.cal.next(d, s.zones.get(c.Profile.TimeZone), ev.Time)
		if !ok {
			if i >= 0 {
				a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: string(r.id)})
				removeRun(c, i)
			}
			continue
		}
		s.scheduleCalendar(c, r, i, due, occ.String(), ev.Time, ev.ID, a)
	}
}

func (s *Set) scheduleCalendar(c *schemas.Customer, r *rule, i int, due time.Time, occ string, now time.Time, cause string, a *Actions) {
	if i >= 0 && c.Runs[i].Occurrence == occ && len(c.Runs[i].Due) == 1 && c.Runs[i].Due[0].Equal(due) {
		return
	}
	run := schemas.Run{Rule: r.id, Occurrence: occ, Stage: 1, StartedAt: now, Version: r.version, CausedBy: cause}
	if i >= 0 {
		run.Due = append(c.Runs[i].Due[:0], due)
		c.Runs[i] = run
	} else {
		run.Due = []time.Time{due}
		c.Runs = append(c.Runs, run)
	}
	var causedBy []string
	if cause != "" {
		causedBy = []string{cause}
	}
	a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: string(r.id), Due: due, Rule: r.id,
		Stage: 1, Occurrence: occ, CausedBy: causedBy})
}

// calendarFire emits the occurrence and schedules the next one (yearly), or
// marks the date done (once).
//
// A timer fired late (now, the caller's event time, past its due time)
// catches up: of the occurrences due by now, only the latest counts. When
// a later one than the timer's is due, the timer's and those in between
// are suppressed as superseded and the timer moves to the latest, which
// fires on its own (so the contact policy decides on it at its due time).
// An occurrence whose trigger is expired by now (its due time plus the
// rule's expiry) is suppressed as expired. So an event stamped years back
// yields at most one trigger, and a stale one yields none; each occurrence
// not sent has its suppression record (Actions.Suppress), which the
// processor writes, counts and keeps in the customer's audit trail.
func (s *Set) calendarFire(st *evalState, r *rule, t *schemas.Timer, now time.Time, a *Actions) {
	c := st.c
	i := findRun(c, r.id, "")
	if i < 0 || c.Runs[i].Occurrence != t.Occurrence {
		return
	}
	d := r.cal.dateOf(&c.Profile)
	loc := s.zones.get(c.Profile.TimeZone)
	if r.cal.yearly {
		// The latest occurrence due by now, if later than the timer's.
		var latest time.Time
		var latestOcc schemas.Date
		for due, occ, ok := r.cal.next(d, loc, t.Due); ok && !due.After(now); due, occ, ok = r.cal.next(d, loc, due) {
			if latest.IsZero() {
				s.skipCalendar(st, r, t.Occurrence, t.Due, now, ReasonSuperseded, a)
			} else {
				s.skipCalendar(st, r, latestOcc.String(), latest, now, ReasonSuperseded, a)
			}
			latest, latestOcc = due, occ
		}
		if !latest.IsZero() {
			s.scheduleCalendar(c, r, i, latest, latestOcc.String(), now, c.Runs[i].CausedBy, a)
			return
		}
	}
	if now.Before(t.Due.Add(r.expiry)) {
		s.emit(st, r, 1, r.channel, nil, t.Occurrence, t.Due, c.Runs[i].CausedBy, a)
	} else {
		s.skipCalendar(st, r, t.Occurrence, t.Due, now, ReasonExpired, a)
	}
	if !r.cal.yearly {
		setMark(c, r.id, d.String(), t.Due, 0)
		removeRun(c, i)
		return
	}
	due, occ, ok := r.cal.next(d, loc, t.Due)
	if !ok {
		removeRun(c, i)
		return
	}
	s.scheduleCalendar(c, r, i, due, occ.String(), t.Due, c.Runs[i].CausedBy, a)
}

// skipCalendar records a calendar occurrence that is not sent: the trigger
// it would have been, suppressed for reason by the catch-up at now.
func (s *Set) skipCalendar(st *evalState, r *rule, occurrence string, due, now time.Time, reason string, a *Actions) {
	i := findRun(st.c, r.id, "")
	tr := s.trigger(st, r, 1, r.channel, nil, occurrence, due, st.c.Runs[i].CausedBy)
	s.suppress(a, &tr, reason, PolicyCatchUp, now)
}

// silenceTouch records a matching event: the silence clock restarts. The
// timer is not moved on every event (that would write the timer index per
// event); it is armed once and, when it fires early, moved to the end of
// the silence then.
func (s *Set) silenceTouch(st *evalState, r *rule, a *Actions) {
	c, ev := st.c, st.ev
	i := findRun(c, r.id, "")
	if i < 0 {
		c.Runs = append(c.Runs, schemas.Run{Rule: r.id, Version: r.version})
		i = len(c.Runs) - 1
	}
	run := &c.Runs[i]
	if !ev.Time.Before(run.StartedAt) {
		run.StartedAt = ev.Time
		run.Occurrence = ev.ID
		run.CausedBy = ev.ID
	}
	if run.Stage != 0 {
		return
	}
	due := run.StartedAt.Add(r.sil.for_)
	run.Stage = 1
	run.Due = append(run.Due[:0], due)
	a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: string(r.id), Due: due, Rule: r.id,
		Stage: 1, Occurrence: run.Occurrence, CausedBy: []string{run.CausedBy}})
}

// silenceFire emits when the silence lasted the whole period, else moves
// the timer to the end of the silence as it now stands. After firing, the
// watch stays disarmed until the next matching event: once per silent
// period.
func (s *Set) silenceFire(st *evalState, r *rule, t *schemas.Timer, a *Actions) {
	c := st.c
	i := findRun(c, r.id, "")
	if i < 0 || c.Runs[i].Stage == 0 {
		return
	}
	run := &c.Runs[i]
	if due := run.StartedAt.Add(r.sil.for_); due.After(t.Due) {
		run.Due = append(run.Due[:0], due)
		a.Schedule = append(a.Schedule, schemas.Timer{Customer: c.ID, ID: t.ID, Due: due, Rule: r.id,
			Stage: 1, Occurrence: run.Occurrence, CausedBy: []string{run.CausedBy}})
		return
	}
	run.Stage = 0
	run.Due = run.Due[:0]
	s.emit(st, r, 1, r.channel, nil, run.Occurrence, t.Due, run.CausedBy, a)
}

// maxRunsPerRule bounds the runs one rule keeps for one customer (keyed
// runs: one per order, per coupon). Without a bound a hot customer (a bot, a
// reseller) grows a record the broker refuses; with it, the customer's
// oldest run of the rule ends early, its pending stages cancelled.
const maxRunsPerRule = 32

// boundRuns ends the oldest runs of rule r past maxRunsPerRule. Runs are
// appended in start order, so the first ones found are the oldest.
func boundRuns(c *schemas.Customer, r schemas.RuleID, a *Actions) {
	n := 0
	for i := range c.Runs {
		if c.Runs[i].Rule == r {
			n++
		}
	}
	for i := 0; n > maxRunsPerRule && i < len(c.Runs); {
		if c.Runs[i].Rule != r {
			i++
			continue
		}
		a.Cancel = append(a.Cancel, TimerRef{Customer: c.ID, ID: timerID(r, c.Runs[i].Key)})
		removeRun(c, i)
		n--
	}
}
