package processor

import (
	"time"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// recordDecisions appends the evaluation's decisions (triggers emitted,
// suppressed, deferred) to c's audit trail, keeping the last
// schemas.MaxDecisions. The trail is part of the customer record, so it
// is written in the same batch and changelog record as the state the
// decisions changed, moves with the partition, and is erased with the
// customer. It copies names and times only, never the trigger's attributes
// or items (see schemas.Decision).
func recordDecisions(c *schemas.Customer, a *rules.Actions, now time.Time) {
	if len(a.Emit) == 0 && len(a.Suppress) == 0 {
		return
	}
	defer trimDecisions(c)
	for i := range a.Emit {
		tr := &a.Emit[i]
		c.Decisions = append(c.Decisions, schemas.Decision{
			At: tr.DueAt, Recorded: now, Action: schemas.DecisionFired,
			Rule: tr.Rule, RuleVersion: tr.RuleVersion, Stage: tr.Stage, Channel: tr.Channel, TriggerID: tr.ID,
		})
	}
	for i := range a.Suppress {
		s := &a.Suppress[i]
		tr := &s.Trigger
		action := schemas.DecisionSuppressed
		if s.Action == schemas.ActionDeferred {
			action = schemas.DecisionDeferred
		}
		c.Decisions = append(c.Decisions, schemas.Decision{
			At: s.DecidedAt, Recorded: now, Action: action,
			Rule: tr.Rule, RuleVersion: tr.RuleVersion, Stage: tr.Stage, Channel: tr.Channel, TriggerID: tr.ID,
			Reason: s.Reason, Policy: s.Policy, DeferredTo: s.DeferredTo,
		})
	}
}

// recordLate notes in c's audit trail that event ev of topic arrived after
// the watermark had passed its time: the explain view then shows why a
// timer it should have cancelled may have fired.
func recordLate(c *schemas.Customer, topic string, ev *schemas.Event, now time.Time) {
	c.Decisions = append(c.Decisions, schemas.Decision{
		At: ev.Time, Recorded: now, Action: schemas.DecisionLateEvent,
		Reason: "arrived_after_watermark", Policy: topic, Event: ev.ID,
	})
	trimDecisions(c)
}

// trimDecisions keeps the last schemas.MaxDecisions of c's audit trail.
func trimDecisions(c *schemas.Customer) {
	if n := len(c.Decisions); n > schemas.MaxDecisions {
		// Shift in place: the slice (and its strings, the decoder's
		// hints) is reused from batch to batch.
		k := copy(c.Decisions, c.Decisions[n-schemas.MaxDecisions:])
		clear(c.Decisions[k:])
		c.Decisions = c.Decisions[:k]
	}
}
