package schemas

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/sr"
)

// avroWriter encodes a T with the current schema, registered in the
// registry under one subject. It appends the Avro binary encoding straight
// from T's fields; a test checks that the bytes are goavro's. It is safe for
// concurrent use.
type avroWriter[T any] struct {
	id     int
	fields []encField[T] // in schema order
}

// encField is one field of the schema and the Go field it is written from.
type encField[T any] struct {
	f *field[T]
	// t is the field's type; for an optional field, the union's non-null
	// branch. null and value are then the union's branch indexes.
	t           *wtype
	optional    bool
	null, value int64
}

func newAvroWriter[T any](ctx context.Context, reg *sr.Client, subject, schema string, fs []field[T]) (*avroWriter[T], error) {
	if reg == nil {
		return nil, errors.New("schemas: the avro format needs a schema registry client")
	}
	if subject == "" {
		return nil, errors.New("schemas: the avro format needs a registry subject")
	}
	wt, err := parseWriterSchema(schema)
	if err != nil {
		return nil, err
	}
	w := &avroWriter[T]{}
	for _, sf := range wt.fields {
		i := slices.IndexFunc(fs, func(f field[T]) bool { return f.name == sf.name })
		if i < 0 {
			return nil, fmt.Errorf("schemas: field %q of the embedded schema has no Go field", sf.name)
		}
		e, err := newEncField(&fs[i], sf.t)
		if err != nil {
			return nil, err
		}
		w.fields = append(w.fields, e)
	}
	id, err := reg.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("schemas: registering the schema under subject %q: %w", subject, err)
	}
	w.id = id
	return w, nil
}

func (k kind) optional() bool {
	switch k {
	case kOptString, kOptInt32, kOptTime, kOptDate, kOptMoney:
		return true
	}
	return false
}

// newEncField checks that the schema's type t is the one the field's kind
// writes, so that an .avsc edited without its field table fails when the
// encoder is made, not downstream.
func newEncField[T any](f *field[T], t *wtype) (encField[T], error) {
	e := encField[T]{f: f, t: t}
	if f.kind.optional() {
		e.optional = true
		if t.kind != wUnion || len(t.branches) != 2 {
			return e, fmt.Errorf("schemas: field %q: want a union of null and a value, schema has %s", f.name, t)
		}
		e.null, e.value = 0, 1
		if t.branches[0].kind != wNull {
			e.null, e.value = 1, 0
		}
		if t.branches[e.null].kind != wNull {
			return e, fmt.Errorf("schemas: field %q: the union has no null", f.name)
		}
		e.t = t.branches[e.value]
	}
	var ok bool
	switch t := e.t; f.kind {
	case kString, kOptString:
		ok = t.kind == wString
	case kInt32, kOptInt32:
		ok = t.kind == wInt && t.logical == lNone
	case kTime, kOptTime:
		ok = t.kind == wLong && t.logical == lTimestampMillis
	case kOptDate:
		ok = t.kind == wInt && t.logical == lDate
	case kMoney, kOptMoney:
		ok = isMoney(t)
	case kItems:
		ok = t.kind == wArray && isItem(t.items)
	case kStrings:
		ok = t.kind == wArray && t.items.kind == wString
	case kStringMap:
		ok = t.kind == wMap && t.values.kind == wString
	case kOptIns:
		ok = t.kind == wMap && t.values.kind == wBoolean
	}
	if !ok {
		return e, fmt.Errorf("schemas: field %q: the schema's type %s does not fit the Go field", f.name, e.t)
	}
	return e, nil
}

// isMoney reports whether t is a record of minor (long) and currency
// (string), in either order.
func isMoney(t *wtype) bool {
	return t.kind == wRecord && len(t.fields) == 2 && hasRoles(t, map[role]wkind{roleMinor: wLong, roleCurrency: wString})
}

// isItem reports whether t is a record of product_id (string), quantity
// (int) and unit_price (Money), in any order.
func isItem(t *wtype) bool {
	if t.kind != wRecord || len(t.fields) != 3 || !hasRoles(t, map[role]wkind{roleProductID: wString, roleQuantity: wInt, roleUnitPrice: wRecord}) {
		return false
	}
	for _, f := range t.fields {
		if f.role == roleUnitPrice && !isMoney(f.t) {
			return false
		}
	}
	return true
}

// hasRoles reports whether every field of t has one of the roles, each
// role once, with the role's type (and no logical type).
func hasRoles(t *wtype, roles map[role]wkind) bool {
	seen := make(map[role]bool)
	for _, f := range t.fields {
		k, ok := roles[f.role]
		if !ok || seen[f.role] || f.t.kind != k || f.t.logical != lNone {
			return false
		}
		seen[f.role] = true
	}
	return true
}

