package rules

import "github.com/triggerd/triggerd/schemas"

// TimerRef names one pending timer of a customer.
type TimerRef struct {
	Customer schemas.CustomerID
	ID       string
}

// Actions is what one evaluation asks the processor to do, in order:
// cancel, then schedule, then emit and write the suppressions. The processor owns an Actions value per
// partition and reuses it: Reset keeps the slices' capacity, and the
// evaluation scratch space (the CEL activation) lives here too, so a Set
// shared by every partition needs no lock and evaluation allocates little.
type Actions struct {
	Cancel   []TimerRef
	Schedule []schemas.Timer
	Emit     []schemas.Trigger
	// Suppress lists what the contact policy stopped or deferred: the
	// processor writes each to the suppressions topic. A deferred
	// trigger's timer is in Schedule.
	Suppress []schemas.Suppression

	// Duplicate is set when the event's ID was already seen within the
	// dedupe window: nothing was applied and nothing else is asked for.
	Duplicate bool
	// Errors are expression errors met during the evaluation (a missing
	// map key, a bad date); the expression counted as false. The
	// processor logs them; a rule author finds them with
	// "triggerd rules test".
	Errors []error

	st *evalState
}

// Reset empties a for the next evaluation.
func (a *Actions) Reset() {
	a.Cancel = a.Cancel[:0]
	a.Schedule = a.Schedule[:0]
	a.Emit = a.Emit[:0]
	a.Suppress = a.Suppress[:0]
	a.Duplicate = false
	a.Errors = a.Errors[:0]
}

// Empty reports whether a asks for nothing.
func (a *Actions) Empty() bool {
	return len(a.Cancel) == 0 && len(a.Schedule) == 0 && len(a.Emit) == 0 && len(a.Suppress) == 0
}

func (a *Actions) state() *evalState {
	if a.st == nil {
		a.st = &evalState{}
	}
	a.st.a = a
	return a.st
}
