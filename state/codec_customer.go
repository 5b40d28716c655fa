package state

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/triggerd/triggerd/schemas"
)

// Field numbers of schemas.Customer. Never renumber or reuse one: an old
// record would decode into the wrong field. Retire a number by leaving it in
// a comment. A time inside a customer record is (unix seconds, nanoseconds)
// in format 1 and compact (appendCTime) in format 2. The ID is not stored:
// it is the key.
const (
	custFirstSeen        = 1 // time
	custLastSeen         = 2 // time
	custCart             = 3 // nested cart (codec_cart.go)
	custEvents           = 4 // varint
	custPurchases        = 5 // varint
	custSpend            = 6 // money, repeated
	custProfile          = 7 // nested profile (codec_profile.go)
	custProfileUpdatedAt = 8 // time
	// Maintained by the rules engine (added with the rules language).
	custTx             = 9  // nested tx stat, repeated (codec_stats.go)
	custLastPurchaseAt = 10 // time
	custSeen           = 11 // tuple (time, type...), repeated (codec_stats.go)
	custAggregate      = 12 // nested aggregate, repeated (codec_stats.go)
	custRFM            = 13 // nested RFM (codec_stats.go)
	custRun            = 14 // nested run, repeated (codec_runs.go)
	custMark           = 15 // nested mark, repeated (codec_runs.go)
	custRecent         = 16 // tuple (time, event ID...), repeated (format 1; format 2 writes custRecentKeys)
	// Maintained by the contact policy (added with the contact policy).
	custContact    = 17 // nested contact, repeated (codec_decisions.go)
	custUnanswered = 18 // varint
	// Maintained by the processor (added with the admin API).
	custDecision = 19 // nested decision, repeated (codec_decisions.go)
	// Format 2: the dedupe window as fingerprints (see schemas.EventKey).
	custRecentKeys = 20 // tuple (8-byte little-endian key, compact time)..., one field for all
)

var customerFields = newFieldTable(
	bytesField(custFirstSeen), bytesField(custLastSeen), bytesField(custCart),
	varintField(custEvents), varintField(custPurchases), bytesField(custSpend),
	bytesField(custProfile), bytesField(custProfileUpdatedAt),
	bytesField(custTx), bytesField(custLastPurchaseAt), bytesField(custSeen),
	bytesField(custAggregate), bytesField(custRFM), bytesField(custRun),
	bytesField(custMark), bytesField(custRecent), bytesField(custContact),
	varintField(custUnanswered), bytesField(custDecision), bytesField(custRecentKeys),
)

// appendCustomer appends the encoding of c to b. It allocates only when b
// lacks capacity (or c has more than 8 opt-in channels, see sortedChannels).
// The order of the fields is part of the format's bytes (the golden records
// in testdata): a new field goes at the end.
func appendCustomer(b []byte, c *schemas.Customer) []byte {
	base := newTimeBase(c.LastSeen)
	var nm names
	b = append(b, customerV2)
	b = binary.AppendVarint(b, int64(base))
	b = base.appendCTimeField(b, custFirstSeen, c.FirstSeen)
	b = base.appendCTimeField(b, custLastSeen, c.LastSeen)
	b = appendCart(b, custCart, &c.Cart, base)
	if c.Events != 0 {
		b = appendIntField(b, custEvents, c.Events)
	}
	if c.Purchases != 0 {
		b = appendIntField(b, custPurchases, c.Purchases)
	}
	for _, m := range c.Spend {
		b = appendMoneyField(b, custSpend, m)
	}
	b = appendProfile(b, custProfile, &c.Profile)
	b = base.appendCTimeField(b, custProfileUpdatedAt, c.ProfileUpdatedAt)
	// The fields the rules engine maintains.
	for i := range c.Tx {
		b = appendTx(b, custTx, &c.Tx[i])
	}
	b = base.appendCTimeField(b, custLastPurchaseAt, c.LastPurchaseAt)
	for i := range c.Seen {
		b = base.appendStampedString(b, custSeen, c.Seen[i].At, 0, false, string(c.Seen[i].Type))
	}
	for i := range c.Aggregates {
		b = appendAggregate(b, custAggregate, &c.Aggregates[i], base)
	}
	b = appendRFM(b, custRFM, &c.RFM)
	for i := range c.Runs {
		b = appendRun(b, custRun, &c.Runs[i], base, &nm)
	}
	for i := range c.Marks {
		b = appendMark(b, custMark, &c.Marks[i], base, &nm)
	}
	b = appendRecent(b, custRecentKeys, c.Recent, base)
	for i := range c.Contacts {
		b = appendContact(b, custContact, &c.Contacts[i], base, &nm)
	}
	if c.Unanswered != 0 {
		b = appendIntField(b, custUnanswered, int64(c.Unanswered))
	}
	for i := range c.Decisions {
		b = appendDecision(b, custDecision, &c.Decisions[i], base, &nm)
	}
	return b
}

