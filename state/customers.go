package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/triggerd/triggerd/schemas"
)

// A batch's customers: loaded from the cache, the write-back or Pebble,
// changed in place by the caller, and written at Commit part by part
// (codec_parts.go): a part is written, to the changelog and to Pebble, only
// when its bytes differ from the committed ones the record keeps.

// custRecord is a customer as the partition keeps it: decoded, with the
// committed bytes of each part.
type custRecord struct {
	c schemas.Customer
	// has says a part's key is stored; stored holds its bytes. A stored
	// part whose bytes are not known (a whole record of format 1 or 2
	// under the hot key, or the parts of a customer erased in this batch)
	// has empty bytes, which no encoding equals, so it is rewritten.
	has    [numParts]bool
	stored [numParts][]byte
}

// partWrite is what a batch writes for one part of a customer.
type partWrite struct {
	op  uint8 // partKeep, partSet or partDelete
	key span
	val span // partSet only
}

const (
	partKeep uint8 = iota
	partSet
	partDelete
)

type custEntry struct {
	id     schemas.CustomerID
	r      *custRecord // nil when erased before use
	erased bool
	// wasErased: erased earlier in the batch, then used again.
	wasErased bool
	parts     [numParts]partWrite // set when sealed
}

// Customer returns the record of id, loading it from Pebble on its first use
// in the batch; an unknown customer gets a new record with only ID set. The
// record is the cache's: the caller updates it in place, and every record
// returned in a batch is written at Commit (the parts that changed). The
// pointer is valid until Commit or Abort; after that the record is reused
// for another customer.
func (p *Partition) Customer(id schemas.CustomerID) (*schemas.Customer, error) {
	if i, ok := p.custIdx[id]; ok {
		e := &p.custs[i]
		if e.erased {
			if err := p.check("Customer"); err != nil {
				return nil, err
			}
			if e.r == nil {
				e.r = p.newRecord()
			}
			resetCustomer(&e.r.c)
			e.r.c.ID = id
			e.erased = false
			e.wasErased = true
		}
		return &e.r.c, nil
	}
	if err := p.check("Customer"); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("state: empty customer ID")
	}
	if r, ok := p.custCache.take(id); ok {
		p.custIdx[id] = len(p.custs)
		p.custs = append(p.custs, custEntry{id: id, r: r})
		return &r.c, nil
	}
	r := p.newRecord()
	if err := p.loadCustomer(id, r); err != nil {
		p.freeRecord(r)
		return nil, err
	}
	r.c.ID = id
	p.custIdx[id] = len(p.custs)
	p.custs = append(p.custs, custEntry{id: id, r: r})
	return &r.c, nil
}

// loadCustomer decodes the committed record of id into r, each part from
// the write-back (committed, not yet in Pebble) or else from Pebble. An
// unknown customer gets an empty record.
func (p *Partition) loadCustomer(id schemas.CustomerID, r *custRecord) error {
	r.has = [numParts]bool{}
	found, err := p.committedPart(id, partHot, r)
	if err != nil || !found {
		resetCustomer(&r.c)
		return err
	}
	stored, isPart, err := p.decoder.decodeFirst(r.stored[partHot], &r.c)
	if err == nil && !isPart {
		// A whole record: rewritten as parts at the next commit.
		r.stored[partHot] = r.stored[partHot][:0]
	}
	for pt := partWarm; pt < numParts && err == nil && isPart; pt++ {
		if stored&(1<<pt) == 0 {
			continue
		}
		if found, err = p.committedPart(id, pt, r); err == nil && found {
			err = p.decoder.decodeMore(r.stored[pt], &r.c)
		}
	}
	if err == nil && isPart {
		err = p.decoder.finish(&r.c)
	}
	if err != nil {
		return fmt.Errorf("state: partition %d: customer %q: %w", p.num, id, err)
	}
	return nil
}

// committedPart copies the committed bytes of part pt of id into r.
func (p *Partition) committedPart(id schemas.CustomerID, pt recPart, r *custRecord) (bool, error) {
	v, ok := p.writeBack[wbKey{id, pt}]
	if !ok {
		p.key = appendPartKey(p.key[:0], p.num, id, pt)
		var closer io.Closer
		var err error
		v, closer, err = p.db.Get(p.key)
		if errors.Is(err, pebble.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("state: partition %d: read customer %q: %w", p.num, id, err)
		}
		defer closer.Close()
	}
	r.has[pt] = true
	r.stored[pt] = append(r.stored[pt][:0], v...)
	return true, nil
}

