package state

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/triggerd/triggerd/schemas"
)

func tm(c schemas.CustomerID, id string, dueMS int64) schemas.Timer {
	return schemas.Timer{Customer: c, ID: id, Due: time.UnixMilli(dueMS).UTC(), Rule: "r", Stage: 1,
		Occurrence: "o-" + id, CausedBy: []string{"e1"}}
}

func refs(ts []schemas.Timer) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "%s/%s@%d ", t.Customer, t.ID, t.Due.UnixMilli())
	}
	return strings.TrimSpace(b.String())
}

func TestTimers(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs)
	p := part(t, s, 7)

	// Schedule within a batch, read your writes.
	must(t, p.Schedule(tm("b", "x", 300)))
	must(t, p.Schedule(tm("a", "y", 300)))  // same due: customer a first
	must(t, p.Schedule(tm("a", "x", 300)))  // same due and customer: ID x first
	must(t, p.Schedule(tm("c", "x", -100))) // before 1970
	must(t, p.Schedule(tm("d", "x", 1000)))
	if n := p.PendingTimers(); n != 5 {
		t.Fatalf("pending = %d, want 5", n)
	}
	got, ok, err := p.Timer("a", "y")
	must(t, err)
	if want := tm("a", "y", 300); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Timer(a, y) = %+v, %v; want %+v", got, ok, want)
	}
	if next, ok, _ := p.NextDue(); !ok || next.UnixMilli() != -100 {
		t.Fatalf("NextDue = %v, %v", next, ok)
	}
	must(t, p.Commit(-1))

	// Move: d/x from 1000 to 200; count unchanged; old index entry gone.
	must(t, p.Schedule(tm("d", "x", 200)))
	if n := p.PendingTimers(); n != 5 {
		t.Fatalf("pending after move = %d, want 5", n)
	}
	// Move within the batch again, and cancel one; cancel of an absent timer
	// is a no-op.
	must(t, p.Schedule(tm("b", "x", 250)))
	must(t, p.Schedule(tm("b", "x", 400)))
	must(t, p.Cancel("c", "x"))
	must(t, p.Cancel("c", "x"))
	must(t, p.Cancel("nobody", "x"))
	if n := p.PendingTimers(); n != 4 {
		t.Fatalf("pending after cancel = %d, want 4", n)
	}
	if _, ok, _ := p.Timer("c", "x"); ok {
		t.Fatal("cancelled timer still there")
	}

	// PopDue in order, with a limit, seeing the batch.
	due, err := p.PopDue(time.UnixMilli(300), 2, nil)
	must(t, err)
	if got, want := refs(due), "d/x@200 a/x@300"; got != want {
		t.Fatalf("PopDue limit 2 = %q, want %q", got, want)
	}
	due, err = p.PopDue(time.UnixMilli(300), 0, due[:0])
	must(t, err)
	if got, want := refs(due), "a/y@300"; got != want {
		t.Fatalf("PopDue = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(due[0], tm("a", "y", 300)) {
		t.Fatalf("popped timer = %+v", due[0])
	}
	if n := p.PendingTimers(); n != 1 {
		t.Fatalf("pending after pop = %d, want 1", n)
	}
	// A timer scheduled in the past after a pop is still found.
	must(t, p.Schedule(tm("e", "x", 50)))
	if next, ok, _ := p.NextDue(); !ok || next.UnixMilli() != 50 {
		t.Fatalf("NextDue = %v, %v; want 50", next, ok)
	}
	must(t, p.Commit(-1))
	closeStore(t, s)

	// Reopen: b/x@400 and e/x@50 remain.
	s = openStore(t, fs)
	defer closeStore(t, s)
	p = part(t, s, 7)
	if n := p.PendingTimers(); n != 2 {
		t.Fatalf("pending after reopen = %d, want 2", n)
	}
	if got, ok, _ := p.Timer("b", "x"); !ok || got.Due.UnixMilli() != 400 {
		t.Fatalf("Timer(b, x) after reopen = %+v, %v", got, ok)
	}
	due, err = p.PopDue(time.UnixMilli(1<<40), 0, nil)
	must(t, err)
	if got, want := refs(due), "e/x@50 b/x@400"; got != want {
		t.Fatalf("PopDue after reopen = %q, want %q", got, want)
	}
	if _, ok, _ := p.NextDue(); ok {
		t.Fatal("NextDue after popping all")
	}
	must(t, p.Commit(-1))
	if n := p.PendingTimers(); n != 0 {
		t.Fatalf("pending = %d", n)
	}
}

