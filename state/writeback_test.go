package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

func openWriteBack(t *testing.T, fs vfs.FS, commits, cached int) *Store {
	t.Helper()
	cfg := testConfig(fs)
	cfg.WriteBackCommits = commits
	cfg.CachedCustomers = cached
	s, err := Open(cfg, zap.NewNop())
	must(t, err)
	return s
}

// inPebble returns the customer's Events as Pebble holds them, or -1.
func inPebble(t *testing.T, s *Store, part int32, id schemas.CustomerID) int64 {
	t.Helper()
	v, closer, err := s.db.Get(appendCustomerKey(nil, uint32(part), id))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1
	}
	must(t, err)
	defer closer.Close()
	var c schemas.Customer
	must(t, decodeCustomer(v, &c))
	return c.Events
}

// TestWriteBack: customer records stay out of Pebble for up to
// WriteBackCommits commits, and every reader still sees the last commit:
// the next batch (from the cache, or with the cache off from the write-back
// itself), a batch after an Abort, and ReadCustomer. Offsets.Persisted says
// what Pebble holds; an erasure is written at once; Close writes the rest.
func TestWriteBack(t *testing.T) {
	for _, cached := range []int{-1, 0} {
		t.Run(fmt.Sprintf("cached%d", cached), func(t *testing.T) {
			fs := vfs.NewMem()
			s := openWriteBack(t, fs, 3, cached)
			p := part(t, s, 1)
			offsets := func() (int64, int64) {
				o, err := p.Offsets()
				must(t, err)
				return o.Changelog, o.Persisted
			}
			read := func(id schemas.CustomerID) int64 {
				cs, found, err := s.ReadCustomer(1, id)
				must(t, err)
				if !found {
					return -1
				}
				return cs.Customer.Events
			}

			customer(t, p, "hot").Events = 1
			must(t, p.Commit(10))
			if got := inPebble(t, s, 1, "hot"); got != -1 {
				t.Errorf("after commit 1: Pebble has events=%d, want the record in write-back only", got)
			}
			if c, persisted := offsets(); c != 10 || persisted != -1 {
				t.Errorf("after commit 1: changelog %d persisted %d, want 10 and -1", c, persisted)
			}
			if got := read("hot"); got != 1 {
				t.Errorf("ReadCustomer after commit 1: events=%d, want 1", got)
			}

			// An aborted batch leaves the committed record.
			if c := customer(t, p, "hot"); c.Events != 1 {
				t.Fatalf("batch 2 reads events=%d, want 1", c.Events)
			} else {
				c.Events = 99
			}
			p.Abort()
			c := customer(t, p, "hot")
			if c.Events != 1 {
				t.Fatalf("after abort: events=%d, want 1", c.Events)
			}
			c.Events = 2
			customer(t, p, "gone").Events = 1
			must(t, p.Commit(11))
			if ch, persisted := offsets(); ch != 11 || persisted != -1 {
				t.Errorf("after commit 2: changelog %d persisted %d, want 11 and -1", ch, persisted)
			}

			// An erasure is written through, with no key left behind.
			must(t, p.Erase("gone"))
			customer(t, p, "hot").Events = 3
			must(t, p.Commit(12))
			if got := inPebble(t, s, 1, "hot"); got != 3 {
				t.Errorf("after the third commit: Pebble has events=%d, want 3 (written back)", got)
			}
			if ch, persisted := offsets(); ch != 12 || persisted != 12 {
				t.Errorf("after commit 3: changelog %d persisted %d, want 12 and 12", ch, persisted)
			}
			if got := read("gone"); got != -1 || inPebble(t, s, 1, "gone") != -1 {
				t.Errorf("an erased customer is still there: ReadCustomer events=%d", got)
			}
			if len(p.writeBack) != 0 || p.writeBackBytes != 0 {
				t.Errorf("write-back after a write-back: %d records, %d bytes", len(p.writeBack), p.writeBackBytes)
			}

			// A record written back is read from Pebble; one committed
			// after is not there until Close.
			customer(t, p, "late").Events = 7
			must(t, p.Commit(13))
			if ch, persisted := offsets(); ch != 13 || persisted != 12 {
				t.Errorf("after commit 4: changelog %d persisted %d, want 13 and 12", ch, persisted)
			}
			if got := inPebble(t, s, 1, "late"); got != -1 {
				t.Errorf("after commit 4: Pebble has late=%d, want it in write-back", got)
			}
			closeStore(t, s)
			s = openWriteBack(t, fs, 3, cached)
			defer closeStore(t, s)
			p = part(t, s, 1)
			if got := inPebble(t, s, 1, "late"); got != 7 {
				t.Errorf("after Close: Pebble has late=%d, want 7", got)
			}
			if ch, persisted := offsets(); ch != 13 || persisted != 13 {
				t.Errorf("after reopening: changelog %d persisted %d, want 13 and 13", ch, persisted)
			}
		})
	}
}

// TestWriteBackBytes: the write-back is written when its records pass
// WriteBackBytes, before WriteBackCommits.
func TestWriteBackBytes(t *testing.T) {
	cfg := testConfig(vfs.NewMem())
	cfg.WriteBackCommits = 1000
	cfg.WriteBackBytes = 4 << 10
	s, err := Open(cfg, zap.NewNop())
	must(t, err)
	defer closeStore(t, s)
	p := part(t, s, 0)
	big := strings.Repeat("p", 1000)
	commits := 0
	for ; inPebble(t, s, 0, "c0") == -1; commits++ {
		if commits == 20 {
			t.Fatal("20 commits of ~1 KB records, and nothing written back")
		}
		c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", commits)))
		c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: big, Quantity: 1})
		must(t, p.Commit(int64(commits)))
	}
	if commits < 4 || commits > 6 {
		t.Errorf("written back after %d commits of ~1 KB records, want 4 to 6 (4 KiB)", commits)
	}
}

