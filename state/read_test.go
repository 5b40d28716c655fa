package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

func TestReadCustomer(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 2)
	c := customer(t, p, "alice")
	c.Events = 7
	c.Decisions = []schemas.Decision{{At: time.UnixMilli(5000).UTC(), Action: schemas.DecisionFired, Rule: "welcome", RuleVersion: 1}}
	must(t, p.Schedule(tm("alice", "b", 9000)))
	must(t, p.Schedule(tm("alice", "a", 9000)))
	must(t, p.Schedule(tm("alice", "c", 3000)))
	must(t, p.Schedule(tm("alice\x00", "x", 1000))) // a neighbour sharing the prefix
	must(t, p.Commit(-1))

	// An uncommitted batch is not visible: the view is the committed state.
	customer(t, p, "alice").Events = 100
	must(t, p.Cancel("alice", "c"))

	cs, found, err := s.ReadCustomer(2, "alice")
	must(t, err)
	if !found || cs.Customer.ID != "alice" || cs.Customer.Events != 7 || len(cs.Customer.Decisions) != 1 {
		t.Fatalf("read %v %+v", found, cs.Customer)
	}
	if got := refs(cs.Timers); got != "alice/c@3000 alice/a@9000 alice/b@9000" {
		t.Fatalf("timers %q", got)
	}
	if _, found, err := s.ReadCustomer(1, "alice"); err != nil || found {
		t.Fatalf("other partition: found=%v err=%v", found, err)
	}
	if _, found, err := s.ReadCustomer(2, "nobody"); err != nil || found {
		t.Fatalf("unknown customer: found=%v err=%v", found, err)
	}
	p.Abort()
}

// TestEraseLeavesNothing erases a customer with a record, pending and
// cancelled timers and a deferred trigger, then checks the store and a
// store restored from the changelog (full, and compacted as Kafka would)
// for any key or value that holds the customer's ID. A stale copy (a
// store restored up to before the erase, as an instance that once owned
// the partition keeps) must lose it too when it catches up.
func TestEraseLeavesNothing(t *testing.T) {
	const id = "erin-4711"
	a := openStore(t, vfs.NewMem())
	defer closeStore(t, a)
	pa := part(t, a, 3)
	var log []record

	c := customer(t, pa, id)
	c.Events, c.Profile.Country = 3, "DE"
	c.Decisions = []schemas.Decision{{Action: schemas.DecisionDeferred, Rule: "promo", TriggerID: "t1"}}
	customer(t, pa, "other").Events = 1
	must(t, pa.Schedule(tm(id, "cart", 5000)))
	must(t, pa.Schedule(tm(id, "gone", 6000)))
	deferred := tm(id, "promo/deferred", 7000)
	deferred.Deferred = &schemas.Trigger{ID: "t1", Rule: "promo", Customer: id, Attributes: map[string]string{"name": "Erin"}}
	must(t, pa.Schedule(deferred))
	must(t, pa.Schedule(tm("other", "cart", 5000)))
	log = runBatch(t, pa, log)
	must(t, pa.Cancel(id, "gone")) // leaves an empty reverse entry
	log = runBatch(t, pa, log)
	beforeErase := len(log)

	must(t, pa.Erase(id))
	log = runBatch(t, pa, log)

	checkGone := func(t *testing.T, s *Store, what string) {
		t.Helper()
		keys := 0
		must(t, s.ScanPartition(3, func(k, v []byte) error {
			keys++
			if bytes.Contains(k, []byte(id)) || bytes.Contains(v, []byte(id)) {
				t.Errorf("%s: key %q (value %q) still holds the erased customer", what, k, v)
			}
			return nil
		}))
		if keys == 0 {
			t.Fatalf("%s: partition is empty: the other customer is gone too", what)
		}
		if cs, found, err := s.ReadCustomer(3, id); err != nil || found {
			t.Errorf("%s: ReadCustomer found=%v %+v err=%v", what, found, cs, err)
		}
		if cs, found, err := s.ReadCustomer(3, "other"); err != nil || !found || cs.Customer.Events != 1 || len(cs.Timers) != 1 {
			t.Errorf("%s: the other customer: found=%v %+v err=%v", what, found, cs, err)
		}
	}
	checkGone(t, a, "owner")

	var compacted []record
	seen := map[string]bool{}
	for i := len(log) - 1; i >= 0; i-- {
		if !seen[string(log[i].key)] {
			seen[string(log[i].key)] = true
			compacted = append([]record{log[i]}, compacted...)
		}
	}
	restore := func(t *testing.T, s *Store, records []record) {
		pb := part(t, s, 3)
		for _, r := range records {
			must(t, pb.ApplyChangelog(r.key, r.value, r.offset))
		}
		must(t, pb.FlushRestore())
	}
	t.Run("full", func(t *testing.T) {
		b := openStore(t, vfs.NewMem())
		defer closeStore(t, b)
		restore(t, b, log)
		checkGone(t, b, "restored from the full changelog")
	})
	t.Run("compacted", func(t *testing.T) {
		b := openStore(t, vfs.NewMem())
		defer closeStore(t, b)
		restore(t, b, compacted)
		checkGone(t, b, "restored from the compacted changelog")
	})
	t.Run("stale copy catches up", func(t *testing.T) {
		b := openStore(t, vfs.NewMem())
		defer closeStore(t, b)
		restore(t, b, log[:beforeErase])
		if _, found, _ := b.ReadCustomer(3, id); !found {
			t.Fatal("the stale copy should hold the customer before the erase")
		}
		restore(t, b, log[beforeErase:])
		checkGone(t, b, "stale copy after catching up")
	})
}
