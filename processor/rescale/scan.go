package rescale

import (
	"bytes"
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/state"
)

// scan is what the first pass learns of the old changelog.
type scan struct {
	// last maps a customer or timer key to the offset of its last
	// record, stored as -(offset+1) when that record is a tombstone.
	// Keys of different customers never share an old partition, so the
	// key alone names the record.
	last map[string]int64
	// held are the held records not released, per old partition, by
	// key: the copy writes them to the new input topics (held.go).
	held map[int32]map[string]heldValue
	// offsets is the last offsets record of each old partition.
	offsets map[int32]state.Offsets
	ends    map[int32]int64
	// total is the offsets from the progress to the ends: what the copy
	// reads.
	total int64
}

func (r *run) scan(ctx context.Context, from map[int32]int64) (*scan, error) {
	sc := &scan{last: map[string]int64{}, held: map[int32]map[string]heldValue{}, offsets: map[int32]state.Offsets{}}
	prog := r.reporter("reading", 0)
	defer prog.stop()
	ends, err := r.readChangelog(ctx, nil, nil, func(rec *kgo.Record) error {
		k, err := state.ParseChangelogKey(rec.Key)
		if err != nil {
			return fmt.Errorf("rescale: changelog %q partition %d offset %d: %w", r.src, rec.Partition, rec.Offset, err)
		}
		switch k.Kind {
		case state.RecordCustomer, state.RecordTimer:
			at := rec.Offset
			if len(rec.Value) == 0 {
				at = -(at + 1)
			}
			sc.last[string(rec.Key)] = at
		case state.RecordHeld:
			h := sc.held[rec.Partition]
			if h == nil {
				h = map[string]heldValue{}
				sc.held[rec.Partition] = h
			}
			if len(rec.Value) == 0 {
				delete(h, string(rec.Key))
			} else {
				h[string(rec.Key)] = heldValue{key: k, value: bytes.Clone(rec.Value)}
			}
		case state.RecordOffsets:
			if len(rec.Value) == 0 {
				delete(sc.offsets, rec.Partition)
				break
			}
			o, err := state.DecodeChangelogOffsets(rec.Value)
			if err != nil {
				return fmt.Errorf("rescale: changelog %q partition %d offset %d: %w", r.src, rec.Partition, rec.Offset, err)
			}
			sc.offsets[rec.Partition] = o
		}
		return nil
	}, prog.set)
	if err != nil {
		return nil, err
	}
	sc.ends = ends
	for p, e := range ends {
		if f := from[p]; f < e {
			sc.total += e - f
		}
	}
	return sc, nil
}

// live counts the customer records and timers the new changelog holds.
func (sc *scan) live() (customers, timers int64) {
	for k, at := range sc.last {
		if at < 0 {
			continue
		}
		if k[0] == 'c' {
			customers++
		} else {
			timers++
		}
	}
	return customers, timers
}

// merged is the offsets record of every new partition: each new input from
// offset 0; each input's progress and the fired watermark the least over
// the old partitions, and absent when one of them has none (as a new
// partition has none). A new partition holds customers of every old one:
// with the least, no timer fires earlier than it would have in the old
// layout, and none is skipped.
func (sc *scan) merged(r *run) (state.Offsets, error) {
	o := state.Offsets{Inputs: map[string]int64{}, Progress: map[string]int64{}, Changelog: -1, Persisted: -1}
	for _, in := range r.inputs {
		o.Inputs[in.new] = 0
	}
	all := true
	for p := range r.n {
		old, ok := sc.offsets[p]
		if !ok {
			all = false
			break
		}
		if p == 0 {
			o.Fired, o.HasFired = old.Fired, old.HasFired
		} else if o.HasFired = o.HasFired && old.HasFired; old.Fired < o.Fired {
			o.Fired = old.Fired
		}
	}
	if !all {
		o.HasFired = false
		return o, nil
	}
	for _, in := range r.inputs {
		least, ok := int64(0), true
		for p := range r.n {
			v, has := sc.offsets[p].Progress[in.old]
			if !has {
				ok = false
				break
			}
			if p == 0 || v < least {
				least = v
			}
		}
		if ok {
			o.Progress[in.new] = least
		}
	}
	return o, nil
}
