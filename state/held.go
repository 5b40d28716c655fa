package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// HeldRecord is an input record waiting for the other inputs to catch up:
// the worker merges its inputs in event-time order, and a record that is
// ahead of another input's progress waits, possibly across batches. Its
// offset is committed to Kafka with the batch that read it, so it must be
// in the state (and the changelog) from that batch on.
type HeldRecord struct {
	Input  uint8     // which input topic (the processor uses schemas.Source values)
	Offset int64     // its Kafka offset in that input partition (>= 0)
	Time   time.Time // its record timestamp; kept to the millisecond, comes back in UTC
	Key    []byte    // nil and empty are stored alike and come back nil
	Value  []byte    // nil and empty are stored alike and come back nil
}

// heldRef names a held record: (input, offset).
type heldRef struct {
	input  uint8
	offset int64
}

// heldEntry is one held record touched in the batch: whether it was held in
// Pebble before the batch, and its state now.
type heldEntry struct {
	key     span // <p>'h'<input><offset>
	existed bool // held in Pebble before the batch
	held    bool // held now
	val     span // encoded record, if held
}

// heldEntry returns the overlay entry for (input, offset), creating it on
// first touch. Whether the record is held in Pebble comes from the
// in-memory set of committed held records, not from a point read: a
// backlog holds and releases a record for most events, and a Pebble Get
// per Hold and Release was a tenth of the processor's CPU.
func (p *Partition) heldEntry(input uint8, offset int64) (*heldEntry, error) {
	ref := heldRef{input, offset}
	if i, ok := p.heldIdx[ref]; ok {
		return &p.held[i], nil
	}
	if p.heldSet == nil {
		if err := p.loadHeldSet(); err != nil {
			return nil, err
		}
	}
	start := len(p.arena)
	p.arena = appendHeldKey(p.arena, p.num, input, offset)
	_, existed := p.heldSet[ref]
	p.heldIdx[ref] = len(p.held)
	p.held = append(p.held, heldEntry{key: span{start, len(p.arena)}, existed: existed, held: existed})
	return &p.held[len(p.held)-1], nil
}

// loadHeldSet reads the committed held records' references into heldSet:
// once per handle, on the first Hold, Release or restored held record.
// Only this handle writes held keys (Commit and FlushRestore), and
// committed keeps the set up to date, so it stays exact. It holds as many
// entries as there are held records, which the worker bounds.
func (p *Partition) loadHeldSet() error {
	p.heldSet = make(map[heldRef]struct{}, p.committedHeld)
	if p.committedHeld == 0 {
		return nil // the count is written in the same batch as the keys
	}
	lower := append(appendPartition(nil, p.num), kindHeld)
	upper := append(appendPartition(nil, p.num), kindHeld+1)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		p.heldSet = nil
		return fmt.Errorf("state: partition %d: scan held records: %w", p.num, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		input, offset, err := parseHeldKey(it.Key()[partLen:])
		if err != nil {
			it.Close()
			p.heldSet = nil
			return fmt.Errorf("state: partition %d: held record %x: %w", p.num, it.Key(), err)
		}
		p.heldSet[heldRef{input, offset}] = struct{}{}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		p.heldSet = nil
		return fmt.Errorf("state: partition %d: scan held records: %w", p.num, err)
	}
	return nil
}

// commitHeldSet applies the batch's held overlay, just written to Pebble,
// to the committed set.
func (p *Partition) commitHeldSet() {
	if p.heldSet == nil {
		return // nothing touched held records yet
	}
	for ref, i := range p.heldIdx {
		if p.held[i].held {
			p.heldSet[ref] = struct{}{}
		} else {
			delete(p.heldSet, ref)
		}
	}
}

// hold makes e held with the encoded record val.
func (p *Partition) hold(e *heldEntry, val span) {
	if !e.held {
		p.heldCount++
	}
	e.held, e.val = true, val
}

// release makes e not held.
func (p *Partition) release(e *heldEntry) {
	if e.held {
		p.heldCount--
	}
	e.held = false
}

