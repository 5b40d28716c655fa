package state

import (
	"fmt"
	"hash/maphash"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
)

// timerFilter is a Bloom filter over the refs of the partition's pending
// timers in Pebble, so that a Schedule or Cancel of a timer that is not
// pending skips the reverse-index read. Most are such: a new run's timer
// has a key of its own (an order ID, a coupon ID), and sequence exits
// cancel deferred triggers that were never deferred. In the 10M-customer
// benchmark those reads were 9% of the processor's CPU: a Pebble point read
// of an absent key still searches the memtables and checks each level's
// filter block.
//
// The filter may say yes for a ref that is not pending (a false positive, or
// a timer since fired or cancelled: a Bloom filter cannot forget), which
// costs the read; it never says no for one that is. So every ref written
// with a pending reverse entry is added (writeTimers), and the filter is
// built from the reverse index when the handle loads and rebuilt, larger,
// when the adds fill it.
type timerFilter struct {
	bits  []uint64
	n     uint64 // number of bits
	keys  int    // refs added since it was built
	limit int    // rebuild past this many
	seed  maphash.Seed
}

const (
	filterBitsPerKey = 10 // with filterHashes: ~1% false positives when full
	filterHashes     = 7
)

// timerFilterMin is the capacity of the smallest filter, in refs (a
// variable so that tests can make the filter fill and be rebuilt).
var timerFilterMin = 1 << 16

func newTimerFilter(capacity int) timerFilter {
	capacity = max(capacity, timerFilterMin)
	words := (capacity*filterBitsPerKey + 63) / 64
	return timerFilter{bits: make([]uint64, words), n: uint64(words * 64), limit: capacity, seed: maphash.MakeSeed()}
}

// bit maps the i-th hash of a ref to a bit: double hashing, then a
// multiply-shift into [0, n) (no power-of-two rounding of the size).
func (f *timerFilter) bit(h1, h2, i uint64) uint64 {
	hi, _ := bits.Mul64(h1+i*h2, f.n)
	return hi
}

func (f *timerFilter) add(ref []byte) {
	h := maphash.Bytes(f.seed, ref)
	h1, h2 := h, bits.RotateLeft64(h, 32)|1
	for i := range uint64(filterHashes) {
		b := f.bit(h1, h2, i)
		f.bits[b/64] |= 1 << (b % 64)
	}
	f.keys++
}

func (f *timerFilter) mayHave(ref []byte) bool {
	h := maphash.Bytes(f.seed, ref)
	h1, h2 := h, bits.RotateLeft64(h, 32)|1
	for i := range uint64(filterHashes) {
		b := f.bit(h1, h2, i)
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// full reports whether the filter holds more refs than it was sized for.
func (f *timerFilter) full() bool { return f.keys > f.limit }

// testHookFilterScan, when set (by a test, before the store is used), is
// called at the start of every scan buildTimerFilter makes, with the
// partition: a test holds a scan there to check who waits for it.
var testHookFilterScan func(part uint32)

// buildTimerFilter builds the filter from the committed reverse index: one
// scan of the partition's reverse keys (8-byte values), sized for twice the
// pending timers so that it fills only after as many adds again: 2.5 bytes
// per pending timer (25 MB for 10,000,000).
func (p *Partition) buildTimerFilter() error {
	f := newTimerFilter(2 * int(p.committedPending))
	if p.committedPending > 0 {
		lower := appendPartition(nil, p.num)
		upper := append(append([]byte(nil), lower...), kindReverse+1)
		lower = append(lower, kindReverse)
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return fmt.Errorf("state: partition %d: build timer filter: %w", p.num, err)
		}
		if testHookFilterScan != nil {
			testHookFilterScan(p.num)
		}
		for valid := it.First(); valid; valid = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return fmt.Errorf("state: partition %d: build timer filter: %w", p.num, err)
			}
			if len(v) > 0 { // pending (an empty value is an unset timer)
				f.add(it.Key()[partLen+1:])
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("state: partition %d: build timer filter: %w", p.num, err)
		}
	}
	p.tfilter = f
	return nil
}
