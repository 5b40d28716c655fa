package state

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/triggerd/triggerd/schemas"
)

// The read-only view for operators (the admin API) and for verification
// (tests that prove an erase). It reads the committed state in Pebble, and
// of a Partition handle only the write-back (customer records committed
// but not yet in Pebble), under the lock Commit holds to change it, so it
// cannot race the partition worker that owns the handle: Pebble is safe for
// concurrent use, and every Commit (or FlushRestore) is one atomic Pebble
// batch, so a Pebble snapshot taken under that lock, with the write-back,
// sees the state after some whole batch, never half of one. The price is
// that it shows the state as of the last committed cycle, which is what an
// operator wants anyway (a batch in flight may still abort).

// CustomerState is one customer's committed state: the record and the
// pending timers (deferred triggers included), as of the last committed
// batch.
type CustomerState struct {
	Customer schemas.Customer
	Timers   []schemas.Timer // by due time, then timer ID
}

// ReadCustomer reads the committed state of customer id in partition part.
// found is false when the store has neither a record nor a pending timer of
// the customer. It is safe to call while the partition's worker runs. The
// result is the caller's.
func (s *Store) ReadCustomer(part int32, id schemas.CustomerID) (cs CustomerState, found bool, err error) {
	if part < 0 {
		return cs, false, fmt.Errorf("state: negative partition %d", part)
	}
	if id == "" {
		return cs, false, errors.New("state: empty customer ID")
	}
	// Under the store's lock: the partition's handle, and a Pebble
	// snapshot with the record in the handle's write-back, if any (under
	// the lock Commit holds to change it, so that both are as of the same
	// commit). The reads and the timer scan run outside, on the snapshot;
	// Close waits for them (inflight).
	s.mu.Lock()
	if !s.enterLocked() {
		s.mu.Unlock()
		return cs, false, errClosed
	}
	defer s.inflight.Done()
	var v []byte
	h := s.mu.parts[part]
	if h != nil {
		h.writeBackMu.Lock()
	}
	snap := s.db.NewSnapshot()
	if h != nil {
		v = slices.Clone(h.writeBack[id])
		h.writeBackMu.Unlock()
	}
	s.mu.Unlock()
	defer snap.Close()
	num := uint32(part)
	if v == nil {
		var closer io.Closer
		v, closer, err = snap.Get(appendCustomerKey(nil, num, id))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			v = nil
		case err != nil:
			return cs, false, fmt.Errorf("state: partition %d: read customer %q: %w", part, id, err)
		default:
			v = slices.Clone(v)
			closer.Close()
		}
	}
	if v != nil {
		if err := decodeCustomer(v, &cs.Customer); err != nil {
			return cs, false, fmt.Errorf("state: partition %d: customer %q: %w", part, id, err)
		}
		found = true
	}
	cs.Customer.ID = id
	// The customer's reverse-index entries name its pending timers'
	// due times; each timer record is under its time-ordered key.
	lower := appendReverseKey(nil, num, id, "")
	upper := slices.Clone(lower)
	upper[len(upper)-1]++ // the terminator 0x00 0x01 becomes 0x00 0x02
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return cs, false, fmt.Errorf("state: partition %d: read timers of %q: %w", part, id, err)
	}
	defer it.Close()
	var key []byte
	for valid := it.First(); valid; valid = it.Next() {
		due, pending, err := parseReverse(it.Value())
		if err != nil {
			return cs, false, fmt.Errorf("state: partition %d: timers of %q: %w", part, id, err)
		}
		if !pending {
			continue
		}
		key = appendTimerRef(key[:0], num, due, it.Key()[partLen+1:])
		tv, tcloser, err := snap.Get(key)
		if err != nil {
			return cs, false, fmt.Errorf("state: partition %d: timer of %q: read index: %w", part, id, err)
		}
		var t schemas.Timer
		_, err = decodeTimer(tv, &t)
		tcloser.Close()
		if err != nil {
			return cs, false, fmt.Errorf("state: partition %d: timer of %q: %w", part, id, err)
		}
		cs.Timers = append(cs.Timers, t)
		found = true
	}
	if err := it.Error(); err != nil {
		return cs, false, fmt.Errorf("state: partition %d: read timers of %q: %w", part, id, err)
	}
	slices.SortStableFunc(cs.Timers, func(a, b schemas.Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return cs, found, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ScanPartition calls fn for every committed key of partition part in
// Pebble, in key order, with the partition prefix included: a raw view for
// verification (that an erased customer left no key behind, whatever the
// kind). A customer record still in the partition's write-back shows its
// older Pebble value, or none (see the package doc); an erasure is never
// behind. The buffers are valid only during the call. It is safe to call
// while the partition's worker runs; it scans a snapshot.
func (s *Store) ScanPartition(part int32, fn func(key, value []byte) error) error {
	if part < 0 {
		return fmt.Errorf("state: negative partition %d", part)
	}
	s.mu.Lock()
	if !s.enterLocked() {
		s.mu.Unlock()
		return errClosed
	}
	defer s.inflight.Done()
	snap := s.db.NewSnapshot()
	s.mu.Unlock()
	// A scan may be long: it holds a snapshot, not the store's lock, and
	// Close waits for it.
	defer snap.Close()
	start, end := partitionBounds(uint32(part))
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return fmt.Errorf("state: partition %d: scan: %w", part, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: partition %d: scan: %w", part, err)
	}
	return nil
}
