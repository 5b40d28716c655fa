package state

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap/zaptest"

	"github.com/triggerd/triggerd/schemas"
)

// orderMarks returns n once-only marks of one rule, one per order, as a
// busy customer has: together past minProgressBytes from n = 12 or so.
func orderMarks(n int, at time.Time) []schemas.Mark {
	var ms []schemas.Mark
	for i := range n {
		ms = append(ms, schemas.Mark{Rule: "review_request", Key: fmt.Sprintf("order-%06d", i), At: at.Add(time.Duration(i) * time.Hour)})
	}
	return ms
}

func TestProgressRoundTrip(t *testing.T) {
	want := fullCustomer()
	prog := appendProgress(nil, want)
	hot := appendCustomerHot(nil, want, true)
	if len(prog) == 0 || prog[0] != progressV1 {
		t.Fatalf("progress record %x", prog)
	}
	got := &schemas.Customer{ID: want.ID}
	var nm names
	progress, err := decodeCustomerWith(hot, got, &nm)
	must(t, err)
	if !progress || len(got.Runs) != 1 || !got.Runs[0].Watch || len(got.Marks) != 0 {
		t.Fatalf("customer record: progress %v, runs %+v, marks %d: want the flag, the silence watch and no marks", progress, got.Runs, len(got.Marks))
	}
	must(t, decodeProgress(prog, got, &nm))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if inline := appendCustomer(nil, want); len(hot) >= len(inline) {
		t.Errorf("the customer record without runs and marks is %d bytes, with them %d", len(hot), len(inline))
	}

	// What changes at every event does not change the progress record's
	// bytes: a batch compares them to skip the write.
	moved := fullCustomer()
	moved.LastSeen = moved.LastSeen.Add(time.Hour)
	moved.Events++
	if !bytes.Equal(appendProgress(nil, moved), prog) {
		t.Error("the progress record changed with LastSeen")
	}
	moved.Marks = moved.Marks[:len(moved.Marks)-1]
	if bytes.Equal(appendProgress(nil, moved), prog) {
		t.Error("the progress record did not change with a mark")
	}

	// No runs and no marks: no record, and no flag.
	none := &schemas.Customer{ID: "x", Events: 1}
	if b := appendProgress(nil, none); len(b) != 0 {
		t.Errorf("progress record of a customer without runs or marks: %x", b)
	}
	if progress, err := decodeCustomerWith(appendCustomerHot(nil, none, false), &schemas.Customer{}, &nm); err != nil || progress {
		t.Errorf("customer record without progress: flag %v, err %v", progress, err)
	}
}

