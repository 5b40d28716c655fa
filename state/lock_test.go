package state

import (
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// loadHeld opens a store whose partition 1 has pending timers and partition
// 2 a customer, and sets testHookFilterScan so that loading partition 1
// stops in its timer scan until release is closed; started gets a value
// each time a scan starts.
func loadHeld(t *testing.T) (s *Store, started chan struct{}, release chan struct{}) {
	t.Helper()
	fs := vfs.NewMem()
	s = openStore(t, fs)
	p := part(t, s, 1)
	for i := range 10 {
		must(t, p.Schedule(tm("c1", string(rune('a'+i)), int64(100+i))))
	}
	must(t, p.Commit(-1))
	q := part(t, s, 2)
	customer(t, q, "c2").Events = 5
	must(t, q.Commit(-1))
	closeStore(t, s)

	started, release = make(chan struct{}, 4), make(chan struct{})
	s = openStore(t, fs)
	part(t, s, 2) // loaded before the hook: no scan (no timers) anyway
	testHookFilterScan = func(num uint32) {
		if num == 1 {
			started <- struct{}{}
			<-release
		}
	}
	t.Cleanup(func() { testHookFilterScan = nil })
	return s, started, release
}

// TestNoScanUnderStoreLock: while a partition's handle is being loaded
// (its timer scan held), the store's lock is free, and Metrics, the reads
// and other partitions' handles go on. Two loads of one partition give one
// handle.
func TestNoScanUnderStoreLock(t *testing.T) {
	s, started, release := loadHeld(t)
	defer closeStore(t, s)
	got := make(chan *Partition, 2)
	for range 2 {
		go func() { got <- s.Partition(1) }()
	}
	<-started
	<-started // both loads are in their scan
	if !s.mu.TryLock() {
		t.Fatal("the store's lock is held during a partition's timer scan")
	}
	s.mu.Unlock()
	if _, ok := s.Metrics(); !ok {
		t.Fatal("Metrics: store closed")
	}
	cs, found, err := s.ReadCustomer(2, "c2")
	must(t, err)
	if !found || cs.Customer.Events != 5 {
		t.Fatalf("ReadCustomer during a load: found %v, %+v", found, cs.Customer)
	}
	must(t, s.ScanPartition(2, func(k, v []byte) error { return nil }))
	if h := part(t, s, 2); h.PendingTimers() != 0 {
		t.Fatalf("partition 2: %d timers", h.PendingTimers())
	}
	close(release)
	a, b := <-got, <-got
	must(t, a.Err())
	if a != b {
		t.Fatal("two loads of one partition gave two handles")
	}
	if n := a.PendingTimers(); n != 10 {
		t.Fatalf("loaded handle has %d pending timers, want 10", n)
	}
	if s.Partition(1) != a {
		t.Fatal("the loaded handle was not kept")
	}
}

// TestDropDuringLoad: a partition dropped while its handle loads does not
// come back with the dropped state.
func TestDropDuringLoad(t *testing.T) {
	s, started, release := loadHeld(t)
	defer closeStore(t, s)
	got := make(chan *Partition, 1)
	go func() { got <- s.Partition(1) }()
	<-started
	must(t, s.DropPartition(1))
	close(release)
	h := <-got
	must(t, h.Err())
	if n := h.PendingTimers(); n != 0 {
		t.Fatalf("handle loaded across a drop has %d pending timers, want 0", n)
	}
}

// TestCloseDuringLoad: Close waits for a load in progress (Pebble is not
// closed under its scan), and the load then gives a closed handle.
func TestCloseDuringLoad(t *testing.T) {
	s, started, release := loadHeld(t)
	got := make(chan *Partition, 1)
	go func() { got <- s.Partition(1) }()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for { // until Close has marked the store closed (it then waits)
		s.mu.Lock()
		c := s.mu.closed
		s.mu.Unlock()
		if c {
			break
		}
		runtime.Gosched()
	}
	if _, ok := s.Metrics(); ok {
		t.Fatal("Metrics of a closing store")
	}
	close(release)
	if h := <-got; h.Err() != errClosed {
		t.Fatalf("load across Close: %v, want %v", h.Err(), errClosed)
	}
	must(t, <-closed)
}
