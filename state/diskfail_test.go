package state

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// TestDiskFailureIsSticky: when the disk stops taking writes, Pebble panics
// in the commit; Commit must turn that into an error (with a message an
// operator understands) and every later use of the partition must fail, so
// that nothing more is applied on top of a store in an unknown state.
func TestDiskFailureIsSticky(t *testing.T) {
	disk := &errorfs.Toggle{Injector: errorfs.ErrInjected}
	cfg := DefaultConfig()
	cfg.Dir, cfg.FS = "state", errorfs.Wrap(vfs.NewMem(), disk)
	s, err := Open(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	p := s.Partition(0)
	other := s.Partition(1)
	c := customer(t, p, "before")
	c.Events = 1
	p.SetOffset("clicks", 1)
	must(t, p.Changes(func(k, v []byte) error { return nil }))
	must(t, p.Commit(0))

	disk.On()
	var commitErr error
	for i := 0; i < 100 && commitErr == nil; i++ {
		c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", i)))
		c.Cart.LastEvent = strings.Repeat("x", 4096)
		p.SetOffset("clicks", int64(2+i))
		must(t, p.Changes(func(k, v []byte) error { return nil }))
		commitErr = p.Commit(int64(1 + i))
	}
	if commitErr == nil || !strings.Contains(commitErr.Error(), "state: partition 0: write: pebble could not write") {
		t.Fatalf("Commit with a failing disk = %v, want a write error", commitErr)
	}
	if _, err := p.Customer("after"); err == nil {
		t.Errorf("Customer after a failed commit: no error")
	}
	if err := p.Err(); err == nil {
		t.Errorf("Err() after a failed commit: nil")
	}
	// Pebble still holds its commit lock: another partition must fail
	// fast rather than wait on it, and so must Close.
	if _, err := other.Customer("x"); err == nil {
		t.Errorf("another partition after the failure: no error")
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "failed write") {
		t.Errorf("Close after a failed write = %v, want it refused", err)
	}
}