func TestProgressRejects(t *testing.T) {
	good := appendProgress(nil, fullCustomer())
	for name, b := range map[string][]byte{
		"empty":          nil,
		"future version": append([]byte{progressV1 + 1}, good[1:]...),
		"truncated":      good[:len(good)-3],
	} {
		var c schemas.Customer
		var nm names
		if err := decodeProgress(b, &c, &nm); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// changes returns the batch's changes as "key=value-or-nil" for keys of the
// given kind, and the customer record's value.
func changesOf(t *testing.T, p *Partition, kind byte) (keys []string, values map[string][]byte) {
	t.Helper()
	values = map[string][]byte{}
	must(t, p.Changes(func(k, v []byte) error {
		if k[0] != kind {
			return nil
		}
		state := "set"
		if v == nil {
			state = "deleted"
		}
		keys = append(keys, string(k[1:])+" "+state)
		values[string(k[1:])] = bytes.Clone(v)
		return nil
	}))
	return keys, values
}

func TestProgressWrittenOnlyWhenChanged(t *testing.T) {
	for name, cached := range map[string]int{"cache": 0, "no cache": -1} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(vfs.NewMem())
			cfg.CachedCustomers = cached
			s, err := Open(cfg, zaptest.NewLogger(t))
			must(t, err)
			defer closeStore(t, s)
			p := part(t, s, 0)
			at := time.UnixMilli(1_700_000_000_000).UTC()
			run := schemas.Run{Rule: "review", Key: "o1", Occurrence: "o1", Stage: 1, StartedAt: at, Due: []time.Time{at.Add(time.Hour)}}
			marks := orderMarks(20, at)
			watch := schemas.Run{Rule: "inactive", Stage: 1, StartedAt: at, Due: []time.Time{at.Add(30 * 24 * time.Hour)}, Watch: true}

			c := customer(t, p, "a")
			c.LastSeen, c.Runs, c.Marks = at, []schemas.Run{run, watch}, marks
			if got, _ := changesOf(t, p, kindProgress); strings.Join(got, ",") != "a set" {
				t.Fatalf("first batch: progress changes %q", got)
			}
			must(t, p.Commit(-1))

			// LastSeen, a counter and the silence watch change: the
			// progress record is not written, and the customer record
			// still names it and holds the watch.
			c = customer(t, p, "a")
			if len(c.Runs) != 2 || len(c.Marks) != 20 {
				t.Fatalf("second batch read runs %+v, marks %+v", c.Runs, c.Marks)
			}
			c.LastSeen, c.Events = at.Add(time.Minute), 2
			for i := range c.Runs {
				if c.Runs[i].Watch {
					c.Runs[i].StartedAt = at.Add(time.Minute)
				}
			}
			got, _ := changesOf(t, p, kindProgress)
			if len(got) != 0 {
				t.Fatalf("unchanged progress written: %q", got)
			}
			_, custs := changesOf(t, p, kindCustomer)
			var dec schemas.Customer
			var nm names
			progress, err := decodeCustomerWith(custs["a"], &dec, &nm)
			must(t, err)
			if !progress || len(dec.Runs) != 1 || !dec.Runs[0].StartedAt.Equal(at.Add(time.Minute)) || dec.Events != 2 {
				t.Fatalf("customer record: progress %v, %+v", progress, dec)
			}
			must(t, p.Commit(-1))

			// The committed state, through a batch and through the admin view.
			c = customer(t, p, "a")
			if len(c.Runs) != 2 || len(c.Marks) != 20 || c.Events != 2 {
				t.Fatalf("third batch read %+v", c)
			}
			p.Abort()
			cs, found, err := s.ReadCustomer(0, "a")
			must(t, err)
			if !found || len(cs.Customer.Runs) != 2 || len(cs.Customer.Marks) != 20 || cs.Customer.Events != 2 {
				t.Fatalf("ReadCustomer: %v %+v", found, cs.Customer)
			}

			// A new mark is written; runs and marks too small for a
			// record of their own go back into the customer record.
			c = customer(t, p, "a")
			c.Marks = append(c.Marks, schemas.Mark{Rule: "vip", At: at})
			if got, _ := changesOf(t, p, kindProgress); strings.Join(got, ",") != "a set" {
				t.Fatalf("new mark: progress changes %q", got)
			}
			must(t, p.Commit(-1))
			c = customer(t, p, "a")
			c.Runs, c.Marks = append(c.Runs[:0], watch), c.Marks[:1]
			got, _ = changesOf(t, p, kindProgress)
			if strings.Join(got, ",") != "a deleted" {
				t.Fatalf("small progress: changes %q", got)
			}
			_, custs = changesOf(t, p, kindCustomer)
			if progress, err := decodeCustomerWith(custs["a"], &dec, &nm); err != nil || progress || len(dec.Marks) != 1 {
				t.Fatalf("customer record with a small progress: flag %v, err %v, marks %+v", progress, err, dec.Marks)
			}
			must(t, p.Commit(-1))
			c = customer(t, p, "a")
			if len(c.Marks) != 1 {
				t.Fatalf("inline mark lost: %+v", c.Marks)
			}
			c.Marks = c.Marks[:0]
			if got, _ := changesOf(t, p, kindProgress); len(got) != 0 {
				t.Fatalf("no progress record, none written: %q", got)
			}
			must(t, p.Commit(-1))
			if _, _, err := s.db.Get(appendProgressKey(nil, 0, "a")); err != pebble.ErrNotFound {
				t.Fatalf("progress record after its deletion: %v", err)
			}
			c = customer(t, p, "a")
			if len(c.Runs) != 1 || !c.Runs[0].Watch || len(c.Marks) != 0 || c.Events != 2 {
				t.Fatalf("after the deletion: %+v", c)
			}
			if got, _ := changesOf(t, p, kindProgress); len(got) != 0 {
				t.Fatalf("deleted again: %q", got)
			}
			must(t, p.Commit(-1))
		})
	}
}

