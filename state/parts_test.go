package state

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/schemas"
)

// mixedRuns puts c's keyed and unkeyed runs in an order where the hot
// part's runs do not come first.
func mixedRuns(c *schemas.Customer) *schemas.Customer {
	at := c.LastSeen.Add(-time.Hour)
	c.Runs = []schemas.Run{
		{Rule: "order_followup", Key: "o-1", Occurrence: "o-1", Stage: 1, StartedAt: at, Version: 2, Due: []time.Time{at.Add(time.Hour)}, CausedBy: "e-1"},
		{Rule: "silence", Occurrence: "e-9", StartedAt: at.Add(time.Minute), Version: 1, Stage: 1, Due: []time.Time{at.Add(2 * time.Hour)}, CausedBy: "e-9"},
		{Rule: "order_followup", Key: "o-2", Occurrence: "o-2", StartedAt: at.Add(2 * time.Minute), Version: 2, CausedBy: "e-2"},
		{Rule: "cart", Occurrence: "e-3", StartedAt: at.Add(3 * time.Minute), Version: 1, CausedBy: "e-3"},
	}
	return c
}

// sameCustomer compares two records by their whole-record encoding (which
// TestCustomerRoundTrip shows to be complete), so that a nil and an empty
// slice are the same, and by ID.
func sameCustomer(a, b *schemas.Customer) bool {
	return a.ID == b.ID && bytes.Equal(appendCustomer(nil, a), appendCustomer(nil, b))
}

// decodeParts decodes encoded parts (nil = not stored) as a load does.
func decodeParts(t *testing.T, parts [numParts][]byte, c *schemas.Customer) {
	t.Helper()
	must(t, readParts(parts[partHot], c, func(pt recPart) ([]byte, error) { return parts[pt], nil }))
}

func encodeParts(c *schemas.Customer) (parts [numParts][]byte) {
	var mask uint8
	for _, pt := range [...]recPart{partWarm, partCold, partHot} {
		b := appendPart(nil, c, pt, mask)
		if pt != partHot && len(b) == partHeader {
			continue
		}
		parts[pt] = b
		mask |= 1 << pt
	}
	return parts
}

func TestPartsRoundTrip(t *testing.T) {
	for name, c := range map[string]*schemas.Customer{
		"full": fullCustomer(), "compact": compactCustomer(), "mixed runs": mixedRuns(fullCustomer()),
		"empty": {ID: "e"}, "hot only": {ID: "h", LastSeen: time.UnixMilli(5).UTC(), Events: 1},
	} {
		parts := encodeParts(c)
		got := &schemas.Customer{ID: c.ID}
		decodeParts(t, parts, got)
		if !sameCustomer(got, c) {
			t.Errorf("%s: round trip:\n got %+v\nwant %+v", name, got, c)
		}
		// Decoding into a record that held another customer overwrites it.
		dirty := mixedRuns(fullCustomer())
		decodeParts(t, parts, dirty)
		dirty.ID = c.ID
		if !sameCustomer(dirty, c) {
			t.Errorf("%s: decode into a used record:\n got %+v\nwant %+v", name, dirty, c)
		}
	}
	if p := encodeParts(&schemas.Customer{ID: "e"}); p[partWarm] != nil || p[partCold] != nil {
		t.Errorf("an empty customer stores warm %x, cold %x", p[partWarm], p[partCold])
	}
}

// TestPartsAreIndependent: a part's bytes depend on that part only, so a
// change of LastSeen (every event) leaves the warm and cold parts as they
// were.
func TestPartsAreIndependent(t *testing.T) {
	c := mixedRuns(fullCustomer())
	before := encodeParts(c)
	c.LastSeen = c.LastSeen.Add(time.Minute)
	c.Events++
	c.Recent = append(c.Recent, schemas.SeenEvent{Key: 7, At: c.LastSeen})
	c.Runs[1].StartedAt = c.LastSeen // the unkeyed run, hot
	after := encodeParts(c)
	if bytes.Equal(before[partHot], after[partHot]) {
		t.Error("the hot part did not change")
	}
	for _, pt := range []recPart{partWarm, partCold} {
		if !bytes.Equal(before[pt], after[pt]) {
			t.Errorf("part %d changed with the hot fields", pt)
		}
	}
	c.Marks = c.Marks[:0]
	if after2 := encodeParts(c); bytes.Equal(after2[partWarm], after[partWarm]) || !bytes.Equal(after2[partCold], after[partCold]) {
		t.Error("a change of the marks is not a change of the warm part alone")
	}
}

