// Package rules is the rule language and its engine. A rules file (YAML,
// with CEL expressions) declares what starts each rule (events and a
// condition, a multi-stage sequence, a calendar date, a silence, a
// threshold crossing), what it emits (kind, channel, priority, payload), and
// the state the engine keeps for the rules (sliding windows, RFM segments,
// dedupe of event IDs, an event catalogue). Parse compiles a file into a Set,
// reporting every error with its line and column; the example file in
// example/ is built in.
//
// A Set decides, for one event or one due timer of one customer, what the
// processor should do: emit triggers, schedule follow-up timers, cancel
// pending ones (Actions). It also keeps the customer record up to date (cart,
// counters, windows, segment, the rules' own progress), so rules see the
// state the event leaves behind.
//
// Evaluation is pure: no I/O, no goroutines, no clock. Time comes from the
// event (its event time) or from the timer (its due time), so replaying a
// backlog produces the same decisions as live traffic. The one exception is
// a calendar timer fired late (OnTimersAt, with the caller's watermark):
// of the occurrences due by then only the latest counts, and only if its
// trigger is not yet expired; the others are suppressed (superseded,
// expired), so an event stamped years back cannot send years of birthdays.
// A calendar occurrence is a date, due at the rule's local time in the zone
// in force when it is scheduled; a zone change moves the pending
// occurrence's instant (into the past, it fires at once) and never which
// occurrence is pending, so a birthday is neither skipped nor sent twice
// when the customer changes zone on the day (runs.go, calendarCheck). A Set is immutable
// and shared by every partition worker; the per-evaluation scratch space
// lives in the caller's Actions. To change the rules, compile a new Set and
// swap it in: the customer record is the state, so a new Set carries on
// where the old one stopped (runs of removed rules are dropped, marks stay).
//
// Where things are: yaml.go and compile.go turn the file into rules
// (rule.go); env.go is the CEL environment and activation; set.go evaluates
// events and timers; runs.go the rules that wait on timers (sequence,
// calendar, silence); aggregate.go the windows; segments.go RFM;
// calendar.go local-time arithmetic; record.go the record maintenance and
// dedupe; policy.go and policy_yaml.go the contact policy, which decides on
// the triggers of each evaluation (emit, suppress, defer) before they leave.
// rules/script runs rule scripts for tests and for rule authors.
package rules