// A store of layout 2 holds customer records with their runs and marks
// inline: they are read, and moved to a progress record at the next write.
func TestProgressMovesInlineRecords(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	want := fullCustomer()
	want.Marks = append(want.Marks, orderMarks(20, want.LastSeen)...)
	must(t, s.db.Set(appendCustomerKey(nil, 0, want.ID), appendCustomer(nil, want), pebble.Sync))
	p := part(t, s, 0)
	c := customer(t, p, want.ID)
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("inline record read as %+v", c)
	}
	got, values := changesOf(t, p, kindProgress)
	if strings.Join(got, ",") != string(want.ID)+" set" || !bytes.Equal(values[string(want.ID)], appendProgress(nil, want)) {
		t.Fatalf("progress changes %q", got)
	}
	must(t, p.Commit(-1))
	v, closer, err := s.db.Get(appendCustomerKey(nil, 0, want.ID))
	must(t, err)
	if !bytes.Equal(v, appendCustomerHot(nil, want, true)) {
		t.Errorf("customer record not rewritten without its runs and marks")
	}
	closer.Close()
	cs, _, err := s.ReadCustomer(0, want.ID)
	must(t, err)
	if !reflect.DeepEqual(&cs.Customer, want) {
		t.Fatalf("ReadCustomer: %+v", cs.Customer)
	}
}

// A customer record that names a progress record that is not there is an
// error, not a customer without runs (whose timers would fire into nothing).
func TestProgressMissing(t *testing.T) {
	s := openStore(t, vfs.NewMem())
	defer closeStore(t, s)
	c := fullCustomer()
	must(t, s.db.Set(appendCustomerKey(nil, 0, c.ID), appendCustomerHot(nil, c, true), pebble.Sync))
	p := part(t, s, 0)
	if _, err := p.Customer(c.ID); err == nil || !strings.Contains(err.Error(), "progress record, which is missing") {
		t.Fatalf("Customer: %v", err)
	}
	if _, _, err := s.ReadCustomer(0, c.ID); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("ReadCustomer: %v", err)
	}
}

// An erase deletes the progress record with the customer record, also
// when the batch does not know whether there is one.
func TestProgressErased(t *testing.T) {
	cfg := testConfig(vfs.NewMem())
	cfg.CachedCustomers = -1
	s, err := Open(cfg, zaptest.NewLogger(t))
	must(t, err)
	defer closeStore(t, s)
	p := part(t, s, 0)
	for _, id := range []schemas.CustomerID{"a", "b"} {
		c := customer(t, p, id)
		c.Events, c.Marks = 1, orderMarks(20, time.UnixMilli(1000).UTC())
	}
	must(t, p.Commit(-1))
	must(t, p.Erase("a"))
	customer(t, p, "b").Events++
	must(t, p.Erase("b")) // read first: the batch knows b has one
	if got, _ := changesOf(t, p, kindProgress); strings.Join(got, ",") != "a deleted,b deleted" {
		t.Fatalf("erase: progress changes %q", got)
	}
	must(t, p.Commit(-1))
	must(t, s.ScanPartition(0, func(k, _ []byte) error {
		if k[partLen] == kindCustomer || k[partLen] == kindProgress {
			t.Errorf("left after the erase: %q", k)
		}
		return nil
	}))
}

// FuzzDecodeProgress checks that decodeProgress never panics on any input,
// and that what it accepts is canonical after one re-encoding, as
// FuzzDecodeCustomer does for customer records: a batch compares the bytes
// of progress records to decide whether to write them.
func FuzzDecodeProgress(f *testing.F) {
	f.Add(appendProgress(nil, fullCustomer()))
	f.Add(appendProgress(nil, &schemas.Customer{Marks: []schemas.Mark{{Rule: "r"}}}))
	f.Add([]byte{progressV1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c1 schemas.Customer
		var nm names
		if err := decodeProgress(b, &c1, &nm); err != nil {
			return
		}
		e1 := appendProgress(nil, &c1)
		if len(e1) == 0 {
			return // no runs and no marks: no record
		}
		var c2 schemas.Customer
		if err := decodeProgress(e1, &c2, &nm); err != nil {
			t.Fatalf("re-encoding %x does not decode: %v", e1, err)
		}
		if e2 := appendProgress(nil, &c2); !bytes.Equal(e1, e2) {
			t.Fatalf("not stable:\n%x\n%x", e1, e2)
		}
	})
}
