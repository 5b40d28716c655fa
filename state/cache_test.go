package state

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

// cacheSizes are the cache sizes the cache tests run with: off, evicting at
// every put, and the default.
var cacheSizes = []int{-1, 1, 2, 1024}

// openCached opens a store in memory with the customer cache size (and so
// the timer cache's), and its partition 0.
func openCached(t *testing.T, size int) (Config, *Store, *Partition) {
	t.Helper()
	cfg := testConfig(vfs.NewMem())
	cfg.CachedCustomers = size
	s, err := Open(cfg, nil)
	must(t, err)
	return cfg, s, part(t, s, 0)
}

// The customer cache holds committed records only: whatever a batch does,
// the next batch sees what Pebble holds, with the cache on (several sizes,
// evicting) and off.
func TestCustomerCache(t *testing.T) {
	for _, size := range cacheSizes {
		t.Run(fmt.Sprintf("cached=%d", size), func(t *testing.T) {
			cfg, s, p := openCached(t, size)
			ids := []schemas.CustomerID{"ann", "bob", "cid"}
			events := func(p *Partition, id schemas.CustomerID) int64 {
				t.Helper()
				c, err := p.Customer(id)
				must(t, err)
				return c.Events
			}
			set := func(id schemas.CustomerID, n int64) {
				t.Helper()
				c, err := p.Customer(id)
				must(t, err)
				c.Events = n
			}

			for i, id := range ids { // committed: ann=1 bob=2 cid=3
				set(id, int64(i+1))
			}
			must(t, p.Commit(-1))

			// An aborted batch's changes are not cached.
			for _, id := range ids {
				set(id, 99)
			}
			p.Abort()
			for i, id := range ids {
				if got := events(p, id); got != int64(i+1) {
					t.Fatalf("after an abort, %s has %d events, want %d", id, got, i+1)
				}
			}
			p.Abort()

			// A committed batch's changes are read back, also after
			// other customers pushed it out of a small cache.
			set("ann", 10)
			must(t, p.Commit(-1))
			set("bob", 20)
			set("cid", 30)
			must(t, p.Commit(-1))
			for id, want := range map[schemas.CustomerID]int64{"ann": 10, "bob": 20, "cid": 30} {
				if got := events(p, id); got != want {
					t.Fatalf("%s has %d events, want %d", id, got, want)
				}
			}
			p.Abort()

			// Erase outside the batch that read the record.
			must(t, p.Erase("bob"))
			must(t, p.Commit(-1))
			if got := events(p, "bob"); got != 0 {
				t.Fatalf("erased bob has %d events", got)
			}
			p.Abort()

			// A restore replaces a cached record: apply ann's record as
			// another store's changelog has it.
			other, err := Open(testConfig(vfs.NewMem()), nil)
			must(t, err)
			op := part(t, other, 0)
			c, err := op.Customer("ann")
			must(t, err)
			c.Events = 77
			var key, val []byte
			must(t, op.Changes(func(k, v []byte) error {
				if k[0] == kindCustomer {
					key, val = append([]byte(nil), k...), append([]byte(nil), v...)
				}
				return nil
			}))
			op.Abort()
			must(t, other.Close())
			must(t, p.ApplyChangelog(key, val, 0))
			must(t, p.FlushRestore())
			if got := events(p, "ann"); got != 77 {
				t.Fatalf("after the restore ann has %d events, want 77", got)
			}
			p.Abort()

			// Pebble agrees with what the cache served.
			must(t, s.Close())
			s, err = Open(cfg, nil)
			must(t, err)
			defer s.Close()
			p = part(t, s, 0)
			for id, want := range map[schemas.CustomerID]int64{"ann": 77, "bob": 0, "cid": 30} {
				if got := events(p, id); got != want {
					t.Fatalf("reopened: %s has %d events, want %d", id, got, want)
				}
			}
		})
	}
}