// maxFree bounds the records a partition keeps for reuse. A decoded
// record keeps the capacity of the largest customer it ever held (tens of
// KB for a hot one), and without a bound the free list kept one for every
// customer of the largest cycle ever seen, for good: in the 10M-customer
// benchmark, decoded records were over half the heap, and the GC, held to
// GOMEMLIMIT, took a fifth of the CPU.
const maxFree = 256

// freeRecord keeps r for reuse, or leaves it to the GC when enough are kept.
func (p *Partition) freeRecord(r *custRecord) {
	if len(p.free) < maxFree {
		p.free = append(p.free, r)
	}
}

func (p *Partition) newRecord() *custRecord {
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		return r
	}
	return new(custRecord)
}

// sealCustomers encodes the parts of the batch's customers that changed
// into the arena.
func (p *Partition) sealCustomers() {
	for i := range p.custs {
		e := &p.custs[i]
		e.parts = [numParts]partWrite{}
		if e.erased {
			// Every part, stored or not: a restore into a store
			// that still has one (a stale local copy) deletes it.
			for pt := range numParts {
				e.parts[pt] = partWrite{op: partDelete, key: p.appendKey(e.id, pt)}
			}
			continue
		}
		r := e.r
		if e.wasErased {
			// The erasure's tombstones are replaced by this record:
			// every part is written, or deleted.
			for pt := range numParts {
				r.has[pt], r.stored[pt] = true, r.stored[pt][:0]
			}
		}
		var mask uint8
		for _, pt := range [...]recPart{partWarm, partCold, partHot} {
			start := len(p.arena)
			p.arena = appendPart(p.arena, &r.c, pt, mask)
			v := p.arena[start:]
			switch {
			case pt != partHot && len(v) == partHeader:
				p.arena = p.arena[:start]
				if r.has[pt] {
					e.parts[pt] = partWrite{op: partDelete, key: p.appendKey(e.id, pt)}
				}
				continue
			case r.has[pt] && bytes.Equal(v, r.stored[pt]):
				p.arena = p.arena[:start]
			default:
				val := span{start, len(p.arena)}
				e.parts[pt] = partWrite{op: partSet, key: p.appendKey(e.id, pt), val: val}
			}
			mask |= 1 << pt
		}
	}
}

func (p *Partition) appendKey(id schemas.CustomerID, pt recPart) span {
	start := len(p.arena)
	p.arena = appendPartKey(p.arena, p.num, id, pt)
	return span{start, len(p.arena)}
}

// customerChanges reports the batch's customer part writes to fn.
func (p *Partition) customerChanges(fn func(key, value []byte) error) error {
	for i := range p.custs {
		e := &p.custs[i]
		for pt := range e.parts {
			w := &e.parts[pt]
			var v []byte
			switch w.op {
			case partKeep:
				continue
			case partSet:
				v = p.bytes(w.val)
			}
			if err := fn(p.bytes(w.key)[partLen:], v); err != nil {
				return err
			}
		}
	}
	return nil
}

// commitCustomersLocked writes the batch's customer parts: deletions to the
// Pebble batch, records to the write-back (or the batch, write-through).
// p.writeBackMu is held.
func (p *Partition) commitCustomersLocked() error {
	for i := range p.custs {
		e := &p.custs[i]
		for pt := range e.parts {
			w := &e.parts[pt]
			var err error
			switch {
			case w.op == partDelete:
				// Written through: an erasure leaves no key behind.
				p.dropWriteBackLocked(wbKey{e.id, recPart(pt)})
				err = p.batch.Delete(p.bytes(w.key), nil)
			case w.op == partSet && p.maxWriteBackCommits > 1:
				p.keepWriteBackLocked(wbKey{e.id, recPart(pt)}, p.bytes(w.val))
			case w.op == partSet:
				err = p.batch.Set(p.bytes(w.key), p.bytes(w.val), nil)
			}
			if err != nil {
				return p.writeErr(err)
			}
		}
	}
	return nil
}

// committedCustomers moves the batch's records, with the parts it wrote as
// their committed bytes, to the cache.
func (p *Partition) committedCustomers() {
	for i := range p.custs {
		e := &p.custs[i]
		if e.r == nil || e.erased {
			continue // reset frees it
		}
		r := e.r
		for pt := range e.parts {
			switch w := &e.parts[pt]; w.op {
			case partSet:
				r.has[pt] = true
				r.stored[pt] = append(r.stored[pt][:0], p.bytes(w.val)...)
			case partDelete:
				r.has[pt] = false
				r.stored[pt] = r.stored[pt][:0]
			}
		}
		if old, ok := p.custCache.put(e.id, r); ok {
			p.freeRecord(old)
		}
		e.r = nil
	}
}
