package state

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Field numbers of schemas.Timer and of schemas.Trigger inside a timer (a
// deferred trigger, added with the contact policy). Times here are absolute
// (unix seconds, nanoseconds): a timer record has no base time.
const (
	timerCustomer   = 1 // string
	timerID         = 2 // string
	timerDue        = 3 // varint unix milliseconds
	timerRule       = 4 // string
	timerStage      = 5 // varint
	timerOccurrence = 6 // string
	timerCausedBy   = 7 // string, repeated
	timerDeferred   = 8 // nested trigger (added with the contact policy)

	// FiredAt is not stored: it is set when the trigger is written.
	trigID        = 1  // string
	trigRule      = 2  // string
	trigVersion   = 3  // varint
	trigKind      = 4  // string
	trigStage     = 5  // varint
	trigChannel   = 6  // string
	trigPriority  = 7  // varint
	trigCustomer  = 8  // string
	trigDueAt     = 9  // time
	trigExpiresAt = 10 // time
	trigCausedBy  = 11 // string, repeated
	trigAttribute = 12 // tuple (key length, key, value...), repeated, sorted by key
	trigItem      = 13 // nested item (as in the cart, codec_cart.go), repeated
	trigValue     = 14 // money
)

var (
	timerFields = newFieldTable(bytesField(timerCustomer), bytesField(timerID), varintField(timerDue),
		bytesField(timerRule), varintField(timerStage), bytesField(timerOccurrence),
		bytesField(timerCausedBy), bytesField(timerDeferred))
	triggerFields = newFieldTable(bytesField(trigID), bytesField(trigRule), varintField(trigVersion),
		bytesField(trigKind), varintField(trigStage), bytesField(trigChannel), varintField(trigPriority),
		bytesField(trigCustomer), bytesField(trigDueAt), bytesField(trigExpiresAt), bytesField(trigCausedBy),
		bytesField(trigAttribute), bytesField(trigItem), bytesField(trigValue))
)

// appendTimer appends the encoding of t with its due time dueMS (unix
// milliseconds; the caller has truncated t.Due).
func appendTimer(b []byte, t *schemas.Timer, dueMS int64) []byte {
	b = append(b, timerV1)
	b = appendStringField(b, timerCustomer, string(t.Customer))
	b = appendStringField(b, timerID, t.ID)
	b = appendIntField(b, timerDue, dueMS)
	if t.Rule != "" {
		b = appendStringField(b, timerRule, string(t.Rule))
	}
	if t.Stage != 0 {
		b = appendIntField(b, timerStage, int64(t.Stage))
	}
	if t.Occurrence != "" {
		b = appendStringField(b, timerOccurrence, t.Occurrence)
	}
	for _, s := range t.CausedBy {
		b = appendStringField(b, timerCausedBy, s)
	}
	if t.Deferred != nil {
		var at int
		b, at = beginNested(b, timerDeferred)
		b = appendTrigger(b, t.Deferred)
		b = endNested(b, at)
	}
	return b
}

// decodeTimer decodes b into t (overwriting it; CausedBy is freshly
// allocated, as the timer is handed to the caller) and returns the due time in
// unix milliseconds.
func decodeTimer(b []byte, t *schemas.Timer) (int64, error) {
	*t = schemas.Timer{}
	if len(b) == 0 {
		return 0, fmt.Errorf("timer record: %w", errTruncated)
	}
	if b[0] != timerV1 {
		return 0, fmt.Errorf("timer record format version %d is unknown to this release", b[0])
	}
	r := reader{b: b[1:]}
	var due int64
	sawDue := false
	for r.next(timerFields) {
		switch r.field {
		case timerCustomer:
			t.Customer = schemas.CustomerID(r.bytes())
		case timerID:
			t.ID = string(r.bytes())
		case timerDue:
			due = r.varint()
			sawDue = true
		case timerRule:
			t.Rule = schemas.RuleID(r.bytes())
		case timerStage:
			t.Stage = int32(r.varint())
		case timerOccurrence:
			t.Occurrence = string(r.bytes())
		case timerCausedBy:
			t.CausedBy = append(t.CausedBy, string(r.bytes()))
		case timerDeferred:
			if v := r.bytes(); r.err == nil {
				t.Deferred = new(schemas.Trigger)
				r.failIf(decodeTrigger(v, t.Deferred))
			}
		}
	}
	if r.err != nil {
		return 0, fmt.Errorf("timer record: %w", r.err)
	}
	if !sawDue {
		return 0, fmt.Errorf("timer record has no due time")
	}
	t.Due = time.UnixMilli(due).UTC()
	return due, nil
}

// appendTrigger appends the fields of a deferred trigger (no version byte:
// it is nested in a timer record). Attributes are written sorted by key, so
// equal triggers encode to equal bytes.
func appendTrigger(b []byte, tr *schemas.Trigger) []byte {
	b = appendStringField(b, trigID, tr.ID)
	b = appendStringField(b, trigRule, string(tr.Rule))
	if tr.RuleVersion != 0 {
		b = appendIntField(b, trigVersion, int64(tr.RuleVersion))
	}
	if tr.Kind != "" {
		b = appendStringField(b, trigKind, tr.Kind)
	}
	if tr.Stage != 0 {
		b = appendIntField(b, trigStage, int64(tr.Stage))
	}
	if tr.Channel != "" {
		b = appendStringField(b, trigChannel, string(tr.Channel))
	}
	if tr.Priority != 0 {
		b = appendIntField(b, trigPriority, int64(tr.Priority))
	}
	b = appendStringField(b, trigCustomer, string(tr.Customer))
	b = appendTimeField(b, trigDueAt, tr.DueAt)
	b = appendTimeField(b, trigExpiresAt, tr.ExpiresAt)
	for _, s := range tr.CausedBy {
		b = appendStringField(b, trigCausedBy, s)
	}
	keys := make([]string, 0, len(tr.Attributes))
	for k := range tr.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var at int
		b, at = beginNested(b, trigAttribute)
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = append(b, tr.Attributes[k]...)
		b = endNested(b, at)
	}
	for i := range tr.Items {
		b = appendItem(b, trigItem, &tr.Items[i])
	}
	if tr.Value != (schemas.Money{}) {
		b = appendMoneyField(b, trigValue, tr.Value)
	}
	return b
}

