package processor

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/schemas"
)

// The contact policy (rules/policy.go) decides inside the rules'
// evaluation; what it stops or holds back comes back in Actions.Suppress
// and is written here to the suppressions topic, in the same transaction
// as the triggers and the changelog records of the contact history it
// counted. So a suppression is on the topic exactly when its decision is in
// the committed state.

// Headers on suppression records, besides those of a trigger.
const (
	HeaderAction = "action"
	HeaderReason = "reason"
)

// SuppressionsTopic is the topic suppression records go to:
// Topics.Suppressions, or "<triggers>.suppressions" when that is empty (a
// configuration written before the contact policy existed).
func (c *Config) SuppressionsTopic() string {
	if c.Topics.Suppressions != "" {
		return c.Topics.Suppressions
	}
	return c.Topics.Triggers + ".suppressions"
}

// SuppressionsFormat is the encoding of the suppressions topic: as the
// triggers unless set.
func (c *Config) SuppressionsFormat() schemas.Format {
	if c.Encodings.Suppressions != "" {
		return c.Encodings.Suppressions
	}
	return c.Encodings.Triggers
}

// writeSuppressions produces the evaluation's suppression records, keyed
// by customer ID like the triggers.
func (w *worker) writeSuppressions(now time.Time) error {
	sups := w.actions.Suppress
	if len(sups) == 0 {
		return nil
	}
	for i := range sups {
		s := &sups[i]
		s.Trigger.FiredAt = now
		val, err := w.out.supEnc.Encode(nil, s)
		if err != nil {
			return fmt.Errorf("processor: encoding suppression of %s: %w", s.Trigger.ID, err)
		}
		tr := &s.Trigger
		w.out.produce(triggerRecord(w.cfg.SuppressionsTopic(), tr, val, now,
			kgo.RecordHeader{Key: HeaderAction, Value: []byte(s.Action)},
			kgo.RecordHeader{Key: HeaderReason, Value: []byte(s.Reason)},
		), w.out.promise)
		w.suppressed = append(w.suppressed, suppressed{action: s.Action, reason: s.Reason, channel: tr.Channel})
	}
	return nil
}

type suppressed struct {
	action  schemas.SuppressAction
	reason  string
	channel schemas.Channel
}

// countSuppressed counts the committed cycle's suppressions and deferrals.
func (w *worker) countSuppressed() {
	if len(w.suppressed) == 0 {
		return
	}
	m := w.m
	m.policy.Lock()
	for _, s := range w.suppressed {
		if s.action == schemas.ActionDeferred {
			m.policy.byReason["deferred"]++
		} else {
			m.policy.byReason[s.reason]++
		}
	}
	m.policy.Unlock()
	for _, s := range w.suppressed {
		if s.action == schemas.ActionDeferred {
			m.deferrals.WithLabelValues(s.reason, string(s.channel)).Inc()
		} else {
			m.suppressions.WithLabelValues(s.reason, string(s.channel)).Inc()
		}
	}
	w.suppressed = w.suppressed[:0]
}

// Suppressions returns the committed suppressions by reason, and the
// deferrals under "deferred", since the processor started (for the demo's
// summary and tests).
func (p *Processor) Suppressions() map[string]int64 {
	p.m.policy.Lock()
	defer p.m.policy.Unlock()
	out := make(map[string]int64, len(p.m.policy.byReason))
	for k, v := range p.m.policy.byReason {
		out[k] = v
	}
	return out
}
