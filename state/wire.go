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

func (r *reader) time() time.Time {
	t := reader{b: r.bytes()}
	if r.err != nil {
		return time.Time{}
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
