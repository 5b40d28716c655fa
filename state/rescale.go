package state

import (
	"fmt"
	"slices"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// What a rescale (processor/rescale) needs to know of the changelog's key
// layout, in one place: which customer a record belongs to, so that it can
// be written to the customer's partition under another partition count,
// and how to read and write the offsets record, which belongs to a
// partition rather than a customer. Values of customer and timer records
// are never decoded here: they move as they are, whatever their format.

// ChangelogKey is a changelog key taken apart.
type ChangelogKey struct {
	Kind RecordKind
	// Customer is the customer of a customer or timer record.
	Customer schemas.CustomerID
	// Input (the processor's schemas.Source) and Offset identify a held
	// input record: a record of an input partition, so it belongs to the
	// partition count it was read under.
	Input  uint8
	Offset int64
}

// ParseChangelogKey takes a changelog key apart. Every key this release
// writes parses; anything else (a kind of a later release, a malformed key)
// is an error, so that a rescale never drops a record it does not know.
func ParseChangelogKey(key []byte) (ChangelogKey, error) {
	if len(key) == 0 {
		return ChangelogKey{}, fmt.Errorf("state: changelog key: %w (empty)", errBadKey)
	}
	switch key[0] {
	case kindCustomer:
		if len(key) == 1 {
			return ChangelogKey{}, fmt.Errorf("state: changelog customer key: %w (no ID)", errBadKey)
		}
		return ChangelogKey{Kind: RecordCustomer, Customer: schemas.CustomerID(key[1:])}, nil
	case kindReverse:
		c, _, err := parseTimerRef(key[1:])
		if err != nil {
			return ChangelogKey{}, fmt.Errorf("state: changelog timer key %q: %w", key, err)
		}
		return ChangelogKey{Kind: RecordTimer, Customer: c}, nil
	case kindHeld:
		input, offset, err := parseHeldKey(key)
		if err != nil {
			return ChangelogKey{}, fmt.Errorf("state: changelog held key %q: %w", key, err)
		}
		return ChangelogKey{Kind: RecordHeld, Input: input, Offset: offset}, nil
	case kindMeta:
		if IsBatchEnd(key) {
			return ChangelogKey{Kind: RecordOffsets}, nil
		}
	}
	return ChangelogKey{}, fmt.Errorf("state: changelog key %q: unknown to this release", key)
}

// OffsetsKey is the changelog key of the offsets record.
func OffsetsKey() []byte { return append([]byte{kindMeta}, metaOffsets...) }

// DecodeChangelogOffsets decodes the value of a changelog offsets record
// (Changelog and Persisted are -1: the record cannot hold its own offset).
func DecodeChangelogOffsets(value []byte) (Offsets, error) {
	raw := map[string]int64{}
	if _, err := decodeOffsets(value, raw); err != nil {
		return Offsets{}, fmt.Errorf("state: %w", err)
	}
	o := Offsets{Inputs: map[string]int64{}, Progress: map[string]int64{}, Changelog: -1, Persisted: -1}
	for name, v := range raw {
		switch {
		case name == firedEntry:
			o.Fired, o.HasFired = v, true
		case len(name) > len(progressPrefix) && name[:len(progressPrefix)] == progressPrefix:
			o.Progress[name[len(progressPrefix):]] = v
		case len(name) > 0 && name[:1] == reservedPrefix:
			return Offsets{}, fmt.Errorf("state: offsets record entry %q is unknown to this release", name)
		default:
			o.Inputs[name] = v
		}
	}
	return o, nil
}

// AppendChangelogOffsets appends the value of a changelog offsets record
// holding o's Inputs, Progress and Fired (as Partition.Changes writes it).
func AppendChangelogOffsets(b []byte, o Offsets) []byte {
	entries := make(map[string]int64, len(o.Inputs)+len(o.Progress)+1)
	for t, v := range o.Inputs {
		entries[t] = v
	}
	for t, v := range o.Progress {
		entries[progressEntry(t)] = v
	}
	if o.HasFired {
		entries[firedEntry] = o.Fired
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return appendOffsets(b, names, entries, -1)
}

// DecodeChangelogHeld decodes the value of a changelog held record (the
// key's Input and Offset are the caller's): a rescale writes the record
// back to an input topic of the new layout, as it was read.
func DecodeChangelogHeld(value []byte) (HeldRecord, error) {
	ms, key, val, err := decodeHeld(value)
	if err != nil {
		return HeldRecord{}, fmt.Errorf("state: %w", err)
	}
	return HeldRecord{Time: time.UnixMilli(ms).UTC(), Key: key, Value: val}, nil
}
