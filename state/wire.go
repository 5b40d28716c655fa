package state

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// The record encoding is a small subset of the protocol-buffers wire format,
// written by hand: a record is a sequence of fields, each a uvarint tag
// (field number << 3 | wire type) followed by either a zigzag varint (wire
// type 0) or a uvarint length and that many bytes (wire type 2: strings,
// nested records and tuples). A reader skips fields it does not know, which is
// what lets an old release read a newer record and a new release read an old
// one. See doc.go for the evolution rules.
//
// Tuples are length-delimited values whose inside is a fixed sequence of
// varints, with an optional string running to the end. They are used for
// values that will never grow (a time, a date, an amount of money), where a
// nested record's per-field tags would double the size.

const (
	wireVarint = 0
	wireBytes  = 2
)

var (
	errTruncated = errors.New("truncated record")
	errOverflow  = errors.New("varint overflows")
	errWireType  = errors.New("unsupported wire type")
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendIntField(b []byte, field int, v int64) []byte {
	b = appendTag(b, field, wireVarint)
	return binary.AppendVarint(b, v)
}

func appendStringField(b []byte, field int, s string) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// beginNested appends the tag of a length-delimited field and reserves one
// byte for its length; endNested fills it in. Most nested values are under
// 128 bytes, so the common case writes in place; a longer one is shifted by
// the extra length bytes (a memmove, no allocation when b has capacity).
func beginNested(b []byte, field int) ([]byte, int) {
	b = appendTag(b, field, wireBytes)
	return append(b, 0), len(b)
}

func endNested(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	var tmp [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(tmp[:], uint64(n))
	b = append(b, tmp[:k-1]...) // grow by k-1 bytes
	copy(b[at+k:], b[at+1:at+1+n])
	copy(b[at:], tmp[:k])
	return b
}

// appendTimeField writes a non-zero time as the tuple (unix seconds, nanos).
// The zero time is omitted (absent = zero). Times come back in UTC: the
// location is not stored.
func appendTimeField(b []byte, field int, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b, at := beginNested(b, field)
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return endNested(b, at)
}

// appendDateField writes a non-zero date as the tuple (year, month, day).
func appendDateField(b []byte, field int, d schemas.Date) []byte {
	if d.IsZero() {
		return b
	}
	b, at := beginNested(b, field)
	b = binary.AppendVarint(b, int64(d.Year))
	b = binary.AppendVarint(b, int64(d.Month))
	b = binary.AppendVarint(b, int64(d.Day))
	return endNested(b, at)
}

// appendMoneyField writes the tuple (minor units, currency...).
func appendMoneyField(b []byte, field int, m schemas.Money) []byte {
	b, at := beginNested(b, field)
	b = binary.AppendVarint(b, m.Minor)
	b = append(b, m.Currency...)
	return endNested(b, at)
}

// reader decodes a record. It never panics on any input: every read checks the
// bounds and reports errTruncated.
type reader struct {
	b   []byte
	err error
	// compact says the record's times are compact (customer records from
	// format 2 on), relative to base.
	compact bool
	base    timeBase
	names   *names // the record's table of names (format 2); nil in format 1
	// field is the number of the field next found (see next).
	field int
}

// nested returns a reader of b, a value inside r's record.
func (r *reader) nested(b []byte) reader {
	return reader{b: b, compact: r.compact, base: r.base, names: r.names}
}

func (r *reader) done() bool { return r.err != nil || len(r.b) == 0 }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		if n == 0 {
			r.fail(errTruncated)
		} else {
			r.fail(errOverflow)
		}
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		if n == 0 {
			r.fail(errTruncated)
		} else {
			r.fail(errOverflow)
		}
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(errTruncated)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// tag reads the next field's number and wire type.
func (r *reader) tag() (field int, wire int) {
	t := r.uvarint()
	if t>>3 > 1<<28 {
		r.fail(errOverflow)
		return 0, 0
	}
	return int(t >> 3), int(t & 7)
}

// skip skips a field's value of an unknown field.
func (r *reader) skip(wire int) {
	switch wire {
	case wireVarint:
		r.uvarint()
	case wireBytes:
		r.bytes()
	default:
		r.fail(errWireType)
	}
}

// expect checks the wire type of a known field.
func (r *reader) expect(got, want int) bool {
	if got != want {
		r.fail(errWireType)
		return false
	}
	return true
}

// str returns b as a string, without allocating when it equals hint: the
// value the reused record held before. Records are reused across customers,
// and most customers share a currency, a country, a time zone.
func str(b []byte, hint string) string {
	if hint == string(b) {
		return hint
	}
	return string(b)
}

func (r *reader) failIf(err error) {
	if err != nil {
		r.fail(err)
	}
}

// nestedRecord reads a length-delimited field and returns a reader of its
// inside, or false after an error.
func (r *reader) nestedRecord() (reader, bool) {
	v := r.bytes()
	if r.err != nil {
		return reader{}, false
	}
	return r.nested(v), true
}

func (r *reader) time() time.Time {
	t := r.nested(r.bytes())
	if r.err != nil {
		return time.Time{}
	}
	if t.compact {
		at := t.ctime()
		r.failIf(t.err)
		return at
	}
	sec := t.varint()
	nsec := t.uvarint()
	if t.err != nil {
		r.fail(t.err)
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail(errOverflow)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *reader) date() schemas.Date {
	t := reader{b: r.bytes()}
	if r.err != nil {
		return schemas.Date{}
	}
	y, m, d := t.varint(), t.varint(), t.varint()
	if t.err != nil {
		r.fail(t.err)
		return schemas.Date{}
	}
	return schemas.Date{Year: int(y), Month: time.Month(m), Day: int(d)}
}

// money decodes into m; hint is m's previous currency (see str).
func (r *reader) money(m *schemas.Money, hint string) {
	t := reader{b: r.bytes()}
	if r.err != nil {
		return
	}
	m.Minor = t.varint()
	if t.err != nil {
		r.fail(t.err)
		return
	}
	m.Currency = str(t.b, hint)
}

// Compact times, used in customer records from format 2 on. A customer
// record holds dozens of times (runs, marks, windows, its audit trail), most
// within days of its last event; as (unix seconds, nanoseconds) each took 10
// bytes. A compact time is one uvarint v, by its low two bits:
//
//	x0: relative: v>>2 is the zigzag-encoded milliseconds from the record's
//	    base (its LastSeen); bit 0 says a uvarint of the sub-millisecond
//	    nanoseconds follows. A time within a day of the base takes 4 or 5
//	    bytes.
//	10: absolute: a varint of unix seconds and a uvarint of nanoseconds
//	    follow (a time too far out for milliseconds to be exact).
//	11: the zero time (v is exactly 3).
//
// A relative value out of range does not fail to decode: it gives some time,
// which re-encodes in absolute form (canonical after one round).
const (
	ctimeSub      = 1
	ctimeAbsolute = 2
	ctimeZero     = 3
	// ctimeMaxSec bounds the times (and bases) in relative form, so that
	// their milliseconds and the difference of two never overflow.
	ctimeMaxSec = 1 << 40
)

// timeBase is a customer record's base for compact times, in unix
// milliseconds (0 for a record without a LastSeen in range).
type timeBase int64

func newTimeBase(lastSeen time.Time) timeBase {
	if lastSeen.IsZero() || !ctimeInRange(lastSeen) {
		return 0
	}
	return timeBase(lastSeen.UnixMilli())
}

func ctimeInRange(t time.Time) bool {
	s := t.Unix()
	return s > -ctimeMaxSec && s < ctimeMaxSec
}

// appendCTime appends the compact form of t (see above).
func (base timeBase) appendCTime(b []byte, t time.Time) []byte {
	switch {
	case t.IsZero():
		return append(b, ctimeZero)
	case !ctimeInRange(t):
		b = append(b, ctimeAbsolute)
		b = binary.AppendVarint(b, t.Unix())
		return binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	d := t.UnixMilli() - int64(base)
	v := uint64(d<<1^d>>63) << 2
	sub := t.Nanosecond() % 1e6
	if sub == 0 {
		return binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, v|ctimeSub)
	return binary.AppendUvarint(b, uint64(sub))
}

// appendCTimeField writes a non-zero time as a field holding its compact
// form; the zero time is omitted, as in appendTimeField.
func (base timeBase) appendCTimeField(b []byte, field int, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b, at := beginNested(b, field)
	b = base.appendCTime(b, t)
	return endNested(b, at)
}

// ctime reads a compact time (see appendCTime).
func (r *reader) ctime() time.Time {
	v := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	switch v & 3 {
	case ctimeZero:
		if v != ctimeZero {
			r.fail(errOverflow)
		}
		return time.Time{}
	case ctimeAbsolute:
		if v != ctimeAbsolute {
			r.fail(errOverflow)
			return time.Time{}
		}
		sec, nsec := r.varint(), r.uvarint()
		if r.err == nil && nsec >= 1e9 {
			r.fail(errOverflow)
		}
		if r.err != nil {
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	z := v >> 2
	ms := int64(r.base) + (int64(z>>1) ^ -int64(z&1))
	var sub uint64
	if v&ctimeSub != 0 {
		if sub = r.uvarint(); r.err == nil && sub >= 1e6 {
			r.fail(errOverflow)
		}
		if r.err != nil {
			return time.Time{}
		}
	}
	return time.UnixMilli(ms).Add(time.Duration(sub)).UTC()
}

// names is a customer record's table of the names it repeats (format 2):
// rule IDs, channels, actions, reasons and policies recur across its runs,
// marks, contacts and audit trail (a busy customer has up to 32 runs of one
// rule, 64 marks of another, 32 decisions). maxNames is more than a rules
// file's rules and the policy's names that one customer meets. The first use of a name in the
// record is written as a string and enters the table; a later use writes
// its index, one byte. The decoder builds the same table in the same order,
// from the same fields.
type names struct {
	s [maxNames]string
	n int
}

// maxNames bounds the table; names past it are written as strings.
const maxNames = 64

// append writes a non-empty name as field (its first use) or refField (its
// index), and nothing for the empty name.
func (t *names) append(b []byte, field, refField int, s string) []byte {
	if s == "" {
		return b
	}
	for i := range t.n {
		if t.s[i] == s {
			return appendIntField(b, refField, int64(i))
		}
	}
	t.add(s)
	return appendStringField(b, field, s)
}

func (t *names) add(s string) {
	if t.n < maxNames {
		t.s[t.n] = s
		t.n++
	}
}

// name reads a name written as a string (see str for hint).
func (r *reader) name(hint string) string {
	s := str(r.bytes(), hint)
	if r.err == nil && r.names != nil && s != "" {
		r.names.add(s)
	}
	return s
}

// nameRef reads a name written as its index.
func (r *reader) nameRef() string {
	i := r.varint()
	if r.err != nil {
		return ""
	}
	if r.names == nil || i < 0 || i >= int64(r.names.n) {
		r.fail(errOverflow)
		return ""
	}
	return r.names.s[i]
}
