package state

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Format versions: the first byte of every record. Adding a field does not
// change it (readers skip unknown fields); a version is added only for a
// change the field scheme cannot express, and the decoder keeps a case for
// every version it has ever written.
const (
	customerV1 = 1
	// customerV2: the base time (varint unix milliseconds) follows the
	// version byte, and every time in the record is compact (see
	// appendCTime), relative to it.
	customerV2 = 2
	timerV1    = 1
	offsetsV1  = 1
	heldV1     = 1
)

// Field numbers. Never renumber or reuse one: an old record would decode
// into the wrong field. Retire a number by leaving it in a comment. A time
// inside a customer record is (unix seconds, nanoseconds) in format 1 and
// compact (appendCTime) in format 2.
const (
	// schemas.Customer. The ID is not stored: it is the key.
	custFirstSeen        = 1 // time
	custLastSeen         = 2 // time
	custCart             = 3 // nested cart
	custEvents           = 4 // varint
	custPurchases        = 5 // varint
	custSpend            = 6 // money, repeated
	custProfile          = 7 // nested profile
	custProfileUpdatedAt = 8 // time
	// Maintained by the rules engine (added with the rules language).
	custTx             = 9  // nested tx stat, repeated
	custLastPurchaseAt = 10 // time
	custSeen           = 11 // tuple (time, type...), repeated
	custAggregate      = 12 // nested aggregate, repeated
	custRFM            = 13 // nested RFM
	custRun            = 14 // nested run, repeated
	custMark           = 15 // nested mark, repeated
	custRecent         = 16 // tuple (time, event ID...), repeated (format 1; format 2 writes custRecentKeys)
	// Maintained by the contact policy (added with the contact policy).
	custContact    = 17 // nested contact, repeated
	custUnanswered = 18 // varint
	// Maintained by the processor (added with the admin API).
	custDecision = 19 // nested decision, repeated
	// Format 2: the dedupe window as fingerprints (see schemas.EventKey).
	custRecentKeys = 20 // tuple (8-byte little-endian key, compact time)..., one field for all

	// schemas.Decision: the audit trail. Strings only from the rules file
	// and the policy (rule, channel, reason, policy) and the trigger ID:
	// never attribute values.
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

	// schemas.Contact
	contactAt      = 1 // time
	contactChannel = 2 // string
	contactRule    = 3 // string
	// Format 2: names by index (see names).
	contactChannelRef = 4 // varint
	contactRuleRef    = 5 // varint

	// schemas.TxStat
	txCurrency = 1 // string
	txCount    = 2 // varint
	txSum      = 3 // varint

	// schemas.Aggregate
	aggName  = 1 // string
	aggEntry = 2 // tuple (time, value, key...), repeated

	// schemas.RFM
	rfmR       = 1 // varint
	rfmF       = 2 // varint
	rfmM       = 3 // varint
	rfmSegment = 4 // string

	// schemas.Run
	runRule                 = 1  // string
	runKey                  = 2  // string
	runOccurrence           = 3  // string
	runStage                = 4  // varint
	runStartedAt            = 5  // time
	runVersion              = 6  // varint
	runDue                  = 7  // time, repeated (format 1 wrote a zero time as (0, 0), format 2 as nothing)
	runCausedBy             = 8  // string
	runCausedByIsOccurrence = 9  // varint 1: CausedBy equals Occurrence, not written (format 2)
	runRuleRef              = 10 // varint: the rule by index (format 2, see names)

	// schemas.Mark
	markRule    = 1 // string
	markKey     = 2 // string
	markAt      = 3 // time
	markExpires = 4 // time
	markRuleRef = 5 // varint: the rule by index (format 2, see names)

	// schemas.Cart
	cartItem      = 1 // nested item, repeated
	cartUpdatedAt = 2 // time
	cartLastEvent = 3 // string

	// schemas.Item
	itemProductID = 1 // string
	itemQuantity  = 2 // varint
	itemUnitPrice = 3 // money

	// schemas.Profile
	profBirthday    = 1 // date
	profSignupDate  = 2 // date
	profTimeZone    = 3 // string
	profCountry     = 4 // string
	profOptIn       = 5 // tuple (bool, channel...), repeated
	profContractEnd = 6 // date

	// schemas.Timer
	timerCustomer   = 1 // string
	timerID         = 2 // string
	timerDue        = 3 // varint unix milliseconds
	timerRule       = 4 // string
	timerStage      = 5 // varint
	timerOccurrence = 6 // string
	timerCausedBy   = 7 // string, repeated
	timerDeferred   = 8 // nested trigger (added with the contact policy)

	// schemas.Trigger, inside a timer (a deferred trigger). FiredAt is
	// not stored: it is set when the trigger is written.
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
	trigItem      = 13 // nested item (as in the cart), repeated
	trigValue     = 14 // money

	// Offsets
	offChangelog = 1 // varint
	offInput     = 2 // tuple (next offset, topic...), repeated
)

