package state

import (
	"encoding/hex"

	"github.com/triggerd/triggerd/schemas"
)

// The contact history (maintained by the contact policy) and the audit
// trail of decisions (maintained by the processor).

// Field numbers of schemas.Contact and schemas.Decision.
const (
	contactAt      = 1 // time
	contactChannel = 2 // string
	contactRule    = 3 // string
	// Format 2: names by index (see names).
	contactChannelRef = 4 // varint
	contactRuleRef    = 5 // varint

	// schemas.Decision: strings only from the rules file and the policy
	// (rule, channel, reason, policy), the trigger ID and a late event's
	// ID: never attribute values.
	decAt         = 1  // time
	decRecorded   = 2  // time
	decAction     = 3  // string
	decRule       = 4  // string
	decVersion    = 5  // varint
	decStage      = 6  // varint
	decChannel    = 7  // string
	decTriggerID  = 8  // string
	decReason     = 9  // string
	decPolicy     = 10 // string
	decDeferredTo = 11 // time
	decTriggerKey = 12 // bytes: the trigger ID's 16 bytes when it is 32 lowercase hex digits (format 2)
	// Format 2: a name used before in the record, by its index (see names).
	decActionRef  = 13 // varint
	decRuleRef    = 14 // varint
	decChannelRef = 15 // varint
	decReasonRef  = 16 // varint
	decPolicyRef  = 17 // varint
	decEvent      = 18 // string: a late event's ID
)

var (
	contactFields = newFieldTable(bytesField(contactAt), bytesField(contactChannel), bytesField(contactRule),
		varintField(contactChannelRef), varintField(contactRuleRef))
	decisionFields = newFieldTable(bytesField(decAt), bytesField(decRecorded), bytesField(decAction),
		bytesField(decRule), varintField(decVersion), varintField(decStage), bytesField(decChannel),
		bytesField(decTriggerID), bytesField(decReason), bytesField(decPolicy), bytesField(decDeferredTo),
		bytesField(decTriggerKey), varintField(decActionRef), varintField(decRuleRef),
		varintField(decChannelRef), varintField(decReasonRef), varintField(decPolicyRef), bytesField(decEvent))
)

func appendContact(b []byte, field int, ct *schemas.Contact, base timeBase, nm *names) []byte {
	b, at := beginNested(b, field)
	b = base.appendCTimeField(b, contactAt, ct.At)
	b = nm.append(b, contactChannel, contactChannelRef, string(ct.Channel))
	b = nm.append(b, contactRule, contactRuleRef, string(ct.Rule))
	return endNested(b, at)
}

// decodeContact decodes into ct, a reused slot whose strings are hints.
func decodeContact(r reader, ct *schemas.Contact) error {
	old := *ct
	*ct = schemas.Contact{}
	for r.next(contactFields) {
		switch r.field {
		case contactAt:
			ct.At = r.time()
		case contactChannel:
			ct.Channel = schemas.Channel(r.name(string(old.Channel)))
		case contactChannelRef:
			ct.Channel = schemas.Channel(r.nameRef())
		case contactRule:
			ct.Rule = schemas.RuleID(r.name(string(old.Rule)))
		case contactRuleRef:
			ct.Rule = schemas.RuleID(r.nameRef())
		}
	}
	return r.err
}

func appendDecision(b []byte, field int, d *schemas.Decision, base timeBase, nm *names) []byte {
	b, at := beginNested(b, field)
	b = base.appendCTimeField(b, decAt, d.At)
	b = base.appendCTimeField(b, decRecorded, d.Recorded)
	b = nm.append(b, decAction, decActionRef, string(d.Action))
	b = nm.append(b, decRule, decRuleRef, string(d.Rule))
	if d.RuleVersion != 0 {
		b = appendIntField(b, decVersion, int64(d.RuleVersion))
	}
	if d.Stage != 0 {
		b = appendIntField(b, decStage, int64(d.Stage))
	}
	b = nm.append(b, decChannel, decChannelRef, string(d.Channel))
	b = nm.append(b, decReason, decReasonRef, d.Reason)
	b = nm.append(b, decPolicy, decPolicyRef, d.Policy)
	if id, ok := hexID(d.TriggerID); ok {
		b = appendTag(b, decTriggerKey, wireBytes)
		b = append(b, byte(len(id)))
		b = append(b, id[:]...)
	} else if d.TriggerID != "" {
		b = appendStringField(b, decTriggerID, d.TriggerID)
	}
	b = base.appendCTimeField(b, decDeferredTo, d.DeferredTo)
	if d.Event != "" {
		b = appendStringField(b, decEvent, d.Event)
	}
	return endNested(b, at)
}

// decodeDecision decodes into d, a reused slot whose old strings are hints
// (the same rule, channel and policy names recur from entry to entry).
func decodeDecision(r reader, d *schemas.Decision) error {
	old := *d
	*d = schemas.Decision{}
	for r.next(decisionFields) {
		switch r.field {
		case decAt:
			d.At = r.time()
		case decRecorded:
			d.Recorded = r.time()
		case decAction:
			d.Action = schemas.DecisionAction(r.name(string(old.Action)))
		case decActionRef:
			d.Action = schemas.DecisionAction(r.nameRef())
		case decRule:
			d.Rule = schemas.RuleID(r.name(string(old.Rule)))
		case decRuleRef:
			d.Rule = schemas.RuleID(r.nameRef())
		case decVersion:
			d.RuleVersion = int32(r.varint())
		case decStage:
			d.Stage = int32(r.varint())
		case decChannel:
			d.Channel = schemas.Channel(r.name(string(old.Channel)))
		case decChannelRef:
			d.Channel = schemas.Channel(r.nameRef())
		case decTriggerID:
			d.TriggerID = str(r.bytes(), old.TriggerID)
		case decEvent:
			d.Event = str(r.bytes(), old.Event)
		case decTriggerKey:
			v := r.bytes()
			if r.err != nil {
				break
			}
			if len(v) != 16 {
				r.fail(errTruncated)
				break
			}
			var buf [32]byte
			hex.Encode(buf[:], v)
			d.TriggerID = str(buf[:], old.TriggerID)
		case decReason:
			d.Reason = r.name(old.Reason)
		case decReasonRef:
			d.Reason = r.nameRef()
		case decPolicy:
			d.Policy = r.name(old.Policy)
		case decPolicyRef:
			d.Policy = r.nameRef()
		case decDeferredTo:
			d.DeferredTo = r.time()
		}
	}
	return r.err
}

// hexID returns the 16 bytes of a 32-digit lowercase hex ID (a trigger ID),
// which the audit trail stores in half the space. It runs for every decision
// of every customer record written, so it looks digits up in a table.
func hexID(s string) (id [16]byte, ok bool) {
	if len(s) != 32 {
		return id, false
	}
	var bad byte
	for i := range id {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		id[i] = hi<<4 | lo&15
	}
	return id, bad < 16
}

// hexValue maps a lowercase hex digit to its value, anything else to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()