// appendRecent writes the dedupe window in one field (format 2).
func appendRecent(b []byte, field int, recent []schemas.SeenEvent, base timeBase) []byte {
	if len(recent) == 0 {
		return b
	}
	b, at := beginNested(b, field)
	for i := range recent {
		b = binary.LittleEndian.AppendUint64(b, recent[i].Key)
		b = base.appendCTime(b, recent[i].At)
	}
	return endNested(b, at)
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
	for r.next(customerFields) {
		switch r.field {
		case custFirstSeen:
			c.FirstSeen = r.time()
		case custLastSeen:
			c.LastSeen = r.time()
		case custCart:
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeCart(t, &c.Cart))
			}
		case custEvents:
			c.Events = r.varint()
		case custPurchases:
			c.Purchases = r.varint()
		case custSpend:
			c.Spend = grow(c.Spend)
			m := &c.Spend[len(c.Spend)-1] // the slot's old value is the hint
			r.money(m, m.Currency)
		case custProfile:
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeProfile(t, &c.Profile, h))
			}
		case custProfileUpdatedAt:
			c.ProfileUpdatedAt = r.time()
		case custTx:
			c.Tx = grow(c.Tx)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeTx(t, &c.Tx[len(c.Tx)-1]))
			}
		case custLastPurchaseAt:
			c.LastPurchaseAt = r.time()
		case custSeen:
			c.Seen = grow(c.Seen)
			s := &c.Seen[len(c.Seen)-1]
			var typ string
			s.At, _, typ = r.stampedString(false, string(s.Type))
			s.Type = schemas.EventType(typ)
		case custAggregate:
			c.Aggregates = grow(c.Aggregates)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeAggregate(t, &c.Aggregates[len(c.Aggregates)-1]))
			}
		case custRFM:
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeRFM(t, &c.RFM, h.segment))
			}
		case custRun:
			c.Runs = grow(c.Runs)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeRun(t, &c.Runs[len(c.Runs)-1]))
			}
		case custMark:
			c.Marks = grow(c.Marks)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeMark(t, &c.Marks[len(c.Marks)-1]))
			}
		case custRecent:
			// Format 1: the event IDs themselves.
			c.Recent = grow(c.Recent)
			s := &c.Recent[len(c.Recent)-1]
			var id string
			s.At, _, id = r.stampedString(false, "")
			s.Key = schemas.EventKey(id)
		case custRecentKeys:
			c.Recent = r.recentKeys(c.Recent)
		case custContact:
			c.Contacts = grow(c.Contacts)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeContact(t, &c.Contacts[len(c.Contacts)-1]))
			}
		case custUnanswered:
			c.Unanswered = int32(r.varint())
		case custDecision:
			c.Decisions = grow(c.Decisions)
			if t, ok := r.nestedRecord(); ok {
				r.failIf(decodeDecision(t, &c.Decisions[len(c.Decisions)-1]))
			}
		}
	}
	return r.err
}

// recentKeys reads the dedupe window written by appendRecent, appending to
// recent.
func (r *reader) recentKeys(recent []schemas.SeenEvent) []schemas.SeenEvent {
	t := r.nested(r.bytes())
	for !t.done() {
		if len(t.b) < 8 {
			t.fail(errTruncated)
			break
		}
		recent = grow(recent)
		s := &recent[len(recent)-1]
		s.Key = binary.LittleEndian.Uint64(t.b)
		t.b = t.b[8:]
		s.At = t.ctime()
	}
	r.failIf(t.err)
	return recent
}

// grow extends s by one slot and returns it. The new slot keeps the value
// the reused record held there (its strings are the decoder's hints).
func grow[T any](s []T) []T {
	s = slices.Grow(s, 1)
	return s[:len(s)+1]
}
