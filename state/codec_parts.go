package state

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The customer record split by how often its parts change (format 3, see
// doc.go, Customer parts). Measured on the benchmark's workload with the
// full example rules (300,000 events over 20,000 customers, the record
// after each event compared with the one before): the counters, LastSeen,
// the per-type last seen, the dedupe window and the one-per-customer runs
// (the silence rules' watches) changed with every event, the aggregates'
// windows with 55% and the cart with 26%; the keyed runs (one per order or
// coupon, 3.6 KB of a 6.7 KB mean record) with 9%, the marks (1.8 KB) with
// 8%, the profile with 3%, and the contact history and audit trail only
// when a trigger fires. So:
//
//   - hot (key 'c'): LastSeen, cart, counters, spend, the rules engine's
//     stats, aggregates and RFM, the unkeyed runs, the dedupe window;
//   - warm (key 'w'): the keyed runs and the marks;
//   - cold (key 'o'): FirstSeen, the profile, the contact history and the
//     audit trail.
//
// Each part is a record of its own with the customer record's field
// numbers (one decoder for all), its own version byte (customerV3) and its
// own time base, taken from its own content, so that a part's bytes change
// only when the part does: the hot part's base is LastSeen, the warm
// part's the start of its first run (or its first mark's time), the cold
// part's FirstSeen. A part with no fields is not stored; the hot part says
// which of the others are (custParts), so a load reads only those.

// part is one of a customer record's parts.
type recPart uint8

const (
	partHot recPart = iota
	partWarm
	partCold
	numParts
)

// partKinds are the parts' key kinds (the byte after the partition prefix).
var partKinds = [numParts]byte{kindCustomer, kindWarm, kindCold}

// partOfKind returns the part stored under key kind k.
func partOfKind(k byte) (recPart, bool) {
	for i, pk := range partKinds {
		if pk == k {
			return recPart(i), true
		}
	}
	return 0, false
}

// Field numbers only the hot part writes (format 3).
const (
	// custRunSlots: the index in Customer.Runs of each run the hot part
	// holds, packed uvarints, ascending; absent when they come first.
	custRunSlots = 21
	// custParts: which other parts are stored, a bit per part (1 << part).
	custParts = 22
)

// partHeader is the length of a part with no fields: the version byte and
// a zero base.
const partHeader = 2

// appendPart appends the encoding of part pt of c to b. stored is the
// hot part's custParts (ignored for the others).
func appendPart(b []byte, c *schemas.Customer, pt recPart, stored uint8) []byte {
	var nm names
	switch pt {
	case partHot:
		return appendHotPart(b, c, stored, &nm)
	case partWarm:
		base := warmBase(c)
		b = append(b, customerV3)
		b = binary.AppendVarint(b, int64(base))
		for i := range c.Runs {
			if c.Runs[i].Key != "" {
				b = appendRun(b, custRun, &c.Runs[i], base, &nm)
			}
		}
		for i := range c.Marks {
			b = appendMark(b, custMark, &c.Marks[i], base, &nm)
		}
		return b
	default:
		base := newTimeBase(c.FirstSeen)
		b = append(b, customerV3)
		b = binary.AppendVarint(b, int64(base))
		b = base.appendCTimeField(b, custFirstSeen, c.FirstSeen)
		b = appendProfile(b, custProfile, &c.Profile)
		b = base.appendCTimeField(b, custProfileUpdatedAt, c.ProfileUpdatedAt)
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
}

// warmBase is the warm part's time base: its first run's start, else its
// first mark's time.
func warmBase(c *schemas.Customer) timeBase {
	for i := range c.Runs {
		if c.Runs[i].Key != "" {
			return newTimeBase(c.Runs[i].StartedAt)
		}
	}
	if len(c.Marks) > 0 {
		return newTimeBase(c.Marks[0].At)
	}
	return newTimeBase(time.Time{})
}

func appendHotPart(b []byte, c *schemas.Customer, stored uint8, nm *names) []byte {
	base := newTimeBase(c.LastSeen)
	b = append(b, customerV3)
	b = binary.AppendVarint(b, int64(base))
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
	inOrder := true // the unkeyed runs come first in c.Runs
	n := 0
	for i := range c.Runs {
		if c.Runs[i].Key == "" {
			b = appendRun(b, custRun, &c.Runs[i], base, nm)
			inOrder = inOrder && i == n
			n++
		}
	}
	b = appendRecent(b, custRecentKeys, c.Recent, base)
	if !inOrder {
		b, at := beginNested(b, custRunSlots)
		for i := range c.Runs {
			if c.Runs[i].Key == "" {
				b = binary.AppendUvarint(b, uint64(i))
			}
		}
		b = endNested(b, at)
		return appendStored(b, stored)
	}
	return appendStored(b, stored)
}

func appendStored(b []byte, stored uint8) []byte {
	if stored != 0 {
		b = appendIntField(b, custParts, int64(stored))
	}
	return b
}

// partsDecoder decodes the parts of one customer record into a
// schemas.Customer, reusing its scratch between records.
type partsDecoder struct {
	names names
	slots []int // the hot part's custRunSlots
	h     hints // the record's strings before decodeFirst reset it
}

// decodeFirst decodes the record under a customer's 'c' key into c (reset
// first): a whole record (formats 1 and 2) or the hot part (format 3). It
// returns the other parts stored (custParts), and whether the record was
// the hot part.
func (d *partsDecoder) decodeFirst(b []byte, c *schemas.Customer) (stored uint8, isPart bool, err error) {
	if len(b) > 0 && b[0] != customerV3 {
		return 0, false, decodeCustomerWith(b, c, &d.names)
	}
	d.h = hints{tz: c.Profile.TimeZone, country: c.Profile.Country, segment: c.RFM.Segment}
	resetCustomer(c)
	d.slots = d.slots[:0]
	stored, err = d.decodePart(b, c, &d.h)
	return stored, true, err
}

// decodeMore decodes a warm or cold part into c, after decodeFirst.
func (d *partsDecoder) decodeMore(b []byte, c *schemas.Customer) error {
	_, err := d.decodePart(b, c, &d.h)
	return err
}

func (d *partsDecoder) decodePart(b []byte, c *schemas.Customer, h *hints) (uint8, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("customer record: %w", errTruncated)
	}
	if b[0] != customerV3 {
		return 0, fmt.Errorf("customer part: format version %d is not a part's (%d)", b[0], customerV3)
	}
	d.names.n = 0
	r := reader{b: b[1:], compact: true, names: &d.names}
	r.base = timeBase(r.varint())
	if r.err != nil {
		return 0, fmt.Errorf("customer record: %w", r.err)
	}
	var stored uint8
	// The fields only a hot part has, then the shared ones: one pass
	// each, the hot-only fields are few and small.
	t := r
	for t.next(hotOnlyFields) {
		switch t.field {
		case custRunSlots:
			s := t.nested(t.bytes())
			for !s.done() && s.err == nil {
				d.slots = append(d.slots, int(s.uvarint()))
			}
			t.failIf(s.err)
		case custParts:
			stored = uint8(t.varint())
		}
	}
	if t.err != nil {
		return 0, fmt.Errorf("customer record: %w", t.err)
	}
	if err := decodeCustomerFields(r, c, h); err != nil {
		return 0, fmt.Errorf("customer record: %w", err)
	}
	return stored, nil
}

var hotOnlyFields = newFieldTable(bytesField(custRunSlots), varintField(custParts))

// finish puts the hot part's runs in their places (custRunSlots) once
// every part is decoded: the hot part's runs were decoded first, so they
// lead c.Runs.
func (d *partsDecoder) finish(c *schemas.Customer) error {
	if len(d.slots) == 0 {
		return nil
	}
	n := len(d.slots)
	if n > len(c.Runs) {
		return fmt.Errorf("customer record: %d run slots for %d runs", n, len(c.Runs))
	}
	for i := n - 1; i >= 0; i-- {
		to := d.slots[i]
		if to < i || to >= len(c.Runs) || (i+1 < n && to >= d.slots[i+1]) {
			return fmt.Errorf("customer record: bad run slot %d", to)
		}
		// Move run i to slot to; the runs between shift down by one.
		r := c.Runs[i]
		copy(c.Runs[i:to], c.Runs[i+1:to+1])
		c.Runs[to] = r
	}
	d.slots = d.slots[:0]
	return nil
}
