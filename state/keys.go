package state

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/triggerd/triggerd/schemas"
)

// Key kinds: the byte after the 4-byte partition prefix. See doc.go for the
// full layout.
const (
	kindCustomer byte = 'c' // <p>'c'<customer ID>
	kindHeld     byte = 'h' // <p>'h'<input><offset>
	kindMeta     byte = 'm' // <p>'m'<name>
	kindReverse  byte = 'r' // <p>'r'<esc(customer)><timer ID>
	kindTimer    byte = 't' // <p>'t'<due><esc(customer)><timer ID>
)

// Names of the per-partition metadata keys.
const (
	metaOffsets = "offsets"
	metaTimers  = "timers"
	metaHeld    = "held"
)

const (
	partLen   = 4              // the partition prefix
	dueLen    = 8              // an encoded due time
	heldLen   = 1 + 1 + 8      // a held key after <p>: 'h', input, offset
	storePart = math.MaxUint32 // prefix of store-wide keys: no int32 partition maps to it
)

var errBadKey = errors.New("malformed key")

// appendPartition appends the 4-byte big-endian partition prefix.
func appendPartition(b []byte, p uint32) []byte {
	return binary.BigEndian.AppendUint32(b, p)
}

// partitionBounds returns [start, end) covering every key of partition p.
// p < MaxUint32 always holds for an int32 partition, so end does not wrap.
func partitionBounds(p uint32) (start, end []byte) {
	return appendPartition(nil, p), appendPartition(nil, p+1)
}

func appendCustomerKey(b []byte, p uint32, id schemas.CustomerID) []byte {
	b = appendPartition(b, p)
	b = append(b, kindCustomer)
	return append(b, id...)
}

func appendMetaKey(b []byte, p uint32, name string) []byte {
	b = appendPartition(b, p)
	b = append(b, kindMeta)
	return append(b, name...)
}

// encodeDue maps a unix-millisecond time to a uint64 whose big-endian bytes
// sort like the signed time: flipping the sign bit puts negative times (before
// 1970) before positive ones.
func encodeDue(ms int64) uint64 { return uint64(ms) ^ (1 << 63) }

func decodeDue(u uint64) int64 { return int64(u ^ (1 << 63)) }

// appendEscaped appends s in an order-preserving, self-terminating form: each
// 0x00 becomes 0x00 0xFF and the end is 0x00 0x01. Two escaped strings compare
// like the strings themselves, and whatever follows the terminator (the timer
// ID) only breaks ties. So timers due at the same time sort by customer, then
// ID, and all timers of one customer share the prefix esc(customer).
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
			continue
		}
		b = append(b, s[i])
	}
	return append(b, 0, 1)
}

// splitEscaped undoes appendEscaped: it returns the string and the rest after
// the terminator. The string is a fresh copy only if it held an escape;
// otherwise it aliases b (the caller converts to string, which copies).
func splitEscaped(b []byte) (s, rest []byte, err error) {
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			return nil, nil, errBadKey
		}
		switch b[i+1] {
		case 1:
			if s == nil {
				return b[:i:i], b[i+2:], nil
			}
			return s, b[i+2:], nil
		case 0xFF:
			// Rare: copy what we have so far and continue unescaping.
			out := make([]byte, 0, len(b))
			out = append(out, b[:i]...)
			out = append(out, 0)
			j := i + 2
			for j < len(b) {
				if b[j] != 0 {
					out = append(out, b[j])
					j++
					continue
				}
				if j+1 >= len(b) {
					return nil, nil, errBadKey
				}
				switch b[j+1] {
				case 1:
					return out, b[j+2:], nil
				case 0xFF:
					out = append(out, 0)
					j += 2
				default:
					return nil, nil, errBadKey
				}
			}
			return nil, nil, errBadKey
		default:
			return nil, nil, errBadKey
		}
	}
	return nil, nil, errBadKey
}

// appendReverseKey appends <p>'r'<esc(c)><id>: the per-customer index entry
// of a timer, and (without <p>) its changelog key.
func appendReverseKey(b []byte, p uint32, c schemas.CustomerID, id string) []byte {
	b = appendPartition(b, p)
	b = append(b, kindReverse)
	b = appendEscaped(b, string(c))
	return append(b, id...)
}

// appendTimerKey appends <p>'t'<due><esc(c)><id>: the time-ordered index
// entry. due is encodeDue(unix ms).
func appendTimerKey(b []byte, p uint32, due uint64, c schemas.CustomerID, id string) []byte {
	b = appendPartition(b, p)
	b = append(b, kindTimer)
	b = binary.BigEndian.AppendUint64(b, due)
	b = appendEscaped(b, string(c))
	return append(b, id...)
}

// parseTimerRef parses <esc(c)><id> (a reverse key after its kind byte).
func parseTimerRef(b []byte) (schemas.CustomerID, string, error) {
	c, id, err := splitEscaped(b)
	if err != nil {
		return "", "", err
	}
	return schemas.CustomerID(c), string(id), nil
}

// appendHeldKey appends <p>'h'<input><offset>: a held input record, and
// (without <p>) its changelog key. offset is >= 0 (a Kafka offset), so its
// big-endian bytes sort like the number.
func appendHeldKey(b []byte, p uint32, input uint8, offset int64) []byte {
	b = appendPartition(b, p)
	b = append(b, kindHeld, input)
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

// parseHeldKey parses 'h'<input><offset> (a held key after <p>).
func parseHeldKey(b []byte) (input uint8, offset int64, err error) {
	if len(b) != heldLen || b[0] != kindHeld {
		return 0, 0, errBadKey
	}
	offset = int64(binary.BigEndian.Uint64(b[2:]))
	if offset < 0 {
		return 0, 0, errBadKey
	}
	return b[1], offset, nil
}

// RecordKind is what a changelog record holds: the kinds of state a batch
// changes. The processor counts its changelog records by kind, so that the
// changelog's volume can be read by what produces it.
type RecordKind uint8

// The record kinds; NumRecordKinds is their count.
const (
	RecordCustomer RecordKind = iota // a customer record
	RecordTimer                      // a timer record
	RecordHeld                       // a held input record
	RecordOffsets                    // the offsets record
	RecordOther                      // none of the above (never produced by this release)
	NumRecordKinds
)

var recordKindNames = [NumRecordKinds]string{"customer", "timer", "held", "offsets", "other"}

// String returns the kind's metric label.
func (k RecordKind) String() string {
	if k < NumRecordKinds {
		return recordKindNames[k]
	}
	return "other"
}

// KindOf returns the kind of the changelog record with key key.
func KindOf(key []byte) RecordKind {
	if len(key) == 0 {
		return RecordOther
	}
	switch key[0] {
	case kindCustomer:
		return RecordCustomer
	case kindReverse:
		return RecordTimer
	case kindHeld:
		return RecordHeld
	case kindMeta:
		if IsBatchEnd(key) {
			return RecordOffsets
		}
	}
	return RecordOther
}
