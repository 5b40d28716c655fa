package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/triggerd/triggerd/schemas"

	"github.com/cockroachdb/pebble/v2"
)

// Repair writes, through fn, the changelog records that make a changelog
// whose tail a restore did not apply end in this partition's committed
// state again: for each of keys (changelog keys, as the restore read them)
// its committed value, or a tombstone where the state has none, and then the
// offsets record.
//
// Why: without transactions (at-least-once mode) a crash can cut a batch's
// changelog records short. The restore applies a batch only when its closing
// offsets record follows, so the cut tail is ignored, and the input that
// produced it is processed again. But a later restore from further back
// would find the cut tail followed by newer batches and apply it. Producing
// the committed values of its keys after it, before any new batch, makes
// every later restore pass through the cut tail and then overwrite it.
//
// It reads committed state only: call it between batches (after
// FlushRestore). The values passed to fn are valid only during the call.
func (p *Partition) Repair(keys [][]byte, fn func(key, value []byte) error) error {
	if p.err != nil {
		return p.err
	}
	if p.restoring || p.sealed || len(p.custs) > 0 || len(p.timers) > 0 || len(p.held) > 0 {
		return fmt.Errorf("state: partition %d: Repair with an open batch or restore", p.num)
	}
	seen := make(map[string]bool, len(keys))
	var full, tkey []byte
	for _, k := range keys {
		if len(k) == 0 || seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		full = append(appendPartition(full[:0], p.num), k...)
		var v []byte
		var err error
		switch k[0] {
		case kindCustomer:
			if wb, ok := p.writeBack[schemas.CustomerID(k[1:])]; ok {
				v = wb // committed, not yet in Pebble
				break
			}
			v, err = p.committedValue(full)
		case kindHeld:
			v, err = p.committedValue(full)
		case kindReverse:
			// The changelog carries a timer under its reverse key;
			// the record itself is at its time-ordered key.
			due, pending, derr := p.storedDue(full)
			if err = derr; err == nil && pending {
				tkey = appendPartition(tkey[:0], p.num)
				tkey = append(tkey, kindTimer)
				tkey = binary.BigEndian.AppendUint64(tkey, due)
				tkey = append(tkey, k[1:]...)
				v, err = p.committedValue(tkey)
			}
		case kindMeta:
			continue // the offsets record is written last, below
		default:
			err = fmt.Errorf("state: partition %d: repair: unknown changelog key kind %q", p.num, k[0])
		}
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	key := appendMetaKey(nil, p.num, metaOffsets)[partLen:]
	return fn(key, appendOffsets(nil, p.sortedTopics(), p.inputs, -1))
}

// committedValue returns a copy of the committed value of a Pebble key, or
// nil when there is none.
func (p *Partition) committedValue(key []byte) ([]byte, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: partition %d: read: %w", p.num, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// IsBatchEnd reports whether a changelog key is the offsets record, which
// every batch of at-least-once mode ends with.
func IsBatchEnd(key []byte) bool {
	return len(key) == 1+len(metaOffsets) && key[0] == kindMeta && string(key[1:]) == metaOffsets
}
