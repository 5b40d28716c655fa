package schemas

import "time"

// This file reads values of a writer's type into Go values. Each reader
// takes the writer's type of the value, so that a writer that made a field
// nullable (or not), or wrote an int where the reader has a long, still
// reads. A type that cannot be read as the Go type is noted (wrongType),
// skipped, and read as the zero value: the record fails with
// ReasonWrongSchema once it has been read through. The rules are those of
// the goavro-based reader this replaced, which the tests keep as the
// reference.

// readField reads one field of the writer's record into dst.
func readField[T any](in *avroIn, f *field[T], t *wtype, dst *T) {
	switch f.kind {
	case kString, kOptString:
		f.setStr(dst, in.readString(t))
	case kInt32, kOptInt32:
		*f.int32(dst) = in.readInt32(t)
	case kTime, kOptTime:
		*f.time(dst) = in.readTime(t)
	case kOptDate:
		*f.date(dst) = in.readDate(t)
	case kMoney, kOptMoney:
		*f.money(dst) = in.readMoney(t)
	case kItems:
		p := f.items(dst)
		*p = in.readItems((*p)[:0], t)
	case kStrings:
		p := f.strings(dst)
		*p = in.readStrings((*p)[:0], t)
	case kStringMap:
		*f.stringMap(dst) = in.readStringMap(t)
	case kOptIns:
		*f.optIns(dst) = in.readOptIns(t)
	}
}

// readString reads a string or an enum's symbol.
func (in *avroIn) readString(t *wtype) string {
	switch t = in.value(t); {
	case t == nil:
		return ""
	case t.kind == wString:
		return in.string()
	case t.kind == wEnum:
		return in.enum(t)
	}
	in.wrongType("string", t)
	in.skip(t)
	return ""
}

func (in *avroIn) readInt32(t *wtype) int32 {
	switch t = in.value(t); {
	case t == nil:
		return 0
	case t.kind == wInt && t.logical == lNone:
		return in.int()
	}
	in.wrongType("int", t)
	in.skip(t)
	return 0
}

// readInt64 reads a long, or an int (Avro promotes int to long).
func (in *avroIn) readInt64(t *wtype) int64 {
	switch t = in.value(t); {
	case t == nil:
		return 0
	case t.kind == wLong && t.logical == lNone:
		return in.long()
	case t.kind == wInt && t.logical == lNone:
		return int64(in.int())
	}
	in.wrongType("long", t)
	in.skip(t)
	return 0
}

func (in *avroIn) readBoolean(t *wtype) bool {
	switch t = in.value(t); {
	case t == nil:
		return false
	case t.kind == wBoolean:
		return in.boolean()
	}
	in.wrongType("boolean", t)
	in.skip(t)
	return false
}

// readTime reads a timestamp: timestamp-millis, timestamp-micros
// (truncated to the millisecond below), a plain long taken as epoch
// milliseconds, or a date (midnight UTC).
func (in *avroIn) readTime(t *wtype) time.Time {
	t = in.value(t)
	switch {
	case t == nil:
		return time.Time{}
	case t.kind == wLong && (t.logical == lNone || t.logical == lTimestampMillis):
		return time.UnixMilli(in.long()).UTC()
	case t.kind == wLong && t.logical == lTimestampMicros:
		return time.UnixMilli(time.UnixMicro(in.long()).UnixMilli()).UTC()
	case t.kind == wInt && t.logical == lDate:
		return time.UnixMilli(int64(in.int()) * 86400_000).UTC()
	}
	in.wrongType("timestamp-millis", t)
	in.skip(t)
	return time.Time{}
}

// readDate reads a date (or a plain int) as days since 1970-01-01, or a
// timestamp as the date it falls on in UTC.
func (in *avroIn) readDate(t *wtype) Date {
	t = in.value(t)
	switch {
	case t == nil:
		return Date{}
	case t.kind == wInt && (t.logical == lNone || t.logical == lDate):
		return dateFromDays(in.int())
	case t.kind == wLong && t.logical == lTimestampMillis:
		return dateOf(time.UnixMilli(in.long()))
	case t.kind == wLong && t.logical == lTimestampMicros:
		return dateOf(time.UnixMicro(in.long()))
	}
	in.wrongType("date", t)
	in.skip(t)
	return Date{}
}

// record resolves t (a union's branch) to a record to read field by field.
// It returns nil for a null, and for a type that is not a record, which it
// notes as wrong and skips.
func (in *avroIn) record(t *wtype, want string) *wtype {
	t = in.value(t)
	if t == nil {
		return nil
	}
	if t.kind != wRecord {
		in.wrongType(want, t)
		in.skip(t)
		return nil
	}
	return t
}

// readMoney reads any record as a Money, by its fields' names: the
// writer's minor and currency, whatever their order; other fields are
// skipped.
func (in *avroIn) readMoney(t *wtype) Money {
	if t = in.record(t, "Money record"); t == nil {
		return Money{}
	}
	var m Money
	for i := range t.fields {
		switch f := &t.fields[i]; f.role {
		case roleMinor:
			m.Minor = in.readInt64(f.t)
		case roleCurrency:
			m.Currency = in.readString(f.t)
		default:
			in.skip(f.t)
		}
	}
	return m
}

