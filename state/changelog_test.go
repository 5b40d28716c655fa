package state

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

type record struct {
	key, value []byte
	offset     int64
}

// runBatch collects the batch's changes as changelog records (copied, with
// offsets continuing from log) and commits with the last one's offset.
func runBatch(t *testing.T, p *Partition, log []record) []record {
	t.Helper()
	first := len(log)
	must(t, p.Changes(func(k, v []byte) error {
		r := record{key: bytes.Clone(k), offset: int64(len(log))}
		if v != nil {
			r.value = bytes.Clone(v)
		}
		log = append(log, r)
		return nil
	}))
	last := int64(-1)
	if len(log) > first {
		last = int64(len(log) - 1)
	}
	must(t, p.Commit(last))
	return log
}

// dump returns every key and value of partition n, straight from Pebble.
func dump(t *testing.T, s *Store, n int32) [][2]string {
	t.Helper()
	start, end := partitionBounds(uint32(n))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	must(t, err)
	defer it.Close()
	var kvs [][2]string
	for valid := it.First(); valid; valid = it.Next() {
		if it.Key()[partLen] == kindReverse && len(it.Value()) == 0 {
			continue // "no pending timer": the same as absent
		}
		kvs = append(kvs, [2]string{string(it.Key()), string(it.Value())})
	}
	must(t, it.Error())
	return kvs
}