// Hold adds r to the held records in this batch, or replaces the record held
// under (r.Input, r.Offset). Key and Value are copied into the batch. Cost:
// no read; the record is
// written at Commit, and a record held and released in the same batch is
// never written.
func (p *Partition) Hold(r HeldRecord) error {
	if err := p.check("Hold"); err != nil {
		return err
	}
	if r.Offset < 0 {
		return fmt.Errorf("state: held record %d/%d: negative offset", r.Input, r.Offset)
	}
	e, err := p.heldEntry(r.Input, r.Offset)
	if err != nil {
		return err
	}
	start := len(p.arena)
	p.arena = appendHeld(p.arena, r.Time.UnixMilli(), r.Key, r.Value)
	p.hold(e, span{start, len(p.arena)})
	return nil
}

// Release removes the held record (input, offset) in this batch: it was
// processed. It is a no-op if the record is not held.
func (p *Partition) Release(input uint8, offset int64) error {
	if err := p.check("Release"); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("state: held record %d/%d: negative offset", input, offset)
	}
	e, err := p.heldEntry(input, offset)
	if err != nil {
		return err
	}
	p.release(e)
	return nil
}

// Held calls fn for every committed held record, ordered by input, then
// offset. It does not see the open batch's Hold and Release calls: the worker
// calls it once when it takes the partition (after the restore, before its
// first batch) to rebuild its queues. The buffers in r are valid only during
// the call. An error from fn stops the scan and is returned as is.
//
// It scans the partition's 'h' range, so it also steps over the deletions
// that released records leave there until a compaction drops them: cheap
// once per assignment, not something to call per batch.
func (p *Partition) Held(fn func(r HeldRecord) error) error {
	if p.err != nil {
		return p.err
	}
	if p.restoring {
		return fmt.Errorf("state: partition %d: Held during a restore: call FlushRestore first", p.num)
	}
	lower := appendPartition(nil, p.num)
	lower = append(lower, kindHeld)
	upper := appendPartition(nil, p.num)
	upper = append(upper, kindHeld+1)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: partition %d: scan held records: %w", p.num, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		input, offset, err := parseHeldKey(k[partLen:])
		var v []byte
		if err == nil {
			v, err = it.ValueAndErr()
		}
		var r HeldRecord
		if err == nil {
			var ms int64
			ms, r.Key, r.Value, err = decodeHeld(v)
			r.Input, r.Offset, r.Time = input, offset, time.UnixMilli(ms).UTC()
		}
		if err != nil {
			it.Close()
			return fmt.Errorf("state: partition %d: held record %x: %w", p.num, k, err)
		}
		if err := fn(r); err != nil {
			it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: partition %d: scan held records: %w", p.num, err)
	}
	return nil
}

// HeldCount returns the number of held records, batch included. It is kept
// up to date by every change and costs nothing.
func (p *Partition) HeldCount() int64 { return p.heldCount }

// writeHeld adds the overlay's net changes to the batch: per touched record
// at most one set or deletion.
func (p *Partition) writeHeld() error {
	for i := range p.held {
		e := &p.held[i]
		var err error
		switch {
		case e.held:
			err = p.batch.Set(p.bytes(e.key), p.bytes(e.val), nil)
		case e.existed:
			err = p.batch.Delete(p.bytes(e.key), nil)
		}
		if err != nil {
			return p.writeErr(err)
		}
	}
	return nil
}

// applyHeld applies a held record from the changelog (key without <p>).
func (p *Partition) applyHeld(key, value []byte) error {
	input, offset, err := parseHeldKey(key)
	if err != nil {
		return err
	}
	e, err := p.heldEntry(input, offset)
	if err != nil {
		return err
	}
	if len(value) == 0 {
		p.release(e)
		return nil
	}
	if _, _, _, err := decodeHeld(value); err != nil {
		return err
	}
	// Stored as received, so that Pebble holds the changelog's bytes.
	start := len(p.arena)
	p.arena = append(p.arena, value...)
	p.hold(e, span{start, len(p.arena)})
	return nil
}
