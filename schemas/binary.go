package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// This file is the Avro binary encoding (specification 1.11, "Binary
// Encoding") at the level of single values: zig-zag varints for int and
// long, little-endian float and double, length-prefixed bytes and strings,
// and the block counts of arrays and maps. read.go and skip.go walk a writer
// schema with it; write.go writes the current schema with it.

// Why a record cannot be read: errTruncated is ReasonTruncated, the others
// ReasonMalformedAvro (malformedReason). The errors the goavro-based reader (the
// reference in the tests) did not detect are their own values, so that the
// differential test can tell a stricter check from a disagreement.
var (
	errTruncated    = errors.New("truncated")
	errBadVarint    = errors.New("varint longer than 10 bytes or over 64 bits") // goavro read any length
	errIntRange     = errors.New("int outside 32 bits")                         // goavro truncated it
	errTooManyItems = fmt.Errorf("more than %d items in an array or map", maxBlockCount)
	// errItemsPastEnd is a block that claims more items than the bytes
	// left can hold: the record is cut short, found before reading the
	// items (goavro read them one by one and failed on the first that did
	// not fit, or on garbage before it).
	errItemsPastEnd = fmt.Errorf("%w: more items than the bytes left can hold", errTruncated)
	errTooDeep      = fmt.Errorf("values nested deeper than %d", maxNesting)
	errDuplicateKey = errors.New("a map key comes twice")
)

const (
	// maxBlockCount bounds the items of one array or map block and, when
	// the items land in a Go slice or map, of the whole array or map: no
	// real record carries more than 65536 cart lines, properties or
	// opt-ins, and a crafted one must not make the reader allocate without
	// bound (a block of items that take no bytes, such as nulls, costs
	// nothing to claim).
	maxBlockCount = 1 << 16
	// maxNesting bounds how deeply values nest while skipping a writer
	// type that contains itself (a linked list, a tree): each level is a
	// call on the goroutine's stack.
	maxNesting = 512
)

// avroIn is the state of reading one record. Its methods never panic and
// never read past the record: they check every length and count against
// the bytes left. The first error is kept in err, and the position jumps to
// the end, so that every later read returns a zero value at once and every
// loop ends; the caller checks err after each field.
type avroIn struct {
	b   []byte
	pos int

	err      error  // the record cannot be read: truncated or malformed
	errPos   int    // where err was found
	errField string // in which top-level field
	// wrong is the first field whose writer type cannot be read as its Go
	// type. It is reported only if the whole record reads: a record that
	// is also truncated or malformed fails for that, as it did with
	// goavro, which read the whole record before mapping any field.
	wrong *DecodeError
	field string // the top-level field being read, for error messages
	depth int    // nesting while skipping, bounded by maxNesting
	// reuse, when not nil, gives a map's spare and known names
	// (Decoder.DecodeReusing).
	reuse *Reuse
}

func newAvroIn(b []byte) avroIn {
	return avroIn{b: b}
}

func (in *avroIn) fail(err error) {
	if in.err == nil {
		in.err, in.errPos, in.errField = err, in.pos, in.field
	}
	in.pos = len(in.b)
}

// wrongType notes that the writer's type t cannot be read as want.
func (in *avroIn) wrongType(want string, t *wtype) {
	if in.wrong == nil {
		in.wrong = decodeErrf(ReasonWrongSchema, in.field, "want %s, writer has %s", want, t)
	}
}

func (in *avroIn) left() int { return len(in.b) - in.pos }

func (in *avroIn) long() int64 {
	u, n := binary.Uvarint(in.b[in.pos:])
	if n <= 0 {
		if n == 0 {
			in.fail(errTruncated)
		} else {
			in.fail(errBadVarint)
		}
		return 0
	}
	in.pos += n
	return int64(u>>1) ^ -int64(u&1)
}

