package processor

import (
	"time"

	"go.uber.org/zap"

	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
)

// GDPR erasure. A profile_erase event on the profile topic is the one way
// to erase a customer; the admin API's erase produces such an event rather
// than erasing by itself (see ProduceErase). So an erase is ordered with
// the customer's other events on its partition (events before it are
// processed before it, events after it start a new record), it is handled
// by the one worker that owns the customer's state, and it commits in the
// same transaction as its changelog tombstones and the erased record on the
// trigger topic: either all of it happened or none of it.

// neverExpires is the expiry of an erased record: a notice to purge must
// not be dropped as stale by a sender that honours expires_at.
var neverExpires = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// erase removes everything the state holds about ev's customer (record,
// counters, profile, marks, contact history, audit trail, timers and
// deferred triggers: see state.Partition.Erase) and writes the erased
// record to the trigger topic.
func (w *worker) erase(ev *schemas.Event, now time.Time) error {
	if err := w.part.Erase(ev.Customer); err != nil {
		return err
	}
	tr := schemas.Trigger{
		// Deterministic like every trigger ID: a replay of the same
		// erase event writes the same ID.
		ID:        rules.TriggerID(ev.Customer, schemas.EraseRule, 0, 0, ev.ID),
		Rule:      schemas.EraseRule,
		Kind:      schemas.KindErased,
		Customer:  ev.Customer,
		FiredAt:   now,
		DueAt:     ev.Time,
		ExpiresAt: neverExpires,
		CausedBy:  []string{ev.ID},
	}
	if err := w.out.trigger(&tr, now); err != nil {
		return err
	}
	w.erased++
	// The customer ID only at debug level, like every per-customer line.
	if w.log.Core().Enabled(zap.DebugLevel) {
		w.log.Debug("customer erased", zap.String("customer_id", string(ev.Customer)), zap.String("event_id", ev.ID))
	}
	return nil
}