// TestTimersModel runs random schedules, cancels and pops over several
// batches (some aborted) against a map, checking PopDue's order and the count.
func TestTimersModel(t *testing.T) {
	// Small: tiny timer filters, rebuilt every few batches, and no timer
	// cache to answer for them.
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("small_filter=%v", small), func(t *testing.T) {
			cfg := testConfig(vfs.NewMem())
			if small {
				smallTimerFilter(t)
				cfg.CachedCustomers = -1
			}
			timersModel(t, cfg)
		})
	}
}

// smallTimerFilter makes timer filters tiny for the test, so that they
// fill and are rebuilt every few batches.
func smallTimerFilter(t *testing.T) {
	old := timerFilterMin
	timerFilterMin = 2
	t.Cleanup(func() { timerFilterMin = old })
}

func timersModel(t *testing.T, cfg Config) {
	s, err := Open(cfg, nil)
	must(t, err)
	defer closeStore(t, s)
	p := part(t, s, 1)
	type ref struct {
		c  schemas.CustomerID
		id string
	}
	committed := map[ref]int64{}
	var seed uint64 = 1
	rnd := func(n int) int { // xorshift: deterministic without math/rand
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	now := int64(0)
	for batch := range 200 {
		model := make(map[ref]int64, len(committed))
		for k, v := range committed {
			model[k] = v
		}
		for range 20 {
			r := ref{schemas.CustomerID(fmt.Sprintf("c%d", rnd(30))), fmt.Sprintf("t%d", rnd(3))}
			switch rnd(3) {
			case 0, 1:
				due := now + int64(rnd(200)) - 20
				must(t, p.Schedule(tm(r.c, r.id, due)))
				model[r] = due
			case 2:
				must(t, p.Cancel(r.c, r.id))
				delete(model, r)
			}
		}
		now += int64(rnd(60))
		limit := rnd(8)
		due, err := p.PopDue(time.UnixMilli(now), limit, nil)
		must(t, err)
		var want []ref
		for k, v := range model {
			if v <= now {
				want = append(want, k)
			}
		}
		slices.SortFunc(want, func(a, b ref) int {
			if x, y := model[a], model[b]; x != y {
				return int(x - y)
			}
			if a.c != b.c {
				return strings.Compare(string(a.c), string(b.c))
			}
			return strings.Compare(a.id, b.id)
		})
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		if len(due) != len(want) {
			t.Fatalf("batch %d: popped %d, want %d", batch, len(due), len(want))
		}
		for i, d := range due {
			if w := want[i]; d.Customer != w.c || d.ID != w.id || d.Due.UnixMilli() != model[w] {
				t.Fatalf("batch %d: pop %d = %s/%s@%d, want %v@%d", batch, i, d.Customer, d.ID, d.Due.UnixMilli(), w, model[w])
			}
			delete(model, want[i])
		}
		if p.PendingTimers() != int64(len(model)) {
			t.Fatalf("batch %d: pending = %d, want %d", batch, p.PendingTimers(), len(model))
		}
		if next, ok, err := p.NextDue(); err != nil || ok != (len(model) > 0) {
			t.Fatalf("batch %d: NextDue = %v %v %v", batch, next, ok, err)
		} else if ok {
			minDue := int64(1 << 62)
			for _, v := range model {
				minDue = min(minDue, v)
			}
			if next.UnixMilli() != minDue {
				t.Fatalf("batch %d: NextDue = %d, want %d", batch, next.UnixMilli(), minDue)
			}
		}
		for range 5 {
			r := ref{schemas.CustomerID(fmt.Sprintf("c%d", rnd(30))), fmt.Sprintf("t%d", rnd(3))}
			got, ok, err := p.Timer(r.c, r.id)
			must(t, err)
			want, wantOK := model[r]
			if ok != wantOK || (ok && (got.Due.UnixMilli() != want || got.Customer != r.c || got.ID != r.id)) {
				t.Fatalf("batch %d: Timer(%v) = %+v %v, want due %d %v", batch, r, got, ok, want, wantOK)
			}
		}
		if rnd(4) == 0 {
			p.Abort()
			continue
		}
		must(t, p.Commit(-1))
		committed = model
	}
}
