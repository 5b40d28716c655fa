package state

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/schemas"
)

func testConfig(fs vfs.FS) Config {
	cfg := DefaultConfig()
	cfg.Dir = "db"
	cfg.FS = fs
	cfg.CacheBytes = 8 << 20
	cfg.MemTableBytes = 4 << 20
	// Write-through: most tests check what Pebble holds after a commit.
	// The write-back tests (writeback_test.go) turn it on.
	cfg.WriteBackCommits = 1
	return cfg
}

func openStore(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open(testConfig(fs), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func part(t testing.TB, s *Store, n int32) *Partition {
	t.Helper()
	p := s.Partition(n)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func customer(t testing.TB, p *Partition, id schemas.CustomerID) *schemas.Customer {
	t.Helper()
	c, err := p.Customer(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{CacheBytes: -1, MemTableBytes: 5 << 30, WriteBackCommits: -1, WriteBackBytes: -1}.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"Dir", "CacheBytes", "MemTableBytes", "WriteBackCommits", "WriteBackBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %s", err, want)
		}
	}
}

func TestCustomersPersist(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	p := part(t, s, 3)
	if s.Partition(3) != p {
		t.Fatal("Partition(3) twice returned two handles")
	}

	c := customer(t, p, "alice")
	if c.ID != "alice" || c.Events != 0 {
		t.Fatalf("new customer = %+v", c)
	}
	c.Events = 5
	c.Cart.Items = append(c.Cart.Items, schemas.Item{ProductID: "p1", Quantity: 2})
	if again := customer(t, p, "alice"); again != c {
		t.Fatal("second Customer in a batch returned another record")
	}
	customer(t, p, "bob").Purchases = 1
	p.SetOffset("clicks", 100)
	must(t, p.Commit(9))

	// The next batch reads the committed record.
	if got := customer(t, p, "alice"); got.Events != 5 || len(got.Cart.Items) != 1 {
		t.Fatalf("after commit: %+v", got)
	}
	p.Abort()
	closeStore(t, s)

	s = openStore(t, fs)
	defer closeStore(t, s)
	p = part(t, s, 3)
	if got := customer(t, p, "alice"); got.Events != 5 || got.Cart.Items[0].ProductID != "p1" {
		t.Fatalf("after reopen: %+v", got)
	}
	if got := customer(t, p, "bob"); got.Purchases != 1 {
		t.Fatalf("after reopen: %+v", got)
	}
	off, err := p.Offsets()
	must(t, err)
	if off.Inputs["clicks"] != 100 || off.Changelog != 9 {
		t.Fatalf("offsets after reopen = %+v", off)
	}
	// Another partition does not see partition 3's customers.
	if got := customer(t, part(t, s, 4), "alice"); got.Events != 0 {
		t.Fatalf("partition 4 sees partition 3: %+v", got)
	}
}

func TestAbortDropsChanges(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 0)
	customer(t, p, "a").Events = 1
	p.SetOffset("clicks", 10)
	must(t, p.Schedule(schemas.Timer{Customer: "a", ID: "t1", Due: time.UnixMilli(1000)}))
	must(t, p.Commit(1))

	customer(t, p, "a").Events = 2
	customer(t, p, "b").Events = 1
	p.SetOffset("clicks", 20)
	must(t, p.Schedule(schemas.Timer{Customer: "a", ID: "t2", Due: time.UnixMilli(500)}))
	must(t, p.Cancel("a", "t1"))
	due, err := p.PopDue(time.UnixMilli(2000), 0, nil)
	must(t, err)
	if len(due) != 1 || due[0].ID != "t2" || p.PendingTimers() != 0 {
		t.Fatalf("in batch: popped %+v, pending %d", due, p.PendingTimers())
	}
	p.Abort()

	if got := customer(t, p, "a"); got.Events != 1 {
		t.Fatalf("after abort: a = %+v", got)
	}
	if got := customer(t, p, "b"); got.Events != 0 {
		t.Fatalf("after abort: b = %+v", got)
	}
	if p.PendingTimers() != 1 {
		t.Fatalf("after abort: pending = %d, want 1", p.PendingTimers())
	}
	if _, ok, _ := p.Timer("a", "t1"); !ok {
		t.Fatal("after abort: t1 is gone")
	}
	if _, ok, _ := p.Timer("a", "t2"); ok {
		t.Fatal("after abort: t2 exists")
	}
	due, err = p.PopDue(time.UnixMilli(2000), 0, nil)
	must(t, err)
	if len(due) != 1 || due[0].ID != "t1" {
		t.Fatalf("after abort: popped %+v, want t1", due)
	}
	p.Abort()
	off, _ := p.Offsets()
	if off.Inputs["clicks"] != 10 || off.Changelog != 1 {
		t.Fatalf("after abort: offsets = %+v", off)
	}
}