func TestChangelogRestore(t *testing.T) {
	a := openStore(t, vfs.NewMem())
	defer closeStore(t, a)
	pa := part(t, a, 1)
	var log []record

	// Batch 1: customers, timers, offsets of two topics.
	c := customer(t, pa, "alice")
	c.Events, c.Cart.Items = 1, []schemas.Item{{ProductID: "p", Quantity: 1, UnitPrice: schemas.Money{Minor: 100, Currency: "EUR"}}}
	customer(t, pa, "bob").Events = 1
	customer(t, pa, "carol").Events = 1
	must(t, pa.Schedule(tm("alice", "cart", 5000)))
	must(t, pa.Schedule(tm("alice", "remind", 9000)))
	must(t, pa.Schedule(tm("bob", "cart", 6000)))
	must(t, pa.Schedule(tm("carol", "cart", 7000)))
	must(t, pa.Schedule(tm("tmp", "x", 100))) // born and cancelled in the batch
	must(t, pa.Cancel("tmp", "x"))
	must(t, pa.Hold(hr(1, 10, 1000, "alice", "a10")))
	must(t, pa.Hold(hr(1, 11, 1100, "bob", "b11")))
	must(t, pa.Hold(hr(2, 3, 900, "", "t3")))
	must(t, pa.Hold(hr(3, 1, 900, "tmp", "x"))) // held and released in the batch
	must(t, pa.Release(3, 1))
	pa.SetOffset("clicks", 10)
	pa.SetOffset("transactions", 3)
	log = runBatch(t, pa, log)

	// Batch 2: move alice/cart, cancel bob/cart, update alice twice.
	customer(t, pa, "alice").Events++
	must(t, pa.Schedule(tm("alice", "cart", 8000)))
	must(t, pa.Schedule(tm("alice", "cart", 8500)))
	must(t, pa.Cancel("bob", "cart"))
	customer(t, pa, "alice").Purchases++
	must(t, pa.Release(1, 10))
	must(t, pa.Hold(hr(2, 4, 950, "carol", "first")))
	must(t, pa.Hold(hr(2, 4, 960, "carol", "second")))
	pa.SetOffset("clicks", 20)
	log = runBatch(t, pa, log)

	// Batch 3: fire what is due by 7000 (carol/cart), erase bob, a new timer.
	fired, err := pa.PopDue(time.UnixMilli(7000), 0, nil)
	must(t, err)
	if got := refs(fired); got != "carol/cart@7000" {
		t.Fatalf("fired %q", got)
	}
	must(t, pa.Erase("bob"))
	must(t, pa.Schedule(tm("dave", "welcome", 7500)))
	customer(t, pa, "dave").Events = 1
	must(t, pa.Release(2, 3))
	must(t, pa.Hold(hr(1, 12, 1200, "dave", "")))
	must(t, pa.Release(1, 11)) // released and held again: a set
	must(t, pa.Hold(hr(1, 11, 1101, "bob", "b11 again")))
	pa.SetOffset("profiles", 1)
	log = runBatch(t, pa, log)

	// Batch 4: nothing but an offset; batch 5: nothing at all.
	pa.SetOffset("clicks", 21)
	log = runBatch(t, pa, log)
	log = runBatch(t, pa, log)

	// Keep the last record per key: what log compaction leaves.
	var compacted []record
	seen := map[string]bool{}
	for i := len(log) - 1; i >= 0; i-- {
		if !seen[string(log[i].key)] {
			seen[string(log[i].key)] = true
			compacted = append([]record{log[i]}, compacted...)
		}
	}

	for name, records := range map[string][]record{"full": log, "compacted": compacted} {
		t.Run(name, func(t *testing.T) {
			b := openStore(t, vfs.NewMem())
			defer closeStore(t, b)
			pb := part(t, b, 1)
			for i, r := range records {
				must(t, pb.ApplyChangelog(r.key, r.value, r.offset))
				if i%3 == 2 {
					must(t, pb.FlushRestore())
				}
			}
			must(t, pb.FlushRestore())

			// Byte for byte: customers, both timer indexes, held records,
			// counts, offsets.
			if da, db := dump(t, a, 1), dump(t, b, 1); !reflect.DeepEqual(da, db) {
				t.Fatalf("restored state differs:\nA %q\nB %q", da, db)
			}
			// And through the API.
			if pa.PendingTimers() != pb.PendingTimers() || pb.PendingTimers() != 3 {
				t.Fatalf("pending: A %d, B %d, want 3", pa.PendingTimers(), pb.PendingTimers())
			}
			if pa.HeldCount() != pb.HeldCount() || pb.HeldCount() != 3 {
				t.Fatalf("held: A %d, B %d, want 3", pa.HeldCount(), pb.HeldCount())
			}
			ha := heldString(held(t, pa))
			if hb := heldString(held(t, pb)); ha != hb ||
				hb != `1/11@1101 "bob"="b11 again" 1/12@1200 "dave"="" 2/4@960 "carol"="second"` {
				t.Fatalf("Held: A %s, B %s", ha, hb)
			}
			oa, _ := pa.Offsets()
			ob, _ := pb.Offsets()
			if !reflect.DeepEqual(oa, ob) || ob.Changelog != log[len(log)-1].offset || ob.Inputs["clicks"] != 21 {
				t.Fatalf("offsets: A %+v, B %+v", oa, ob)
			}
			for _, id := range []schemas.CustomerID{"alice", "bob", "carol", "dave"} {
				ca, cb := customer(t, pa, id), customer(t, pb, id)
				if ca.ID != cb.ID || !bytes.Equal(appendCustomer(nil, ca), appendCustomer(nil, cb)) {
					t.Errorf("customer %s: A %+v, B %+v", id, ca, cb)
				}
				for _, tid := range []string{"cart", "remind", "welcome"} {
					ta, oka, _ := pa.Timer(id, tid)
					tb, okb, _ := pb.Timer(id, tid)
					if oka != okb || !reflect.DeepEqual(ta, tb) {
						t.Errorf("timer %s/%s: A %+v %v, B %+v %v", id, tid, ta, oka, tb, okb)
					}
				}
			}
			da, err := pa.PopDue(time.UnixMilli(1<<40), 0, nil)
			must(t, err)
			db, err := pb.PopDue(time.UnixMilli(1<<40), 0, nil)
			must(t, err)
			if got := refs(db); got != refs(da) || got != "dave/welcome@7500 alice/cart@8500 alice/remind@9000" {
				t.Fatalf("PopDue: A %q, B %q", refs(da), got)
			}
			pa.Abort()
			pb.Abort()
		})
	}
}