// TestWriteBackCrashRecovery is the recovery contract with write-back: after
// a crash that loses the records in write-back and any unsynced batch, a
// restore of the changelog from Offsets.Persisted+1 ends in the state after
// the last batch, as if nothing had been lost.
func TestWriteBackCrashRecovery(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig(fs)
	cfg.WriteBackCommits = 4
	s, err := Open(cfg, zap.NewNop())
	must(t, err)
	p := part(t, s, 2)
	const batches = 30
	// ~24 KB per batch: most commits fill a 32 KiB WAL block, so a clone
	// often has commits that the write-back kept out of Pebble.
	pad := strings.Repeat("x", 3000)
	var log []record
	ends := []int{0} // ends[i]: the log's length after batch i
	type clone struct {
		fs    *vfs.MemFS
		after int // batches committed when cloned
	}
	var clones []clone
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 1; i <= batches; i++ {
		crashBatch(t, p, i, pad)
		log = runBatch(t, p, log)
		ends = append(ends, len(log))
		if i%3 == 0 {
			for _, pct := range []int{0, 50, 100} {
				clones = append(clones, clone{fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng}), i})
			}
		}
	}
	// The process is gone, not closed: nothing is written back at the end.
	for n, cl := range clones {
		cfg.FS = cl.fs
		s, err := Open(cfg, zap.NewNop())
		must(t, err)
		p := part(t, s, 2)
		off, err := p.Offsets()
		must(t, err)
		// The changelog holds every batch committed up to the clone.
		end := ends[cl.after]
		for _, r := range log[off.Persisted+1 : end] {
			must(t, p.ApplyChangelog(r.key, r.value, r.offset))
		}
		must(t, p.FlushRestore())
		if got := customer(t, p, "all").Events; got != int64(cl.after) {
			t.Fatalf("clone %d (after %d batches, persisted %d): all has %d events", n, cl.after, off.Persisted, got)
		}
		for i := 1; i <= cl.after; i++ {
			c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", i)))
			if c.Events != int64(i) || len(c.Cart.Items) != 8 {
				t.Fatalf("clone %d (after %d batches, persisted %d): c%d has %d events, %d items", n, cl.after, off.Persisted, i, c.Events, len(c.Cart.Items))
			}
		}
		pending := p.PendingTimers()
		due, err := p.PopDue(time.UnixMilli(1<<40), 0, nil)
		must(t, err)
		if want := fmt.Sprintf("all/t%d@%d", cl.after, cl.after); refs(due) != want || pending != 1 {
			t.Fatalf("clone %d: timers %q (%d pending), want %q", n, refs(due), pending, want)
		}
		p.Abort()
		if o, _ := p.Offsets(); o.Inputs["in"] != int64(cl.after) {
			t.Fatalf("clone %d: input offset %d, want %d", n, o.Inputs["in"], cl.after)
		}
		t.Logf("clone %d (after %d batches): Pebble held up to offset %d of %d", n, cl.after, off.Persisted, end-1)
		closeStore(t, s)
	}
	closeStore(t, s)
}

// TestWriteBackReadWhileCommitting: ReadCustomer, from another goroutine
// while the worker commits, sees whole commits: the record (often in the
// write-back) and the timers (in Pebble) of the same one. Each commit sets
// the customer's Events to i and moves its timer to i.
func TestWriteBackReadWhileCommitting(t *testing.T) {
	s := openWriteBack(t, vfs.NewMem(), 5, -1)
	defer closeStore(t, s)
	p := part(t, s, 4)
	done := make(chan struct{})
	errs := make(chan error, 1)
	reads := 0
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			cs, found, err := s.ReadCustomer(4, "hot")
			if err != nil {
				errs <- err
				return
			}
			reads++
			if !found {
				continue
			}
			if len(cs.Timers) != 1 || cs.Timers[0].Due.UnixMilli() != cs.Customer.Events {
				errs <- fmt.Errorf("read events=%d with timers %q: not one commit", cs.Customer.Events, refs(cs.Timers))
				return
			}
		}
	}()
	for i := int64(1); i <= 300; i++ {
		customer(t, p, "hot").Events = i
		must(t, p.Schedule(tm("hot", "t", i)))
		must(t, p.Commit(i))
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads during 300 commits", reads)
}

// TestBatchBufferKept: a batch of several MiB (a restore flush, a drain
// cycle with its write-back) leaves its buffer for the next batch. Pebble's
// default keeps at most 1 MiB, and growing a dropped buffer again by
// doubling, batch after batch, was a third of the bytes the processor
// allocated in the workload benchmark.
func TestBatchBufferKept(t *testing.T) {
	cfg := testConfig(vfs.NewMem())
	// The default memtable: the tests' 4 MiB one makes a 3 MB batch a
	// "large batch", which Pebble keeps as a memtable of its own.
	cfg.MemTableBytes = 0
	s, err := Open(cfg, zap.NewNop())
	must(t, err)
	defer closeStore(t, s)
	p := part(t, s, 0)
	big := strings.Repeat("p", 10_000)
	for i := range 300 { // ~3 MB of customer records
		c := customer(t, p, schemas.CustomerID(fmt.Sprintf("c%d", i)))
		c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: big, Quantity: 1})
	}
	must(t, p.Commit(1))
	if got := cap(p.batch.Repr()); got < 3_000_000 {
		t.Errorf("after a ~3 MB batch the next batch's buffer holds %d bytes: the buffer was dropped", got)
	}
}