// The timer cache holds committed due times only: after an abort, an erase
// and a restore, and with the cache evicting or off, a batch moves and
// cancels timers from where Pebble has them (a stale due time would leave
// the stored entry behind, to fire later, and miscount the pending timers).
func TestTimerCache(t *testing.T) {
	for _, size := range cacheSizes {
		t.Run(fmt.Sprintf("cached=%d", size), func(t *testing.T) {
			cfg, s, p := openCached(t, size)
			check := func(step string, want string) {
				t.Helper()
				if got := p.PendingTimers(); got != int64(strings.Count(want, "@")) {
					t.Fatalf("%s: %d timers pending, want %s", step, got, want)
				}
				due, err := p.PopDue(time.UnixMilli(1<<40), 0, nil)
				must(t, err)
				if got := refs(due); got != want {
					t.Fatalf("%s: pending %q, want %q", step, got, want)
				}
				p.Abort()
			}

			must(t, p.Schedule(tm("ann", "t1", 100)))
			must(t, p.Schedule(tm("bob", "t1", 200)))
			must(t, p.Schedule(tm("cid", "t1", 300)))
			must(t, p.Commit(-1))

			must(t, p.Schedule(tm("ann", "t1", 150)))
			must(t, p.Cancel("bob", "t1"))
			p.Abort()
			check("after an abort", "ann/t1@100 bob/t1@200 cid/t1@300")

			must(t, p.Schedule(tm("ann", "t1", 400)))
			must(t, p.Commit(-1))
			must(t, p.Schedule(tm("ann", "t1", 500))) // moved from 400
			must(t, p.Commit(-1))
			check("after moves", "bob/t1@200 cid/t1@300 ann/t1@500")

			must(t, p.Erase("cid"))
			must(t, p.Commit(-1))
			must(t, p.Schedule(tm("cid", "t1", 600)))
			must(t, p.Commit(-1))
			check("after an erase", "bob/t1@200 ann/t1@500 cid/t1@600")

			// A restore moves bob's timer to 700, as another store's
			// changelog has it; then a batch cancels it.
			other, err := Open(testConfig(vfs.NewMem()), nil)
			must(t, err)
			op := part(t, other, 0)
			must(t, op.Schedule(tm("bob", "t1", 700)))
			var key, val []byte
			must(t, op.Changes(func(k, v []byte) error {
				if k[0] == kindReverse {
					key, val = bytes.Clone(k), bytes.Clone(v)
				}
				return nil
			}))
			op.Abort()
			must(t, other.Close())
			must(t, p.ApplyChangelog(key, val, 0))
			must(t, p.FlushRestore())
			check("after the restore", "ann/t1@500 cid/t1@600 bob/t1@700")
			must(t, p.Cancel("bob", "t1"))
			must(t, p.Commit(-1))
			check("after cancelling the restored timer", "ann/t1@500 cid/t1@600")

			// Pebble agrees with what the cache served.
			must(t, s.Close())
			s, err = Open(cfg, nil)
			must(t, err)
			defer s.Close()
			p = part(t, s, 0)
			check("reopened", "ann/t1@500 cid/t1@600")
			// The reopened handle knows the stored timers (its timer
			// filter is built from Pebble): moving one replaces it.
			must(t, p.Schedule(tm("cid", "t1", 50)))
			must(t, p.Commit(-1))
			check("moved after reopening", "cid/t1@50 ann/t1@500")
		})
	}
}

// A batch of many customers leaves at most maxFree records kept for reuse
// (the rest go to the GC), with the cache on or off.
func TestFreeCustomersBounded(t *testing.T) {
	for _, size := range []int{-1, 16} {
		_, s, p := openCached(t, size)
		for round := range 2 {
			for i := range 4 * maxFree {
				c, err := p.Customer(schemas.CustomerID(fmt.Sprintf("c%d-%d", round, i)))
				must(t, err)
				c.Events++
			}
			if round == 0 {
				must(t, p.Commit(-1))
			} else {
				p.Abort()
			}
			if len(p.free) > maxFree {
				t.Fatalf("cache %d, round %d: %d records kept for reuse, want at most %d", size, round, len(p.free), maxFree)
			}
		}
		must(t, s.Close())
	}
}
