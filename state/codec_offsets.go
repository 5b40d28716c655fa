package state

import (
	"encoding/binary"
	"fmt"
)

// Field numbers of the offsets record. Event-time progress travels as
// offInput entries under reserved names (see progressEntry in offsets.go):
// the format of the release that introduced it, kept so that stores and
// changelogs in both directions read it.
const (
	offChangelog = 1 // varint
	offInput     = 2 // tuple (next offset, topic...), repeated
)

var offsetsFields = newFieldTable(varintField(offChangelog), bytesField(offInput))

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
	for r.next(offsetsFields) {
		switch r.field {
		case offChangelog:
			changelog = r.varint()
		case offInput:
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
