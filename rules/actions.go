package rules

import "github.com/triggerd/triggerd/schemas"

// TimerRef names one pending timer of a customer.
type TimerRef struct {
	Customer schemas.CustomerID
	ID       string
}

// Actions is what one evaluation asks the processor to do, in order:
// cancel, then schedule, then emit. The processor owns an Actions value per
// partition and reuses it: Reset keeps the slices' capacity.
type Actions struct {
	Cancel   []TimerRef
	Schedule []schemas.Timer
	Emit     []schemas.Trigger
}

// Reset empties a for the next evaluation.
func (a *Actions) Reset() {
	a.Cancel = a.Cancel[:0]
	a.Schedule = a.Schedule[:0]
	a.Emit = a.Emit[:0]
}

// Empty reports whether a asks for nothing.
func (a *Actions) Empty() bool {
	return len(a.Cancel) == 0 && len(a.Schedule) == 0 && len(a.Emit) == 0
}