func TestErase(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 0)
	customer(t, p, "a").Events = 3
	customer(t, p, "a\x00b").Events = 4 // shares a byte prefix with "a"
	for _, id := range []string{"x", "y"} {
		must(t, p.Schedule(schemas.Timer{Customer: "a", ID: id, Due: time.UnixMilli(10)}))
		must(t, p.Schedule(schemas.Timer{Customer: "a\x00b", ID: id, Due: time.UnixMilli(10)}))
	}
	must(t, p.Commit(-1))

	must(t, p.Schedule(schemas.Timer{Customer: "a", ID: "z", Due: time.UnixMilli(10)}))
	must(t, p.Erase("a"))
	var keys []string
	must(t, p.Changes(func(k, v []byte) error {
		if v != nil {
			t.Errorf("erase wrote %q", k)
		}
		keys = append(keys, string(k))
		return nil
	}))
	// Customer tombstone, x and y tombstones; z never reached the changelog.
	if len(keys) != 3 {
		t.Fatalf("erase changes = %q", keys)
	}
	must(t, p.Commit(-1))
	if got := customer(t, p, "a"); got.Events != 0 {
		t.Fatalf("erased customer = %+v", got)
	}
	if got := customer(t, p, "a\x00b"); got.Events != 4 {
		t.Fatalf("neighbour = %+v", got)
	}
	if p.PendingTimers() != 2 {
		t.Fatalf("pending = %d, want 2", p.PendingTimers())
	}
	if _, ok, _ := p.Timer("a\x00b", "x"); !ok {
		t.Fatal("neighbour's timer erased")
	}
}

func TestDropPartition(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	for _, n := range []int32{1, 2, 3} {
		p := part(t, s, n)
		customer(t, p, "c").Events = int64(n)
		must(t, p.Schedule(schemas.Timer{Customer: "c", ID: "t", Due: time.UnixMilli(int64(n))}))
		p.SetOffset("clicks", int64(n))
		must(t, p.Commit(int64(n)))
	}
	old := s.Partition(2)
	must(t, s.DropPartition(2))
	if _, err := old.Customer("c"); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("dropped handle: err = %v", err)
	}
	check := func(s *Store) {
		for _, n := range []int32{1, 2, 3} {
			p := part(t, s, n)
			want := int64(n)
			if n == 2 {
				want = 0
			}
			if got := customer(t, p, "c"); got.Events != want {
				t.Errorf("partition %d: customer = %+v", n, got)
			}
			if p.PendingTimers() != min(want, 1) {
				t.Errorf("partition %d: pending = %d", n, p.PendingTimers())
			}
			off, err := p.Offsets()
			must(t, err)
			if n == 2 && (len(off.Inputs) != 0 || off.Changelog != -1) {
				t.Errorf("partition 2: offsets = %+v", off)
			}
			if n != 2 && off.Changelog != want {
				t.Errorf("partition %d: offsets = %+v", n, off)
			}
			p.Abort()
		}
	}
	check(s)
	closeStore(t, s)
	s = openStore(t, fs)
	defer closeStore(t, s)
	check(s)
}

func TestPartitionErrors(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	if err := s.Partition(-1).Err(); err == nil {
		t.Fatal("negative partition accepted")
	}
	p := part(t, s, 0)
	customer(t, p, "a")
	must(t, p.Changes(func(k, v []byte) error { return nil }))
	if _, err := p.Customer("b"); err == nil {
		t.Fatal("Customer of a new ID after Changes succeeded")
	}
	if err := p.Schedule(schemas.Timer{Customer: "a", ID: "t"}); err == nil {
		t.Fatal("Schedule after Changes succeeded")
	}
	must(t, p.Commit(-1))
	if err := p.ApplyChangelog([]byte("cx"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Customer("b"); err == nil {
		t.Fatal("Customer during a restore succeeded")
	}
	must(t, p.FlushRestore())
	closeStore(t, s)
	if _, err := p.Customer("a"); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: err = %v", err)
	}
}

// TestReadsColumnarTables: a store whose tables were written with Pebble's
// columnar blocks (as releases before row blocks did) opens and reads, and
// what is written next goes into row-block tables.
func TestReadsColumnarTables(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.columnarBlocks = true
	s, err := Open(cfg, zaptest.NewLogger(t))
	must(t, err)
	p := part(t, s, 0)
	customer(t, p, "old").Events = 1
	must(t, p.Commit(1))
	must(t, s.db.Flush())
	closeStore(t, s)

	s = openStore(t, fs)
	p = part(t, s, 0)
	if got := customer(t, p, "old"); got.Events != 1 {
		t.Fatalf("customer from a columnar table: %+v", got)
	}
	p.Abort()
	customer(t, p, "new").Events = 2
	must(t, p.Commit(2))
	must(t, s.db.Flush())
	closeStore(t, s)

	formats := tableFormats(t, fs, "db")
	var columnar, rows int
	for _, f := range formats {
		if f.BlockColumnar() {
			columnar++
		} else {
			rows++
		}
	}
	if columnar == 0 || rows == 0 {
		t.Fatalf("table formats %v: want a columnar table (first store) and a row one (second)", formats)
	}

	s = openStore(t, fs)
	defer closeStore(t, s)
	p = part(t, s, 0)
	if got := customer(t, p, "old"); got.Events != 1 {
		t.Fatalf("after reopen: old = %+v", got)
	}
	if got := customer(t, p, "new"); got.Events != 2 {
		t.Fatalf("after reopen: new = %+v", got)
	}
}

// tableFormats returns the format of every sstable in dir.
func tableFormats(t *testing.T, fs vfs.FS, dir string) []sstable.TableFormat {
	t.Helper()
	names, err := fs.List(dir)
	must(t, err)
	var out []sstable.TableFormat
	for _, name := range names {
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		f, err := fs.Open(fs.PathJoin(dir, name))
		must(t, err)
		readable, err := sstable.NewSimpleReadable(f)
		must(t, err)
		r, err := sstable.NewReader(context.Background(), readable, sstable.ReaderOptions{})
		must(t, err)
		format, err := r.TableFormat()
		must(t, err)
		must(t, r.Close())
		out = append(out, format)
	}
	return out
}
