package state

import (
	"encoding/binary"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The statistics the rules engine keeps in a customer record: transaction
// stats per currency, the last time each event type was seen (custSeen, a
// stamped string), sliding-window aggregates and the RFM score.

// Field numbers of schemas.TxStat, schemas.Aggregate and schemas.RFM.
const (
	txCurrency = 1 // string
	txCount    = 2 // varint
	txSum      = 3 // varint

	aggName  = 1 // string
	aggEntry = 2 // tuple (time, value, key...), repeated

	rfmR       = 1 // varint
	rfmF       = 2 // varint
	rfmM       = 3 // varint
	rfmSegment = 4 // string
)

var (
	txFields        = newFieldTable(bytesField(txCurrency), varintField(txCount), varintField(txSum))
	aggregateFields = newFieldTable(bytesField(aggName), bytesField(aggEntry))
	rfmFields       = newFieldTable(varintField(rfmR), varintField(rfmF), varintField(rfmM), bytesField(rfmSegment))
)

func appendTx(b []byte, field int, tx *schemas.TxStat) []byte {
	b, at := beginNested(b, field)
	if tx.Currency != "" {
		b = appendStringField(b, txCurrency, tx.Currency)
	}
	if tx.Count != 0 {
		b = appendIntField(b, txCount, tx.Count)
	}
	if tx.Sum != 0 {
		b = appendIntField(b, txSum, tx.Sum)
	}
	return endNested(b, at)
}

// decodeTx decodes into tx, a reused slot whose currency is the hint.
func decodeTx(r reader, tx *schemas.TxStat) error {
	hint := tx.Currency
	*tx = schemas.TxStat{}
	for r.next(txFields) {
		switch r.field {
		case txCurrency:
			tx.Currency = str(r.bytes(), hint)
		case txCount:
			tx.Count = r.varint()
		case txSum:
			tx.Sum = r.varint()
		}
	}
	return r.err
}

func appendAggregate(b []byte, field int, ag *schemas.Aggregate, base timeBase) []byte {
	b, at := beginNested(b, field)
	if ag.Name != "" {
		b = appendStringField(b, aggName, ag.Name)
	}
	for j := range ag.Entries {
		e := &ag.Entries[j]
		b = base.appendStampedString(b, aggEntry, e.At, e.Value, true, e.Key)
	}
	return endNested(b, at)
}

// decodeAggregate decodes into ag, a reused slot: its name and its entries'
// keys are hints, and its entries keep their capacity.
func decodeAggregate(r reader, ag *schemas.Aggregate) error {
	hint := ag.Name
	ag.Name, ag.Entries = "", ag.Entries[:0]
	for r.next(aggregateFields) {
		switch r.field {
		case aggName:
			ag.Name = str(r.bytes(), hint)
		case aggEntry:
			ag.Entries = grow(ag.Entries)
			e := &ag.Entries[len(ag.Entries)-1]
			e.At, e.Value, e.Key = r.stampedString(true, e.Key)
		}
	}
	return r.err
}

// appendRFM writes a non-zero score as the nested field field.
func appendRFM(b []byte, field int, r *schemas.RFM) []byte {
	if *r == (schemas.RFM{}) {
		return b
	}
	b, at := beginNested(b, field)
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
	return endNested(b, at)
}

// decodeRFM decodes into rfm; hint is the segment it held.
func decodeRFM(r reader, rfm *schemas.RFM, hint string) error {
	*rfm = schemas.RFM{}
	for r.next(rfmFields) {
		switch r.field {
		case rfmR:
			rfm.R = int32(r.varint())
		case rfmF:
			rfm.F = int32(r.varint())
		case rfmM:
			rfm.M = int32(r.varint())
		case rfmSegment:
			rfm.Segment = str(r.bytes(), hint)
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