// TestPartsFormatV3: the parts of fullCustomer as this release writes
// them; a later release must still decode them (-update rewrites).
func TestPartsFormatV3(t *testing.T) {
	want := mixedRuns(fullCustomer())
	enc := encodeParts(want)
	var parts [numParts][]byte
	for pt, name := range []string{"hot", "warm", "cold"} {
		path := filepath.Join("testdata", "customer_v3_"+name+".hex")
		if *update {
			must(t, os.WriteFile(path, []byte(hex.EncodeToString(enc[pt])+"\n"), 0o644))
		}
		h, err := os.ReadFile(path)
		must(t, err)
		parts[pt], err = hex.DecodeString(strings.TrimSpace(string(h)))
		must(t, err)
	}
	got := &schemas.Customer{ID: want.ID}
	decodeParts(t, parts, got)
	if !sameCustomer(got, want) {
		t.Fatalf("v3 parts:\n got %+v\nwant %+v", got, want)
	}
}

func TestPartsRejectBadRunSlots(t *testing.T) {
	c := mixedRuns(fullCustomer())
	parts := encodeParts(c)
	// Without the warm part, the hot part's slots point past the runs.
	parts[partWarm] = nil
	var d partsDecoder
	got := &schemas.Customer{}
	if _, _, err := d.decodeFirst(parts[partHot], got); err != nil {
		t.Fatal(err)
	}
	if err := d.finish(got); err == nil {
		t.Error("run slots past the runs decoded")
	}
}

// changes collects a batch's changelog records and commits it.
func changes(t *testing.T, p *Partition, log map[string][]byte) []string {
	t.Helper()
	var keys []string
	must(t, p.Changes(func(k, v []byte) error {
		keys = append(keys, string(k))
		log[string(k)] = bytes.Clone(v)
		return nil
	}))
	must(t, p.Commit(-1))
	slices.Sort(keys)
	return keys
}

// TestOnlyChangedPartsWritten: a batch writes the parts whose bytes
// changed, to the changelog and to Pebble, with the write-back on and off,
// the cache on and off; a record read back is whole, its runs in order.
func TestOnlyChangedPartsWritten(t *testing.T) {
	for _, tc := range []struct {
		name            string
		commits, cached int
	}{{"write-through", 1, 0}, {"write-back", 4, 0}, {"no cache", 4, -1}, {"no cache, write-through", 1, -1}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openWriteBack(t, vfs.NewMem(), tc.commits, tc.cached)
			defer closeStore(t, s)
			p := part(t, s, 0)
			log := map[string][]byte{}
			want := mixedRuns(fullCustomer())
			want.ID = "a"
			*customer(t, p, "a") = *want
			if got := changes(t, p, log); !reflect.DeepEqual(got, []string{"ca", "oa", "wa"}) {
				t.Errorf("new customer wrote %q", got)
			}
			c := customer(t, p, "a")
			if !sameCustomer(c, want) {
				t.Fatalf("read back:\n got %+v\nwant %+v", c, want)
			}
			c.Events++
			c.LastSeen = c.LastSeen.Add(time.Second)
			want.Events, want.LastSeen = c.Events, c.LastSeen
			if got := changes(t, p, log); !reflect.DeepEqual(got, []string{"ca"}) {
				t.Errorf("an event's counters wrote %q", got)
			}
			customer(t, p, "a").Marks = nil
			want.Marks = nil
			if got := changes(t, p, log); !reflect.DeepEqual(got, []string{"wa"}) {
				t.Errorf("a mark's change wrote %q", got)
			}
			customer(t, p, "a")
			if got := changes(t, p, log); len(got) != 0 {
				t.Errorf("an unchanged customer wrote %q", got)
			}
			// The keyed runs go: the warm part is empty and deleted.
			c = customer(t, p, "a")
			c.Runs = slices.DeleteFunc(c.Runs, func(r schemas.Run) bool { return r.Key != "" })
			want.Runs = slices.Clone(c.Runs)
			if got := changes(t, p, log); !reflect.DeepEqual(got, []string{"ca", "wa"}) || log["wa"] != nil {
				t.Errorf("emptying the warm part wrote %q (warm %x)", got, log["wa"])
			}
			if got := customer(t, p, "a"); !sameCustomer(got, want) {
				t.Fatalf("read back:\n got %+v\nwant %+v", got, want)
			}
			p.Abort()
			cs, found, err := s.ReadCustomer(0, "a")
			must(t, err)
			if cs.Customer.ID = "a"; !found || !sameCustomer(&cs.Customer, want) {
				t.Fatalf("ReadCustomer:\n got %+v\nwant %+v", cs.Customer, want)
			}
		})
	}
}