// readItem reads any record as an Item, by its fields' names.
func (in *avroIn) readItem(t *wtype) Item {
	if t = in.record(t, "Item record"); t == nil {
		return Item{}
	}
	var it Item
	for i := range t.fields {
		switch f := &t.fields[i]; f.role {
		case roleProductID:
			it.ProductID = in.readString(f.t)
		case roleQuantity:
			it.Quantity = in.readInt32(f.t)
		case roleUnitPrice:
			it.UnitPrice = in.readMoney(f.t)
		default:
			in.skip(f.t)
		}
	}
	return it
}

// array returns the writer's array type of a value, or nil for null or a
// type that is not an array (noted as wrong and skipped).
func (in *avroIn) array(t *wtype, want string) *wtype {
	t = in.value(t)
	if t != nil && t.kind != wArray {
		in.wrongType(want, t)
		in.skip(t)
		return nil
	}
	return t
}

// readItems appends the items of an array to dst, so that a reused Event
// keeps its slice's capacity.
func (in *avroIn) readItems(dst []Item, t *wtype) []Item {
	if t = in.array(t, "array of Item"); t == nil {
		return dst
	}
	for n := in.blockCount(t.items.minSize); n > 0; n = in.blockCount(t.items.minSize) {
		if len(dst)+n > maxBlockCount {
			in.fail(errTooManyItems)
			break
		}
		for range n {
			if dst = append(dst, in.readItem(t.items)); in.err != nil {
				break
			}
		}
	}
	return dst
}

func (in *avroIn) readStrings(dst []string, t *wtype) []string {
	if t = in.array(t, "array of string"); t == nil {
		return dst
	}
	for n := in.blockCount(t.items.minSize); n > 0; n = in.blockCount(t.items.minSize) {
		if len(dst)+n > maxBlockCount {
			in.fail(errTooManyItems)
			break
		}
		for range n {
			if dst = append(dst, in.readString(t.items)); in.err != nil {
				break
			}
		}
	}
	return dst
}

// mapValues returns the writer's map type of a value, or nil for null or a
// type that is not a map (noted as wrong and skipped).
func (in *avroIn) mapValues(t *wtype, want string) *wtype {
	t = in.value(t)
	if t != nil && t.kind != wMap {
		in.wrongType(want, t)
		in.skip(t)
		return nil
	}
	return t
}

// readStringMap returns nil for an empty map: most records carry none, and
// nil costs no allocation. With a Reuse it fills the Reuse's spare map, if
// any, and takes known keys from its names. A key that comes twice makes
// the record malformed, as it did with goavro.
func (in *avroIn) readStringMap(t *wtype) map[string]string {
	if t = in.mapValues(t, "map of string"); t == nil {
		return nil
	}
	var m map[string]string
	for n := in.blockCount(1 + t.values.minSize); n > 0; n = in.blockCount(1 + t.values.minSize) {
		if len(m)+n > maxBlockCount {
			in.fail(errTooManyItems)
			break
		}
		if m == nil {
			if r := in.reuse; r != nil && r.spare != nil {
				m, r.spare = r.spare, nil
			} else {
				m = make(map[string]string, n)
			}
		}
		for range n {
			// A key that comes twice is refused before its value is
			// read, as goavro does: so a value cut short after it is
			// reported as the duplicate, not as the truncation.
			k := in.mapKey()
			if _, dup := m[k]; dup {
				in.fail(errDuplicateKey)
			}
			v := in.readString(t.values)
			if m[k] = v; in.err != nil {
				break
			}
		}
	}
	return m
}

func (in *avroIn) readOptIns(t *wtype) map[Channel]bool {
	if t = in.mapValues(t, "map of boolean"); t == nil {
		return nil
	}
	var m map[Channel]bool
	for n := in.blockCount(1 + t.values.minSize); n > 0; n = in.blockCount(1 + t.values.minSize) {
		if len(m)+n > maxBlockCount {
			in.fail(errTooManyItems)
			break
		}
		if m == nil {
			m = make(map[Channel]bool, n)
		}
		for range n {
			k := Channel(in.string())
			if _, dup := m[k]; dup {
				in.fail(errDuplicateKey) // before the value, as readStringMap
			}
			v := in.readBoolean(t.values)
			if m[k] = v; in.err != nil {
				break
			}
		}
	}
	return m
}

// dateOf is the calendar date of t in UTC. Dates travel as days since
// 1970-01-01 with no zone: they are local dates in the customer's zone, and
// UTC is only the arithmetic.
func dateOf(t time.Time) Date {
	t = t.UTC()
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func dateFromDays(days int32) Date {
	return dateOf(time.Unix(int64(days)*86400, 0))
}

// days returns the date as days since 1970-01-01.
func (d Date) days() int32 {
	return int32(time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}