// appendCustomer appends the encoding of c to b. It allocates only when b
// lacks capacity (or c has more than 8 opt-in channels, see sortedChannels).
func appendCustomer(b []byte, c *schemas.Customer) []byte {
	base := newTimeBase(c.LastSeen)
	b = append(b, customerV2)
	b = binary.AppendVarint(b, int64(base))
	b = base.appendCTimeField(b, custFirstSeen, c.FirstSeen)
	b = base.appendCTimeField(b, custLastSeen, c.LastSeen)
	if len(c.Cart.Items) > 0 || !c.Cart.UpdatedAt.IsZero() || c.Cart.LastEvent != "" {
		var at int
		b, at = beginNested(b, custCart)
		for i := range c.Cart.Items {
			it := &c.Cart.Items[i]
			var at2 int
			b, at2 = beginNested(b, cartItem)
			if it.ProductID != "" {
				b = appendStringField(b, itemProductID, it.ProductID)
			}
			if it.Quantity != 0 {
				b = appendIntField(b, itemQuantity, int64(it.Quantity))
			}
			if it.UnitPrice != (schemas.Money{}) {
				b = appendMoneyField(b, itemUnitPrice, it.UnitPrice)
			}
			b = endNested(b, at2)
		}
		b = base.appendCTimeField(b, cartUpdatedAt, c.Cart.UpdatedAt)
		if c.Cart.LastEvent != "" {
			b = appendStringField(b, cartLastEvent, c.Cart.LastEvent)
		}
		b = endNested(b, at)
	}
	if c.Events != 0 {
		b = appendIntField(b, custEvents, c.Events)
	}
	if c.Purchases != 0 {
		b = appendIntField(b, custPurchases, c.Purchases)
	}
	for _, m := range c.Spend {
		b = appendMoneyField(b, custSpend, m)
	}
	if pr := &c.Profile; !pr.Birthday.IsZero() || !pr.SignupDate.IsZero() || pr.TimeZone != "" ||
		pr.Country != "" || len(pr.OptIns) > 0 || !pr.ContractEnd.IsZero() {
		var at int
		b, at = beginNested(b, custProfile)
		b = appendDateField(b, profBirthday, pr.Birthday)
		b = appendDateField(b, profSignupDate, pr.SignupDate)
		if pr.TimeZone != "" {
			b = appendStringField(b, profTimeZone, pr.TimeZone)
		}
		if pr.Country != "" {
			b = appendStringField(b, profCountry, pr.Country)
		}
		var buf [8]schemas.Channel
		for _, ch := range sortedChannels(buf[:0], pr.OptIns) {
			var at2 int
			b, at2 = beginNested(b, profOptIn)
			if pr.OptIns[ch] {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			b = append(b, ch...)
			b = endNested(b, at2)
		}
		b = appendDateField(b, profContractEnd, pr.ContractEnd)
		b = endNested(b, at)
	}
	b = base.appendCTimeField(b, custProfileUpdatedAt, c.ProfileUpdatedAt)
	var nm names
	return appendEngineFields(b, c, base, &nm)
}

// appendEngineFields appends the fields the rules engine maintains.
func appendEngineFields(b []byte, c *schemas.Customer, base timeBase, nm *names) []byte {
	for i := range c.Tx {
		tx := &c.Tx[i]
		var at int
		b, at = beginNested(b, custTx)
		if tx.Currency != "" {
			b = appendStringField(b, txCurrency, tx.Currency)
		}
		if tx.Count != 0 {
			b = appendIntField(b, txCount, tx.Count)
		}
		if tx.Sum != 0 {
			b = appendIntField(b, txSum, tx.Sum)
		}
		b = endNested(b, at)
	}
	b = base.appendCTimeField(b, custLastPurchaseAt, c.LastPurchaseAt)
	for i := range c.Seen {
		b = base.appendStampedString(b, custSeen, c.Seen[i].At, 0, false, string(c.Seen[i].Type))
	}
	for i := range c.Aggregates {
		ag := &c.Aggregates[i]
		var at int
		b, at = beginNested(b, custAggregate)
		if ag.Name != "" {
			b = appendStringField(b, aggName, ag.Name)
		}
		for j := range ag.Entries {
			e := &ag.Entries[j]
			b = base.appendStampedString(b, aggEntry, e.At, e.Value, true, e.Key)
		}
		b = endNested(b, at)
	}
	if r := &c.RFM; *r != (schemas.RFM{}) {
		var at int
		b, at = beginNested(b, custRFM)
		if r.R != 0 {
			b = appendIntField(b, rfmR, int64(r.R))
		}
		if r.F != 0 {
			b = appendIntField(b, rfmF, int64(r.F))
		}
		if r.M != 0 {
			b = appendIntField(b, rfmM, int64(r.M))
		}
		if r.Segment != "" {
			b = appendStringField(b, rfmSegment, r.Segment)
		}
		b = endNested(b, at)
	}
	for i := range c.Runs {
		run := &c.Runs[i]
		var at int
		b, at = beginNested(b, custRun)
		b = nm.append(b, runRule, runRuleRef, string(run.Rule))
		if run.Key != "" {
			b = appendStringField(b, runKey, run.Key)
		}
		if run.Occurrence != "" {
			b = appendStringField(b, runOccurrence, run.Occurrence)
		}
		if run.Stage != 0 {
			b = appendIntField(b, runStage, int64(run.Stage))
		}
		b = base.appendCTimeField(b, runStartedAt, run.StartedAt)
		if run.Version != 0 {
			b = appendIntField(b, runVersion, int64(run.Version))
		}
		for _, d := range run.Due {
			// Every entry is written, a zero time too: the
			// positions are the stage numbers.
			var at2 int
			b, at2 = beginNested(b, runDue)
			if !d.IsZero() {
				b = base.appendCTime(b, d)
			}
			b = endNested(b, at2)
		}
		switch {
		case run.CausedBy == "":
		case run.CausedBy == run.Occurrence:
			// A run per event: its occurrence is the event ID.
			b = appendIntField(b, runCausedByIsOccurrence, 1)
		default:
			b = appendStringField(b, runCausedBy, run.CausedBy)
		}
		b = endNested(b, at)
	}
	for i := range c.Marks {
		m := &c.Marks[i]
		var at int
		b, at = beginNested(b, custMark)
		b = nm.append(b, markRule, markRuleRef, string(m.Rule))
		if m.Key != "" {
			b = appendStringField(b, markKey, m.Key)
		}
		b = base.appendCTimeField(b, markAt, m.At)
		b = base.appendCTimeField(b, markExpires, m.Expires)
		b = endNested(b, at)
	}
	if len(c.Recent) > 0 {
		var at int
		b, at = beginNested(b, custRecentKeys)
		for i := range c.Recent {
			b = binary.LittleEndian.AppendUint64(b, c.Recent[i].Key)
			b = base.appendCTime(b, c.Recent[i].At)
		}
		b = endNested(b, at)
	}
	for i := range c.Contacts {
		ct := &c.Contacts[i]
		var at int
		b, at = beginNested(b, custContact)
		b = base.appendCTimeField(b, contactAt, ct.At)
		b = nm.append(b, contactChannel, contactChannelRef, string(ct.Channel))
		b = nm.append(b, contactRule, contactRuleRef, string(ct.Rule))
		b = endNested(b, at)
	}
	if c.Unanswered != 0 {
		b = appendIntField(b, custUnanswered, int64(c.Unanswered))
	}
	for i := range c.Decisions {
		b = appendDecision(b, &c.Decisions[i], base, nm)
	}
	return b
}

func appendDecision(b []byte, d *schemas.Decision, base timeBase, nm *names) []byte {
	b, at := beginNested(b, custDecision)
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
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case decAt:
			if r.expect(w, wireBytes) {
				d.At = r.time()
			}
		case decRecorded:
			if r.expect(w, wireBytes) {
				d.Recorded = r.time()
			}
		case decAction:
			if r.expect(w, wireBytes) {
				d.Action = schemas.DecisionAction(r.name(string(old.Action)))
			}
		case decActionRef:
			if r.expect(w, wireVarint) {
				d.Action = schemas.DecisionAction(r.nameRef())
			}
		case decRule:
			if r.expect(w, wireBytes) {
				d.Rule = schemas.RuleID(r.name(string(old.Rule)))
			}
		case decRuleRef:
			if r.expect(w, wireVarint) {
				d.Rule = schemas.RuleID(r.nameRef())
			}
		case decVersion:
			if r.expect(w, wireVarint) {
				d.RuleVersion = int32(r.varint())
			}
		case decStage:
			if r.expect(w, wireVarint) {
				d.Stage = int32(r.varint())
			}
		case decChannel:
			if r.expect(w, wireBytes) {
				d.Channel = schemas.Channel(r.name(string(old.Channel)))
			}
		case decChannelRef:
			if r.expect(w, wireVarint) {
				d.Channel = schemas.Channel(r.nameRef())
			}
		case decTriggerID:
			if r.expect(w, wireBytes) {
				d.TriggerID = str(r.bytes(), old.TriggerID)
			}
		case decEvent:
			if r.expect(w, wireBytes) {
				d.Event = str(r.bytes(), old.Event)
			}
		case decTriggerKey:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					if len(v) != 16 {
						r.fail(errTruncated)
						break
					}
					var buf [32]byte
					hex.Encode(buf[:], v)
					d.TriggerID = str(buf[:], old.TriggerID)
				}
			}
		case decReason:
			if r.expect(w, wireBytes) {
				d.Reason = r.name(old.Reason)
			}
		case decReasonRef:
			if r.expect(w, wireVarint) {
				d.Reason = r.nameRef()
			}
		case decPolicy:
			if r.expect(w, wireBytes) {
				d.Policy = r.name(old.Policy)
			}
		case decPolicyRef:
			if r.expect(w, wireVarint) {
				d.Policy = r.nameRef()
			}
		case decDeferredTo:
			if r.expect(w, wireBytes) {
				d.DeferredTo = r.time()
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeContact(r reader, ct *schemas.Contact) error {
	old := *ct
	*ct = schemas.Contact{}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case contactAt:
			if r.expect(w, wireBytes) {
				ct.At = r.time()
			}
		case contactChannel:
			if r.expect(w, wireBytes) {
				ct.Channel = schemas.Channel(r.name(string(old.Channel)))
			}
		case contactChannelRef:
			if r.expect(w, wireVarint) {
				ct.Channel = schemas.Channel(r.nameRef())
			}
		case contactRule:
			if r.expect(w, wireBytes) {
				ct.Rule = schemas.RuleID(r.name(string(old.Rule)))
			}
		case contactRuleRef:
			if r.expect(w, wireVarint) {
				ct.Rule = schemas.RuleID(r.nameRef())
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

// appendStampedString writes the tuple (compact time, [value,] string...):
// the compact form of the small, numerous entries (windows, last seen per
// type). Format 1 wrote (unix seconds, nanos, [value,] string...).
func (base timeBase) appendStampedString(b []byte, field int, t time.Time, v int64, withValue bool, s string) []byte {
	b, at := beginNested(b, field)
	b = base.appendCTime(b, t)
	if withValue {
		b = binary.AppendVarint(b, v)
	}
	b = append(b, s...)
	return endNested(b, at)
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

// sortedChannels returns the keys of m in order, so that equal records encode
// to equal bytes. It appends to dst (a stack array in the caller: a customer
// has a handful of channels).
func sortedChannels(dst []schemas.Channel, m map[schemas.Channel]bool) []schemas.Channel {
	for ch := range m {
		dst = append(dst, ch)
	}
	slices.Sort(dst)
	return dst
}

// resetCustomer zeroes c except its ID, keeping the capacity of its slices
// and its (cleared) opt-in map for reuse.
func resetCustomer(c *schemas.Customer) {
	items := c.Cart.Items[:0]
	spend := c.Spend[:0]
	optIns := c.Profile.OptIns
	clear(optIns)
	tx, seen, aggs, runs, marks, recent := c.Tx[:0], c.Seen[:0], c.Aggregates[:0], c.Runs[:0], c.Marks[:0], c.Recent[:0]
	contacts, decisions := c.Contacts[:0], c.Decisions[:0]
	*c = schemas.Customer{ID: c.ID}
	c.Contacts, c.Decisions = contacts, decisions
	c.Cart.Items = items
	c.Spend = spend
	c.Profile.OptIns = optIns
	// The slots past the length keep their old values: the decoder uses
	// them as hints (see str) and reuses their inner slices.
	c.Tx, c.Seen, c.Aggregates, c.Runs, c.Marks, c.Recent = tx, seen, aggs, runs, marks, recent
}

// decodeCustomer decodes b into c, reusing c's slices and map. Every field is
// overwritten except c.ID, which the caller takes from the key. On error c
// holds a partial record.
func decodeCustomer(b []byte, c *schemas.Customer) error {
	var nm names
	return decodeCustomerWith(b, c, &nm)
}

// decodeCustomerWith is decodeCustomer with a names table to reuse: a
// partition decodes with its own, so that a decode allocates nothing the
// record does not keep.
func decodeCustomerWith(b []byte, c *schemas.Customer, nm *names) error {
	h := hints{tz: c.Profile.TimeZone, country: c.Profile.Country, segment: c.RFM.Segment}
	resetCustomer(c)
	if len(b) == 0 {
		return fmt.Errorf("customer record: %w", errTruncated)
	}
	switch b[0] {
	case customerV1:
		if err := decodeCustomerFields(reader{b: b[1:]}, c, &h); err != nil {
			return fmt.Errorf("customer record: %w", err)
		}
		return nil
	case customerV2:
		nm.n = 0
		r := reader{b: b[1:], compact: true, names: nm}
		r.base = timeBase(r.varint())
		if r.err != nil {
			return fmt.Errorf("customer record: %w", r.err)
		}
		if err := decodeCustomerFields(r, c, &h); err != nil {
			return fmt.Errorf("customer record: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("customer record format version %d is unknown to this release", b[0])
	}
}

// hints are strings the record held before it was reset (see str).
type hints struct{ tz, country, segment string }

// decodeCustomerFields decodes the fields of a customer record of either
// format; r says which.
func decodeCustomerFields(r reader, c *schemas.Customer, h *hints) error {
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case custFirstSeen:
			if r.expect(w, wireBytes) {
				c.FirstSeen = r.time()
			}
		case custLastSeen:
			if r.expect(w, wireBytes) {
				c.LastSeen = r.time()
			}
		case custCart:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					if err := decodeCart(r.nested(v), &c.Cart); err != nil {
						r.fail(err)
					}
				}
			}
		case custEvents:
			if r.expect(w, wireVarint) {
				c.Events = r.varint()
			}
		case custPurchases:
			if r.expect(w, wireVarint) {
				c.Purchases = r.varint()
			}
		case custSpend:
			if r.expect(w, wireBytes) {
				c.Spend = slices.Grow(c.Spend, 1)
				c.Spend = c.Spend[:len(c.Spend)+1]
				m := &c.Spend[len(c.Spend)-1] // the slot's old value is the hint
				r.money(m, m.Currency)
			}
		case custProfile:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					if err := decodeProfile(r.nested(v), &c.Profile, h); err != nil {
						r.fail(err)
					}
				}
			}
		case custProfileUpdatedAt:
			if r.expect(w, wireBytes) {
				c.ProfileUpdatedAt = r.time()
			}
		case custTx:
			if r.expect(w, wireBytes) {
				c.Tx = grow(c.Tx)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeTx(r.nested(v), &c.Tx[len(c.Tx)-1]))
				}
			}
		case custLastPurchaseAt:
			if r.expect(w, wireBytes) {
				c.LastPurchaseAt = r.time()
			}
		case custSeen:
			if r.expect(w, wireBytes) {
				c.Seen = grow(c.Seen)
				s := &c.Seen[len(c.Seen)-1]
				var typ string
				s.At, _, typ = r.stampedString(false, string(s.Type))
				s.Type = schemas.EventType(typ)
			}
		case custAggregate:
			if r.expect(w, wireBytes) {
				c.Aggregates = grow(c.Aggregates)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeAggregate(r.nested(v), &c.Aggregates[len(c.Aggregates)-1]))
				}
			}
		case custRFM:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeRFM(r.nested(v), &c.RFM, h.segment))
				}
			}
		case custRun:
			if r.expect(w, wireBytes) {
				c.Runs = grow(c.Runs)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeRun(r.nested(v), &c.Runs[len(c.Runs)-1]))
				}
			}
		case custMark:
			if r.expect(w, wireBytes) {
				c.Marks = grow(c.Marks)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeMark(r.nested(v), &c.Marks[len(c.Marks)-1]))
				}
			}
		case custRecent:
			// Format 1: the event IDs themselves.
			if r.expect(w, wireBytes) {
				c.Recent = grow(c.Recent)
				s := &c.Recent[len(c.Recent)-1]
				var id string
				s.At, _, id = r.stampedString(false, "")
				s.Key = schemas.EventKey(id)
			}
		case custRecentKeys:
			if r.expect(w, wireBytes) {
				t := r.nested(r.bytes())
				for !t.done() {
					if len(t.b) < 8 {
						t.fail(errTruncated)
						break
					}
					c.Recent = grow(c.Recent)
					s := &c.Recent[len(c.Recent)-1]
					s.Key = binary.LittleEndian.Uint64(t.b)
					t.b = t.b[8:]
					s.At = t.ctime()
				}
				r.failIf(t.err)
			}
		case custContact:
			if r.expect(w, wireBytes) {
				c.Contacts = grow(c.Contacts)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeContact(r.nested(v), &c.Contacts[len(c.Contacts)-1]))
				}
			}
		case custUnanswered:
			if r.expect(w, wireVarint) {
				c.Unanswered = int32(r.varint())
			}
		case custDecision:
			if r.expect(w, wireBytes) {
				c.Decisions = grow(c.Decisions)
				if v := r.bytes(); r.err == nil {
					r.failIf(decodeDecision(r.nested(v), &c.Decisions[len(c.Decisions)-1]))
				}
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeCart(r reader, cart *schemas.Cart) error {
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case cartItem:
			if r.expect(w, wireBytes) {
				v := r.bytes()
				if r.err != nil {
					break
				}
				cart.Items = slices.Grow(cart.Items, 1)
				cart.Items = cart.Items[:len(cart.Items)+1]
				if err := decodeItem(v, &cart.Items[len(cart.Items)-1]); err != nil {
					r.fail(err)
				}
			}
		case cartUpdatedAt:
			if r.expect(w, wireBytes) {
				cart.UpdatedAt = r.time()
			}
		case cartLastEvent:
			if r.expect(w, wireBytes) {
				cart.LastEvent = string(r.bytes())
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

// decodeItem decodes into it, a reused slot whose old strings are hints.
func decodeItem(b []byte, it *schemas.Item) error {
	old := *it
	*it = schemas.Item{}
	r := reader{b: b}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case itemProductID:
			if r.expect(w, wireBytes) {
				it.ProductID = str(r.bytes(), old.ProductID)
			}
		case itemQuantity:
			if r.expect(w, wireVarint) {
				it.Quantity = int32(r.varint())
			}
		case itemUnitPrice:
			if r.expect(w, wireBytes) {
				r.money(&it.UnitPrice, old.UnitPrice.Currency)
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeProfile(r reader, p *schemas.Profile, h *hints) error {
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case profBirthday:
			if r.expect(w, wireBytes) {
				p.Birthday = r.date()
			}
		case profSignupDate:
			if r.expect(w, wireBytes) {
				p.SignupDate = r.date()
			}
		case profTimeZone:
			if r.expect(w, wireBytes) {
				p.TimeZone = str(r.bytes(), h.tz)
			}
		case profCountry:
			if r.expect(w, wireBytes) {
				p.Country = str(r.bytes(), h.country)
			}
		case profOptIn:
			if r.expect(w, wireBytes) {
				v := r.bytes()
				if r.err != nil {
					break
				}
				if len(v) == 0 || v[0] > 1 {
					r.fail(errTruncated)
					break
				}
				if p.OptIns == nil {
					p.OptIns = make(map[schemas.Channel]bool, 4)
				}
				p.OptIns[channel(v[1:])] = v[0] == 1
			}
		case profContractEnd:
			if r.expect(w, wireBytes) {
				p.ContractEnd = r.date()
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

// grow extends s by one slot and returns it. The new slot keeps the value
// the reused record held there (its strings are the decoder's hints).
func grow[T any](s []T) []T {
	s = slices.Grow(s, 1)
	return s[:len(s)+1]
}

func (r *reader) failIf(err error) {
	if err != nil {
		r.fail(err)
	}
}

// stampedString reads the tuple written by appendStampedString; hint is the
// string the slot held before.
func (r *reader) stampedString(withValue bool, hint string) (time.Time, int64, string) {
	t := r.nested(r.bytes())
	if r.err != nil {
		return time.Time{}, 0, ""
	}
	var at time.Time
	if t.compact {
		at = t.ctime()
	} else {
		sec, nsec := t.varint(), t.uvarint()
		if t.err == nil && nsec >= 1e9 {
			t.fail(errOverflow)
		}
		if sec != 0 || nsec != 0 {
			at = time.Unix(sec, int64(nsec)).UTC()
		}
	}
	var v int64
	if withValue {
		v = t.varint()
	}
	if t.err != nil {
		r.fail(t.err)
		return time.Time{}, 0, ""
	}
	return at, v, str(t.b, hint)
}

func decodeTx(r reader, tx *schemas.TxStat) error {
	hint := tx.Currency
	*tx = schemas.TxStat{}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case txCurrency:
			if r.expect(w, wireBytes) {
				tx.Currency = str(r.bytes(), hint)
			}
		case txCount:
			if r.expect(w, wireVarint) {
				tx.Count = r.varint()
			}
		case txSum:
			if r.expect(w, wireVarint) {
				tx.Sum = r.varint()
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeAggregate(r reader, ag *schemas.Aggregate) error {
	hint := ag.Name
	ag.Name, ag.Entries = "", ag.Entries[:0]
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case aggName:
			if r.expect(w, wireBytes) {
				ag.Name = str(r.bytes(), hint)
			}
		case aggEntry:
			if r.expect(w, wireBytes) {
				ag.Entries = grow(ag.Entries)
				e := &ag.Entries[len(ag.Entries)-1]
				e.At, e.Value, e.Key = r.stampedString(true, e.Key)
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeRFM(r reader, rfm *schemas.RFM, hint string) error {
	*rfm = schemas.RFM{}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case rfmR:
			if r.expect(w, wireVarint) {
				rfm.R = int32(r.varint())
			}
		case rfmF:
			if r.expect(w, wireVarint) {
				rfm.F = int32(r.varint())
			}
		case rfmM:
			if r.expect(w, wireVarint) {
				rfm.M = int32(r.varint())
			}
		case rfmSegment:
			if r.expect(w, wireBytes) {
				rfm.Segment = str(r.bytes(), hint)
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

func decodeRun(r reader, run *schemas.Run) error {
	old := *run
	*run = schemas.Run{Due: old.Due[:0]}
	causedByOcc := false
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case runRule:
			if r.expect(w, wireBytes) {
				run.Rule = schemas.RuleID(r.name(string(old.Rule)))
			}
		case runRuleRef:
			if r.expect(w, wireVarint) {
				run.Rule = schemas.RuleID(r.nameRef())
			}
		case runKey:
			if r.expect(w, wireBytes) {
				run.Key = str(r.bytes(), old.Key)
			}
		case runOccurrence:
			if r.expect(w, wireBytes) {
				run.Occurrence = str(r.bytes(), old.Occurrence)
			}
		case runStage:
			if r.expect(w, wireVarint) {
				run.Stage = int32(r.varint())
			}
		case runStartedAt:
			if r.expect(w, wireBytes) {
				run.StartedAt = r.time()
			}
		case runVersion:
			if r.expect(w, wireVarint) {
				run.Version = int32(r.varint())
			}
		case runDue:
			if r.expect(w, wireBytes) {
				var d time.Time
				if v := r.bytes(); r.err == nil && len(v) > 0 && r.compact {
					t := r.nested(v)
					d = t.ctime()
					if t.err == nil && len(t.b) > 0 {
						t.fail(errOverflow)
					}
					r.failIf(t.err)
				} else if r.err == nil && len(v) > 0 {
					t := reader{b: v}
					sec, nsec := t.varint(), t.uvarint()
					switch {
					case t.err != nil:
						r.fail(t.err)
					case nsec >= 1e9 || len(t.b) > 0:
						r.fail(errOverflow)
					default:
						d = time.Unix(sec, int64(nsec)).UTC()
					}
				}
				if !r.compact && d.Equal(time.Unix(0, 0)) {
					d = time.Time{} // (0, 0) is how format 1 wrote the zero time
				}
				run.Due = append(run.Due, d)
			}
		case runCausedBy:
			if r.expect(w, wireBytes) {
				run.CausedBy = str(r.bytes(), old.CausedBy)
			}
		case runCausedByIsOccurrence:
			if r.expect(w, wireVarint) {
				causedByOcc = r.varint() == 1
			}
		default:
			r.skip(w)
		}
	}
	if causedByOcc {
		run.CausedBy = run.Occurrence
	}
	return r.err
}

func decodeMark(r reader, m *schemas.Mark) error {
	old := *m
	*m = schemas.Mark{}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case markRule:
			if r.expect(w, wireBytes) {
				m.Rule = schemas.RuleID(r.name(string(old.Rule)))
			}
		case markRuleRef:
			if r.expect(w, wireVarint) {
				m.Rule = schemas.RuleID(r.nameRef())
			}
		case markKey:
			if r.expect(w, wireBytes) {
				m.Key = str(r.bytes(), old.Key)
			}
		case markAt:
			if r.expect(w, wireBytes) {
				m.At = r.time()
			}
		case markExpires:
			if r.expect(w, wireBytes) {
				m.Expires = r.time()
			}
		default:
			r.skip(w)
		}
	}
	return r.err
}

// channel returns the known channels without allocating.
func channel(b []byte) schemas.Channel {
	switch schemas.Channel(b) {
	case schemas.ChannelEmail:
		return schemas.ChannelEmail
	case schemas.ChannelSMS:
		return schemas.ChannelSMS
	case schemas.ChannelPush:
		return schemas.ChannelPush
	case schemas.ChannelRisk:
		return schemas.ChannelRisk
	}
	return schemas.Channel(b)
}

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
		it := &tr.Items[i]
		var at int
		b, at = beginNested(b, trigItem)
		if it.ProductID != "" {
			b = appendStringField(b, itemProductID, it.ProductID)
		}
		if it.Quantity != 0 {
			b = appendIntField(b, itemQuantity, int64(it.Quantity))
		}
		if it.UnitPrice != (schemas.Money{}) {
			b = appendMoneyField(b, itemUnitPrice, it.UnitPrice)
		}
		b = endNested(b, at)
	}
	if tr.Value != (schemas.Money{}) {
		b = appendMoneyField(b, trigValue, tr.Value)
	}
	return b
}

func decodeTrigger(b []byte, tr *schemas.Trigger) error {
	*tr = schemas.Trigger{}
	r := reader{b: b}
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case trigID:
			if r.expect(w, wireBytes) {
				tr.ID = string(r.bytes())
			}
		case trigRule:
			if r.expect(w, wireBytes) {
				tr.Rule = schemas.RuleID(r.bytes())
			}
		case trigVersion:
			if r.expect(w, wireVarint) {
				tr.RuleVersion = int32(r.varint())
			}
		case trigKind:
			if r.expect(w, wireBytes) {
				tr.Kind = string(r.bytes())
			}
		case trigStage:
			if r.expect(w, wireVarint) {
				tr.Stage = int32(r.varint())
			}
		case trigChannel:
			if r.expect(w, wireBytes) {
				tr.Channel = channel(r.bytes())
			}
		case trigPriority:
			if r.expect(w, wireVarint) {
				tr.Priority = int32(r.varint())
			}
		case trigCustomer:
			if r.expect(w, wireBytes) {
				tr.Customer = schemas.CustomerID(r.bytes())
			}
		case trigDueAt:
			if r.expect(w, wireBytes) {
				tr.DueAt = r.time()
			}
		case trigExpiresAt:
			if r.expect(w, wireBytes) {
				tr.ExpiresAt = r.time()
			}
		case trigCausedBy:
			if r.expect(w, wireBytes) {
				tr.CausedBy = append(tr.CausedBy, string(r.bytes()))
			}
		case trigAttribute:
			if r.expect(w, wireBytes) {
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
			}
		case trigItem:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					tr.Items = append(tr.Items, schemas.Item{})
					r.failIf(decodeItem(v, &tr.Items[len(tr.Items)-1]))
				}
			}
		case trigValue:
			if r.expect(w, wireBytes) {
				r.money(&tr.Value, "")
			}
		default:
			r.skip(w)
		}
	}
	return r.err
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
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case timerCustomer:
			if r.expect(w, wireBytes) {
				t.Customer = schemas.CustomerID(r.bytes())
			}
		case timerID:
			if r.expect(w, wireBytes) {
				t.ID = string(r.bytes())
			}
		case timerDue:
			if r.expect(w, wireVarint) {
				due = r.varint()
				sawDue = true
			}
		case timerRule:
			if r.expect(w, wireBytes) {
				t.Rule = schemas.RuleID(r.bytes())
			}
		case timerStage:
			if r.expect(w, wireVarint) {
				t.Stage = int32(r.varint())
			}
		case timerOccurrence:
			if r.expect(w, wireBytes) {
				t.Occurrence = string(r.bytes())
			}
		case timerCausedBy:
			if r.expect(w, wireBytes) {
				t.CausedBy = append(t.CausedBy, string(r.bytes()))
			}
		case timerDeferred:
			if r.expect(w, wireBytes) {
				if v := r.bytes(); r.err == nil {
					t.Deferred = new(schemas.Trigger)
					r.failIf(decodeTrigger(v, t.Deferred))
				}
			}
		default:
			r.skip(w)
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

// Offsets are the positions a partition's state reflects.
type Offsets struct {
	// Inputs maps an input topic to the offset to resume from (the next
	// record to read) in this partition.
	Inputs map[string]int64
	// Changelog is the offset of the last changelog record the state
	// reflects, or -1 when none.
	Changelog int64
	// Persisted is the offset up to which Pebble holds the state, or -1:
	// a restore replays the changelog from the next one. It is behind
	// Changelog while customer records of the last commits are in
	// write-back (see Config.WriteBackCommits); the restore then also
	// applies those commits' records again, which is harmless.
	Persisted int64
}

// appendOffsets appends the encoding of the inputs (topics in the order
// given, sorted by the caller for stable bytes) and the changelog offset.
func appendOffsets(b []byte, topics []string, inputs map[string]int64, changelog int64) []byte {
	b = append(b, offsetsV1)
	b = appendIntField(b, offChangelog, changelog)
	for _, t := range topics {
		var at int
		b, at = beginNested(b, offInput)
		b = binary.AppendVarint(b, inputs[t])
		b = append(b, t...)
		b = endNested(b, at)
	}
	return b
}

// decodeOffsets decodes b into inputs (cleared first) and returns the
// changelog offset.
func decodeOffsets(b []byte, inputs map[string]int64) (int64, error) {
	clear(inputs)
	if len(b) == 0 {
		return 0, fmt.Errorf("offsets record: %w", errTruncated)
	}
	if b[0] != offsetsV1 {
		return 0, fmt.Errorf("offsets record format version %d is unknown to this release", b[0])
	}
	r := reader{b: b[1:]}
	changelog := int64(-1)
	for !r.done() {
		f, w := r.tag()
		if r.err != nil {
			break
		}
		switch f {
		case offChangelog:
			if r.expect(w, wireVarint) {
				changelog = r.varint()
			}
		case offInput:
			if r.expect(w, wireBytes) {
				t := reader{b: r.bytes()}
				if r.err != nil {
					break
				}
				next := t.varint()
				if t.err != nil {
					r.fail(t.err)
					break
				}
				inputs[string(t.b)] = next
			}
		default:
			r.skip(w)
		}
	}
	if r.err != nil {
		return 0, fmt.Errorf("offsets record: %w", r.err)
	}
	return changelog, nil
}

// appendHeld appends the encoding of a held record: the version byte, the
// timestamp in unix milliseconds (zigzag varint), the key's length (uvarint)
// and the key, then the value to the end. It is never empty, so it is never
// mistaken for a tombstone. Input and offset are the key.
func appendHeld(b []byte, ms int64, key, value []byte) []byte {
	b = append(b, heldV1)
	b = binary.AppendVarint(b, ms)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// decodeHeld decodes a held record. key and value alias b; an empty one is
// nil (a nil and an empty Kafka key or value are stored alike).
func decodeHeld(b []byte) (ms int64, key, value []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, fmt.Errorf("held record: %w", errTruncated)
	}
	if b[0] != heldV1 {
		return 0, nil, nil, fmt.Errorf("held record format version %d is unknown to this release", b[0])
	}
	r := reader{b: b[1:]}
	ms = r.varint()
	key = r.bytes()
	if r.err != nil {
		return 0, nil, nil, fmt.Errorf("held record: %w", r.err)
	}
	if len(key) == 0 {
		key = nil
	}
	if len(r.b) > 0 {
		value = r.b[:len(r.b):len(r.b)]
	}
	return ms, key, value, nil
}
