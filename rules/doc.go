// Package rules decides, for one event or one due timer of one customer, what
// the processor should do: emit triggers, schedule follow-up timers, cancel
// pending ones. It also keeps the customer record up to date (cart, counters,
// first/last seen, profile) so that rules see the state the event leaves
// behind.
//
// Evaluation is pure: no I/O, no goroutines, no clock. Time comes from the
// event (its event time) or from the timer (its due time), so replaying a
// backlog produces the same decisions as live traffic.
//
// The walking skeleton ships one rule, cart abandonment, configured by
// Config. The rules language (a versioned rules file with CEL conditions)
// grows behind the same entry points: Set.OnEvent and Set.OnTimer filling
// Actions.
package rules