// TestWholeRecordStoreAndChangelog: a store and a changelog of the whole
// record layout (formats 1 and 2, as the previous releases and
// appendCustomer write them) still load and restore; the first commit
// rewrites the customer as parts, and the record stays the same.
func TestWholeRecordStoreAndChangelog(t *testing.T) {
	want := mixedRuns(fullCustomer())
	want.ID = "a"
	old := appendCustomer(nil, want)

	// A store that holds a whole record under the customer key.
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	p := part(t, s, 0)
	must(t, s.db.Set(appendCustomerKey(nil, 0, "a"), old, nil))
	if got := customer(t, p, "a"); !sameCustomer(got, want) {
		t.Fatalf("whole record:\n got %+v\nwant %+v", got, want)
	}
	log := map[string][]byte{}
	if got := changes(t, p, log); !reflect.DeepEqual(got, []string{"ca", "oa", "wa"}) {
		t.Errorf("a whole record's first commit wrote %q, want every part", got)
	}
	p.custCache.clear(p.freeRecord)
	if got := customer(t, p, "a"); !sameCustomer(got, want) {
		t.Fatalf("rewritten as parts:\n got %+v\nwant %+v", got, want)
	}
	p.Abort()

	// Changelogs: whole records of each release (the goldens), then the
	// same customer as parts, restored in order into a fresh store.
	goldens := map[string]*schemas.Customer{
		"customer_v1.hex": nil, "customer_v2.hex": withoutLateEvents(fullCustomer()), newestCustomerHex: fullCustomer(),
	}
	for name, gw := range goldens {
		s2 := openStore(t, vfs.NewMem())
		p2 := part(t, s2, 3)
		must(t, p2.ApplyChangelog([]byte("cg"), readHex(t, name, false), 0))
		must(t, p2.FlushRestore())
		got := customer(t, p2, "g")
		if gw != nil {
			gw.ID = "g"
			if !sameCustomer(got, gw) {
				t.Errorf("%s restored:\n got %+v\nwant %+v", name, got, gw)
			}
		} else if got.Events == 0 {
			t.Errorf("%s restored as an empty record", name)
		}
		p2.Abort()
		off := int64(1)
		for k, v := range log {
			must(t, p2.ApplyChangelog([]byte(k), v, off))
			off++
		}
		must(t, p2.FlushRestore())
		if got := customer(t, p2, "a"); !sameCustomer(got, want) {
			t.Errorf("parts restored after %s:\n got %+v\nwant %+v", name, got, want)
		}
		p2.Abort()
		closeStore(t, s2)
	}
}

// TestEraseLeavesNoLiveKey (GDPR): after an erase, the changelog as
// compaction leaves it (the last record of each key) holds no live key of
// the customer, whatever parts it had, and a store restored from it has
// no key with the customer's ID. An erase followed by a new record in the
// same batch deletes the parts the new record does not have.
func TestEraseLeavesNoLiveKey(t *testing.T) {
	s := openWriteBack(t, vfs.NewMem(), 4, 0)
	defer closeStore(t, s)
	p := part(t, s, 0)
	log := map[string][]byte{}
	for _, id := range []schemas.CustomerID{"gone", "again"} {
		c := mixedRuns(fullCustomer())
		c.ID = id
		*customer(t, p, id) = *c
	}
	must(t, p.Schedule(schemas.Timer{Customer: "gone", ID: "t", Due: time.UnixMilli(10)}))
	changes(t, p, log)
	customer(t, p, "gone").Events++
	changes(t, p, log)

	must(t, p.Erase("gone"))
	must(t, p.Erase("again"))
	customer(t, p, "again").Events = 1 // a new record, hot part only
	changes(t, p, log)

	live := func(id string) []string {
		var keys []string
		for k, v := range log {
			if v != nil && strings.Contains(k, id) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		return keys
	}
	if got := live("gone"); len(got) != 0 {
		t.Errorf("live changelog keys of an erased customer: %q", got)
	}
	if got := live("again"); !reflect.DeepEqual(got, []string{"cagain"}) {
		t.Errorf("live changelog keys of a customer erased and started again: %q", got)
	}

	// Restored from the compacted changelog (in any order: one record
	// per key), a store keeps nothing of the erased customer.
	s2, err := Open(testConfig(vfs.NewMem()), zap.NewNop())
	must(t, err)
	defer closeStore(t, s2)
	p2 := part(t, s2, 0)
	off := int64(0)
	for k, v := range log {
		must(t, p2.ApplyChangelog([]byte(k), v, off))
		off++
	}
	must(t, p2.FlushRestore())
	for _, st := range []*Store{s, s2} {
		must(t, st.ScanPartition(0, func(k, v []byte) error {
			if bytes.Contains(k, []byte("gone")) {
				t.Errorf("key %q of the erased customer is stored", k)
			}
			return nil
		}))
	}
	if got := customer(t, p2, "again"); got.Events != 1 || len(got.Runs) != 0 || len(got.Marks) != 0 || len(got.Decisions) != 0 {
		t.Errorf("restored new record = %+v", got)
	}
}