func (w *avroWriter[T]) encode(dst []byte, src *T) []byte {
	dst, _ = confluent.AppendEncode(dst, w.id, nil)
	for i := range w.fields {
		dst = appendField(dst, &w.fields[i], src)
	}
	return dst
}

// appendField appends the value of one field of src. An optional field
// whose value is zero is written as null.
func appendField[T any](dst []byte, e *encField[T], src *T) []byte {
	var done bool // an optional field was null
	switch f := e.f; f.kind {
	case kString, kOptString:
		s := f.getStr(src)
		if dst, done = e.branch(dst, s == ""); done {
			return dst
		}
		return appendString(dst, s)
	case kInt32, kOptInt32:
		i := *f.int32(src)
		if dst, done = e.branch(dst, i == 0); done {
			return dst
		}
		return appendLong(dst, int64(i))
	case kTime, kOptTime:
		ts := f.time(src)
		if dst, done = e.branch(dst, ts.IsZero()); done {
			return dst
		}
		return appendLong(dst, ts.UnixMilli())
	case kOptDate:
		d := *f.date(src)
		if dst, done = e.branch(dst, d.IsZero()); done {
			return dst
		}
		return appendLong(dst, int64(d.days()))
	case kMoney, kOptMoney:
		m := *f.money(src)
		if dst, done = e.branch(dst, m == (Money{})); done {
			return dst
		}
		return appendMoney(dst, e.t, m)
	case kItems:
		items := *f.items(src)
		for i := range items {
			dst = appendBlockCount(dst, i, len(items))
			dst = appendItem(dst, e.t.items, &items[i])
		}
		return append(dst, 0)
	case kStrings:
		s := *f.strings(src)
		for i := range s {
			dst = appendBlockCount(dst, i, len(s))
			dst = appendString(dst, s[i])
		}
		return append(dst, 0)
	case kStringMap:
		m := *f.stringMap(src)
		var buf [16]string
		for i, k := range sortedKeys(m, buf[:0]) {
			dst = appendBlockCount(dst, i, len(m))
			dst = appendString(appendString(dst, k), m[k])
		}
		return append(dst, 0)
	case kOptIns:
		m := *f.optIns(src)
		var buf [16]Channel
		for i, k := range sortedKeys(m, buf[:0]) {
			dst = appendBlockCount(dst, i, len(m))
			dst = appendBoolean(appendString(dst, string(k)), m[k])
		}
		return append(dst, 0)
	}
	panic("schemas: field kind without an Avro encoding")
}

// branch writes the union branch of an optional field: null if zero, and
// then the field is done; else the value's branch, which the value follows.
// A required field writes nothing here.
func (e *encField[T]) branch(dst []byte, zero bool) ([]byte, bool) {
	switch {
	case !e.optional:
		return dst, false
	case zero:
		return appendLong(dst, e.null), true
	}
	return appendLong(dst, e.value), false
}

// appendBlockCount starts a block of an array or map of n items before
// item i, when one is due: blocks hold up to maxBlockCount items, as
// goavro (with its limit set to maxBlockCount) writes them, and as the
// reader accepts them. The caller ends the array with a 0 count.
func appendBlockCount(dst []byte, i, n int) []byte {
	if i%maxBlockCount != 0 {
		return dst
	}
	return appendLong(dst, int64(min(n-i, maxBlockCount)))
}

// appendMoney writes m as the Money record t, field by field in t's order.
func appendMoney(dst []byte, t *wtype, m Money) []byte {
	for i := range t.fields {
		switch t.fields[i].role {
		case roleMinor:
			dst = appendLong(dst, m.Minor)
		case roleCurrency:
			dst = appendString(dst, m.Currency)
		}
	}
	return dst
}

func appendItem(dst []byte, t *wtype, it *Item) []byte {
	for i := range t.fields {
		switch f := &t.fields[i]; f.role {
		case roleProductID:
			dst = appendString(dst, it.ProductID)
		case roleQuantity:
			dst = appendLong(dst, int64(it.Quantity))
		case roleUnitPrice:
			dst = appendMoney(dst, f.t, it.UnitPrice)
		}
	}
	return dst
}

// sortedKeys appends m's keys to buf in order: equal maps encode to equal
// bytes, which goavro (in Go's map order) did not promise.
func sortedKeys[K ~string, V any](m map[K]V, buf []K) []K {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}