func decodeTrigger(b []byte, tr *schemas.Trigger) error {
	*tr = schemas.Trigger{}
	r := reader{b: b}
	for r.next(triggerFields) {
		switch r.field {
		case trigID:
			tr.ID = string(r.bytes())
		case trigRule:
			tr.Rule = schemas.RuleID(r.bytes())
		case trigVersion:
			tr.RuleVersion = int32(r.varint())
		case trigKind:
			tr.Kind = string(r.bytes())
		case trigStage:
			tr.Stage = int32(r.varint())
		case trigChannel:
			tr.Channel = channel(r.bytes())
		case trigPriority:
			tr.Priority = int32(r.varint())
		case trigCustomer:
			tr.Customer = schemas.CustomerID(r.bytes())
		case trigDueAt:
			tr.DueAt = r.time()
		case trigExpiresAt:
			tr.ExpiresAt = r.time()
		case trigCausedBy:
			tr.CausedBy = append(tr.CausedBy, string(r.bytes()))
		case trigAttribute:
			t := reader{b: r.bytes()}
			if r.err != nil {
				break
			}
			n := t.uvarint()
			if t.err != nil || n > uint64(len(t.b)) {
				r.fail(errTruncated)
				break
			}
			if tr.Attributes == nil {
				tr.Attributes = map[string]string{}
			}
			tr.Attributes[string(t.b[:n])] = string(t.b[n:])
		case trigItem:
			if v := r.bytes(); r.err == nil {
				tr.Items = append(tr.Items, schemas.Item{})
				r.failIf(decodeItem(v, &tr.Items[len(tr.Items)-1]))
			}
		case trigValue:
			r.money(&tr.Value, "")
		}
	}
	return r.err
}
