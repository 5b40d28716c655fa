package state

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

// TestCrashConsistency commits batches without sync, takes crash clones of
// the file system (with a random share of the unsynced blocks kept, which is
// what a machine crash may leave), reopens each, and checks that the state is
// exactly the state after some batch k: every batch is there in full or not
// at all, and the offsets say which (atomicity of state and offsets).
func TestCrashConsistency(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openStore(t, fs)
	p := part(t, s, 2)
	const batches = 40
	pad := strings.Repeat("x", 300) // ~3 KB per batch: batches span WAL blocks
	type clone struct {
		fs    *vfs.MemFS
		after int // batches committed when cloned
	}
	var clones []clone
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 1; i <= batches; i++ {
		crashBatch(t, p, i, pad)
		must(t, p.Commit(int64(i)))
		if i%5 == 0 {
			for _, pct := range []int{0, 30, 70, 100} {
				clones = append(clones, clone{
					fs:    fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng}),
					after: i,
				})
			}
		}
	}
	closeStore(t, s)

	for n, cl := range clones {
		s := openStore(t, cl.fs)
		p := part(t, s, 2)
		off, err := p.Offsets()
		must(t, err)
		k := int(off.Inputs["in"])
		if k > cl.after {
			t.Fatalf("clone %d: state after batch %d, but only %d were committed", n, k, cl.after)
		}
		if (k == 0 && off.Changelog != -1) || (k > 0 && off.Changelog != int64(k)) {
			t.Fatalf("clone %d: offsets %+v", n, off)
		}
		if got := customer(t, p, "all").Events; got != int64(k) {
			t.Fatalf("clone %d: offsets say batch %d, customer says %d", n, k, got)
		}
		for i := 1; i <= cl.after; i++ {
			c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", i)))
			if want := i <= k; (c.Events == int64(i) && len(c.Cart.Items) == 8) != want {
				t.Fatalf("clone %d (batch %d): c%d = %d events, %d items", n, k, i, c.Events, len(c.Cart.Items))
			}
		}
		wantPending := int64(min(k, 1))
		if p.PendingTimers() != wantPending {
			t.Fatalf("clone %d (batch %d): pending = %d, want %d", n, k, p.PendingTimers(), wantPending)
		}
		due, err := p.PopDue(time.UnixMilli(1<<40), 0, nil)
		must(t, err)
		if want := ""; k > 0 {
			want = fmt.Sprintf("all/t%d@%d", k, k)
			if refs(due) != want {
				t.Fatalf("clone %d: timers %q, want %q", n, refs(due), want)
			}
		} else if len(due) != 0 {
			t.Fatalf("clone %d: timers %q, want none", n, refs(due))
		}
		p.Abort()
		t.Logf("clone %d (after %d batches): recovered batch %d", n, cl.after, k)
		closeStore(t, s)
	}
}

// crashBatch fills batch i of the crash tests: customer "all" gets Events
// i, a new customer ci gets Events i and 8 cart items (with pad, so that
// batches span WAL blocks), all's timer t(i-1) gives way to ti due at i ms,
// and input "in" is at offset i.
func crashBatch(t *testing.T, p *Partition, i int, pad string) {
	t.Helper()
	customer(t, p, "all").Events = int64(i)
	c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", i)))
	c.Events = int64(i)
	for j := range 8 {
		c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: fmt.Sprintf("%s-%d", pad, j), Quantity: 1})
	}
	must(t, p.Schedule(tm("all", fmt.Sprintf("t%d", i), int64(i))))
	must(t, p.Cancel("all", fmt.Sprintf("t%d", i-1)))
	p.SetOffset("in", int64(i))
}