func (in *avroIn) int() int32 {
	v := in.long()
	if v != int64(int32(v)) {
		in.fail(errIntRange)
		return 0
	}
	return int32(v)
}

func (in *avroIn) boolean() bool {
	if in.pos >= len(in.b) {
		in.fail(errTruncated)
		return false
	}
	c := in.b[in.pos]
	if c > 1 {
		in.fail(fmt.Errorf("boolean byte %d", c))
		return false
	}
	in.pos++
	return c == 1
}

// skipBytes skips n bytes.
func (in *avroIn) skipBytes(n int) {
	if n > in.left() {
		in.fail(errTruncated)
		return
	}
	in.pos += n
}

// length reads the length of a string or bytes value, checked against the
// bytes left.
func (in *avroIn) length() int {
	n := in.long()
	switch {
	case n < 0:
		in.fail(fmt.Errorf("negative length %d", n))
		return 0
	case n > int64(in.left()):
		in.fail(errTruncated)
		return 0
	}
	return int(n)
}

// string reads a string, a copy of its bytes: the caller's buffer is
// Kafka's, which reuses it. Each string is its own allocation, not a slice
// of one copy of the record: rules keep event strings in customer records
// (cart lines, run keys, marks) for days, and a slice would keep its
// whole record alive; in the workload benchmark that was 237 MB of the heap.
func (in *avroIn) string() string {
	n := in.length()
	s := string(in.b[in.pos : in.pos+n])
	in.pos += n
	return s
}

// mapKey reads a map's key: a string, the one read before when reuse knows
// the name, so that the common key costs no allocation.
func (in *avroIn) mapKey() string {
	r := in.reuse
	if r == nil {
		return in.string()
	}
	n := in.length()
	b := in.b[in.pos : in.pos+n]
	in.pos += n
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.names) < maxReusedNames {
		if r.names == nil {
			r.names = make(map[string]string)
		}
		r.names[s] = s
	}
	return s
}

// enum reads an enum's index and returns its symbol.
func (in *avroIn) enum(t *wtype) string {
	i := in.long()
	if i < 0 || i >= int64(len(t.symbols)) {
		in.fail(fmt.Errorf("enum %s has no symbol %d", t.name, i))
		return ""
	}
	return t.symbols[i]
}

var nullType = &wtype{kind: wNull}

// branch reads a union's branch index and returns the branch's type.
func (in *avroIn) branch(t *wtype) *wtype {
	i := in.long()
	if i < 0 || i >= int64(len(t.branches)) {
		in.fail(fmt.Errorf("union has no branch %d", i))
		return nullType
	}
	return t.branches[i]
}

// value resolves a union: it reads the branch index and returns the type
// of the value that follows, or nil for null. Any other type is returned
// as it is.
func (in *avroIn) value(t *wtype) *wtype {
	if t.kind == wUnion {
		t = in.branch(t)
	}
	if t.kind == wNull {
		return nil
	}
	return t
}

// blockCount reads the item count of the next block of an array or map, 0
// at the end. A negative count is followed by the block's size in bytes,
// which is read and ignored: items are read one by one in any case, as
// goavro did. itemSize is a lower bound of the bytes an item takes.
func (in *avroIn) blockCount(itemSize int) int {
	n := in.long()
	if n < 0 {
		if n == math.MinInt64 {
			in.fail(fmt.Errorf("block count %d", n))
			return 0
		}
		n = -n
		in.long()
	}
	switch {
	case in.err != nil:
		return 0
	case n > maxBlockCount:
		in.fail(fmt.Errorf("block count %d over %d", n, maxBlockCount))
		return 0
	case itemSize > 0 && n > int64(in.left()/itemSize):
		in.fail(errItemsPastEnd)
		return 0
	}
	return int(n)
}

// Appending, for the encoders.

func appendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func appendString(dst []byte, s string) []byte {
	return append(appendLong(dst, int64(len(s))), s...)
}

func appendBoolean(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}
