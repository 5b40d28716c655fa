package state

import (
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

// TestParseChangelogKeys: every record a batch sends to the changelog
// (customer, timer with an escaped customer ID, held, offsets) parses to
// its customer or partition identity, and the offsets record round-trips
// through DecodeChangelogOffsets and AppendChangelogOffsets into a
// restore.
func TestParseChangelogKeys(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	p := s.Partition(0)
	odd := schemas.CustomerID("a\x00b")
	c, err := p.Customer(odd)
	must(t, err)
	c.Events = 3
	at := time.UnixMilli(1_700_000_000_000).UTC()
	must(t, p.Schedule(schemas.Timer{Customer: odd, ID: "t1", Due: at, Rule: "r"}))
	must(t, p.Hold(HeldRecord{Input: 2, Offset: 41, Time: at, Key: []byte("k"), Value: []byte("v")}))
	p.SetOffset("clicks", 9)
	p.SetProgress("clicks", 1234)
	p.SetFired(1200)
	log := runBatch(t, p, nil)

	kinds := map[RecordKind]int{}
	var offsets []byte
	for _, r := range log {
		k, err := ParseChangelogKey(r.key)
		if err != nil {
			t.Fatalf("key %q: %v", r.key, err)
		}
		kinds[k.Kind]++
		switch k.Kind {
		case RecordCustomer, RecordTimer:
			if k.Customer != odd {
				t.Errorf("key %q: customer %q, want %q", r.key, k.Customer, odd)
			}
		case RecordHeld:
			if k.Input != 2 || k.Offset != 41 {
				t.Errorf("held key %q: input %d offset %d, want 2 and 41", r.key, k.Input, k.Offset)
			}
		case RecordOffsets:
			offsets = r.value
		}
	}
	if kinds[RecordCustomer] != 1 || kinds[RecordTimer] != 1 || kinds[RecordHeld] != 1 || kinds[RecordOffsets] != 1 {
		t.Fatalf("record kinds %v: want one of each", kinds)
	}
	if _, err := ParseChangelogKey([]byte("zebra")); err == nil {
		t.Error("an unknown key kind parsed")
	}

	o, err := DecodeChangelogOffsets(offsets)
	must(t, err)
	want := Offsets{Inputs: map[string]int64{"clicks": 9}, Progress: map[string]int64{"clicks": 1234}, Fired: 1200, HasFired: true,
		Changelog: -1, Persisted: -1}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("decoded %+v, want %+v", o, want)
	}
	o.Inputs = map[string]int64{"clicks-r1": 0}
	o.Progress = map[string]int64{"clicks-r1": 1000}
	q := s.Partition(1)
	must(t, q.ApplyChangelog(OffsetsKey(), AppendChangelogOffsets(nil, o), 0))
	must(t, q.FlushRestore())
	got, err := q.Offsets()
	must(t, err)
	if got.Inputs["clicks-r1"] != 0 || len(got.Inputs) != 1 || got.Progress["clicks-r1"] != 1000 || !got.HasFired || got.Fired != 1200 {
		t.Fatalf("restored offsets %+v", got)
	}
}

// TestUseSource: a store keeps its state for the changelog it was built
// from and drops every partition when it is given another one.
func TestUseSource(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	if dropped, err := s.UseSource("cl"); err != nil || dropped {
		t.Fatalf("a new store: dropped %v, %v", dropped, err)
	}
	p := s.Partition(3)
	c, err := p.Customer("x")
	must(t, err)
	c.Events = 1
	runBatch(t, p, nil)
	if dropped, err := s.UseSource("cl"); err != nil || dropped {
		t.Fatalf("the same changelog: dropped %v, %v", dropped, err)
	}
	if _, found, err := s.ReadCustomer(3, "x"); err != nil || !found {
		t.Fatalf("the same changelog lost the customer: %v %v", found, err)
	}
	if dropped, err := s.UseSource("cl-r1"); err != nil || !dropped {
		t.Fatalf("another changelog: dropped %v, %v", dropped, err)
	}
	if _, found, err := s.ReadCustomer(3, "x"); err != nil || found {
		t.Fatalf("another changelog kept the customer: %v %v", found, err)
	}
	if o, err := s.Partition(3).Offsets(); err != nil || o.Changelog != -1 {
		t.Fatalf("a dropped partition's offsets: %+v %v", o, err)
	}
}