func TestApplyChangelogRejects(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	timer := tm("a", "x", 1)
	val := appendTimer(nil, &timer, 1)
	for name, r := range map[string]record{
		"empty key":      {key: nil},
		"unknown kind":   {key: []byte("zzz")},
		"bad customer":   {key: []byte("ca"), value: []byte{9}},
		"bad timer key":  {key: []byte("ra"), value: val},
		"timer mismatch": {key: appendReverseKey(nil, 0, "b", "x")[partLen:], value: val},
		"unknown meta":   {key: []byte("mfoo"), value: []byte{1}},
		"bad held key":   {key: []byte("h\x01\x00"), value: appendHeld(nil, 1, nil, nil)},
		"negative held":  {key: append([]byte("h\x01"), 0x80, 0, 0, 0, 0, 0, 0, 0), value: appendHeld(nil, 1, nil, nil)},
		"bad held value": {key: appendHeldKey(nil, 0, 1, 1)[partLen:], value: []byte{9}},
		"held count":     {key: []byte("mheld"), value: make([]byte, 8)},
	} {
		p := part(t, s, 5)
		err := p.ApplyChangelog(r.key, r.value, 0)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !bytes.HasPrefix([]byte(err.Error()), []byte("state: ")) {
			t.Errorf("%s: error %q", name, err)
		}
		p.Abort()
	}
}

// A batch runs between two restore flushes (a processor catching up a
// partition after it served it), and the second restore moves the timer the
// batch scheduled: the restore must find the batch's entry (a restore that
// skipped the index reads for refs it had not applied itself left it
// behind).
func TestRestoreAfterABatch(t *testing.T) {
	a := openStore(t, vfs.NewMem())
	defer closeStore(t, a)
	pa := part(t, a, 0)
	var log []record
	must(t, pa.Schedule(tm("ann", "t", 100)))
	log = runBatch(t, pa, log)
	must(t, pa.Schedule(tm("bob", "t", 300))) // bob/t as the batch below has it, moved
	log = runBatch(t, pa, log)

	b := openStore(t, vfs.NewMem())
	defer closeStore(t, b)
	pb := part(t, b, 0)
	must(t, pb.ApplyChangelog(log[0].key, log[0].value, 0))
	must(t, pb.FlushRestore())
	must(t, pb.Schedule(tm("bob", "t", 200)))
	must(t, pb.Commit(-1))
	for _, r := range log[1:] {
		if r.key[0] == kindReverse {
			must(t, pb.ApplyChangelog(r.key, r.value, r.offset))
		}
	}
	must(t, pb.FlushRestore())
	due, err := pb.PopDue(time.UnixMilli(1<<40), 0, nil)
	must(t, err)
	if got := refs(due); got != "ann/t@100 bob/t@300" || pb.PendingTimers() != 0 {
		t.Fatalf("after the restore: pending %q (count %d before popping), want ann/t@100 bob/t@300", got, pb.PendingTimers()+int64(len(due)))
	}
}

// TestKindOf checks that every record a batch reports is counted under the
// kind it holds: the processor's changelog metric reads the keys this way.
func TestKindOf(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 0)
	customer(t, p, "alice").Events = 1
	customer(t, p, "bob").Events = 1
	must(t, p.Schedule(tm("alice", "cart", 5000)))
	must(t, p.Schedule(tm("alice", "remind", 9000)))
	must(t, p.Schedule(tm("bob", "cart", 6000)))
	must(t, p.Hold(hr(1, 10, 1000, "alice", "a10")))
	p.SetOffset("clicks", 11)
	log := runBatch(t, p, nil)
	must(t, p.Cancel("bob", "cart")) // a tombstone is a timer record too
	must(t, p.Release(1, 10))
	log = runBatch(t, p, log)

	var got [NumRecordKinds]int
	for _, r := range log {
		got[KindOf(r.key)]++
	}
	want := [NumRecordKinds]int{RecordCustomer: 2, RecordTimer: 4, RecordHeld: 2, RecordOffsets: 1}
	if got != want {
		t.Errorf("records by kind %v, want %v", got, want)
	}
	for _, key := range [][]byte{nil, []byte("x"), []byte("mtimers")} {
		if k := KindOf(key); k != RecordOther {
			t.Errorf("KindOf(%q) = %v, want other", key, k)
		}
	}
	for k, name := range map[RecordKind]string{RecordCustomer: "customer", RecordTimer: "timer", RecordHeld: "held", RecordOffsets: "offsets", RecordOther: "other", NumRecordKinds: "other"} {
		if k.String() != name {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), name)
		}
	}
}
