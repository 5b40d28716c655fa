package state

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestRepairCutBatch: a crash cut batch 2's changelog records short (no
// closing offsets record). The restore applies batch 1 only; Repair's
// records, written after the cut tail, make a later restore of the whole
// changelog (which sees the cut tail followed by more records) end in
// batch 1's state as well, byte for byte.
func TestRepairCutBatch(t *testing.T) {
	a := openStore(t, vfs.NewMem())
	defer closeStore(t, a)
	pa := part(t, a, 2)
	var log []record

	customer(t, pa, "alice").Events = 1
	customer(t, pa, "bob").Events = 1
	must(t, pa.Schedule(tm("alice", "cart", 5000)))
	must(t, pa.Hold(hr(1, 10, 1000, "alice", "a10")))
	pa.SetOffset("clicks", 10)
	log = runBatch(t, pa, log)
	batch1 := dump(t, a, 2)

	// Batch 2, cut: alice changed, bob erased, carol new, alice's timer
	// moved and a new one, the held record released, offsets moved.
	customer(t, pa, "alice").Events = 2
	must(t, pa.Erase("bob"))
	customer(t, pa, "carol").Events = 1
	must(t, pa.Schedule(tm("alice", "cart", 7000)))
	must(t, pa.Schedule(tm("carol", "welcome", 6000)))
	must(t, pa.Release(1, 10))
	pa.SetOffset("clicks", 20)
	var cut []record
	must(t, pa.Changes(func(k, v []byte) error {
		cut = append(cut, record{key: bytes.Clone(k), value: bytes.Clone(v), offset: int64(len(log) + len(cut))})
		return nil
	}))
	pa.Abort() // the crash: Pebble never saw batch 2
	if last := cut[len(cut)-1].key; last[0] != kindMeta {
		t.Fatalf("a batch's changes must end with its offsets record, ended with %q", last)
	}
	cut = cut[:len(cut)-1] // cut before the offsets record
	log = append(log, cut...)

	// The restore that notices the cut applies batch 1 only, then repairs.
	b := openStore(t, vfs.NewMem())
	defer closeStore(t, b)
	pb := part(t, b, 2)
	for _, r := range log[:len(log)-len(cut)] {
		must(t, pb.ApplyChangelog(r.key, r.value, r.offset))
	}
	must(t, pb.FlushRestore())
	if got := dump(t, b, 2); !reflect.DeepEqual(got, batch1) {
		t.Fatalf("restore of the complete batches differs from batch 1:\n%q\n%q", got, batch1)
	}
	var keys [][]byte
	for _, r := range cut {
		keys = append(keys, r.key)
	}
	var repair []record
	must(t, pb.Repair(keys, func(k, v []byte) error {
		repair = append(repair, record{key: bytes.Clone(k), value: bytes.Clone(v), offset: int64(len(log) + len(repair))})
		return nil
	}))
	if len(repair) != len(cut)+1 {
		t.Fatalf("repair wrote %d records for %d cut ones (+ offsets)", len(repair), len(cut))
	}
	log = append(log, repair...)

	// A later restore of everything, cut tail included.
	c := openStore(t, vfs.NewMem())
	defer closeStore(t, c)
	pc := part(t, c, 2)
	for _, r := range log {
		must(t, pc.ApplyChangelog(r.key, r.value, r.offset))
	}
	must(t, pc.FlushRestore())
	got, want := dump(t, c, 2), batch1
	// The changelog offset in the offsets record differs (it is the
	// position of the last record applied); compare everything else.
	drop := func(kvs [][2]string) [][2]string {
		var out [][2]string
		for _, kv := range kvs {
			if kv[0][partLen] != kindMeta {
				out = append(out, kv)
			}
		}
		return out
	}
	if !reflect.DeepEqual(drop(got), drop(want)) {
		t.Fatalf("after repair, a full restore differs from batch 1:\n%q\n%q", drop(got), drop(want))
	}
	oc, _ := pc.Offsets()
	if oc.Inputs["clicks"] != 10 {
		t.Errorf("restored input offset %d, want batch 1's 10", oc.Inputs["clicks"])
	}
	if pc.PendingTimers() != 1 || pc.HeldCount() != 1 {
		t.Errorf("pending %d held %d, want 1 and 1", pc.PendingTimers(), pc.HeldCount())
	}
}
