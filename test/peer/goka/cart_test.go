package main

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// arrival is one cart change as the group receives it, with the
// partition's watermark once it has been observed.
type arrival struct {
	e cartEv
	w int64
}

// replay runs one customer's arrivals through queue and settle, then
// settles at the final watermark (a change at or after it stays ahead), and returns the fired check IDs with
// their due times.
func replay(arrivals []arrival, final, stage1 int64) map[string]int64 {
	fired := map[string]int64{}
	fire := func(c *customer) {
		if c.Items > 0 {
			fired[c.Occurrence] = c.Due
		}
		c.Occurrence, c.Due = "", 0
	}
	c := &customer{}
	var changes []cartEv
	for _, a := range arrivals {
		changes = queue(changes, a.e)
		changes, _ = c.settle(changes, a.w, stage1, fire)
	}
	c.settle(changes, final, stage1, fire)
	return fired
}

// TestSettle checks the event-time cart on the checker's cases
// (test/bench TestAbandonedCarts), with changes arriving out of event-time
// order behind a watermark.
func TestSettle(t *testing.T) {
	const h = 3_600_000
	add := func(at int64, id string, q int32, w int64) arrival {
		return arrival{cartEv{At: at, ID: id, Kind: 'a', Qty: q, Price: 100}, w}
	}
	rm := func(at int64, id string, w int64) arrival { return arrival{cartEv{At: at, ID: id, Kind: 'r'}, w} }
	buy := func(at int64, w int64) arrival { return arrival{cartEv{At: at, ID: "p", Kind: 'p'}, w} }
	for _, tc := range []struct {
		name     string
		arrivals []arrival
		final    int64
		want     map[string]int64
	}{
		{"left", []arrival{add(0, "a1", 1, 0)}, 2 * h, map[string]int64{"a1": h}},
		{"changed", []arrival{add(0, "a1", 1, 0), add(10, "a2", 2, 0)}, 2 * h, map[string]int64{"a2": h + 10}},
		{"bought", []arrival{add(0, "a1", 1, 0), buy(h-1, 0)}, 2 * h, map[string]int64{}},
		// The purchase's input ran ahead: the add before it still fires.
		{"late-buy", []arrival{buy(h+1, 0), add(0, "a1", 1, 0)}, 2 * h, map[string]int64{"a1": h}},
		// The purchase's input lagged: it arrives after the add's due
		// time has been seen on the add's input, but before the
		// watermark passed it.
		{"lagging-buy", []arrival{add(0, "a1", 1, 0), add(h+5, "x", 0, 10), buy(h-1, h-1)}, 3 * h, map[string]int64{}},
		{"tie", []arrival{add(0, "a1", 1, 0), buy(h, 0)}, 2 * h, map[string]int64{}},
		{"emptied", []arrival{add(0, "a1", 1, 0), rm(5, "r1", 0)}, 2 * h, map[string]int64{}},
		{"left-one", []arrival{add(0, "a1", 2, 0), rm(5, "r1", 0)}, 2 * h, map[string]int64{"r1": h + 5}},
		{"no-items", []arrival{add(0, "a1", 0, 0)}, 2 * h, map[string]int64{}},
		// Due at h: the watermark at h does not decide it (a change at h
		// may still come), one past it does.
		{"not-yet", []arrival{add(0, "a1", 1, 0)}, h, map[string]int64{}},
		{"just", []arrival{add(0, "a1", 1, 0)}, h + 1, map[string]int64{"a1": h}},
		// Decided as soon as the watermark allows: a refill after the
		// due time does not replace it.
		{"refilled", []arrival{add(0, "a1", 1, 0), add(2*h, "a3", 1, h+1)}, 2 * h, map[string]int64{"a1": h}},
	} {
		if got := replay(tc.arrivals, tc.final, h); !maps.Equal(got, tc.want) {
			t.Errorf("%s: fired %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestQueue checks that changes are kept in event-time order, ties in
// arrival order.
func TestQueue(t *testing.T) {
	var changes []cartEv
	for _, e := range []cartEv{{At: 5, ID: "a"}, {At: 9, ID: "b"}, {At: 1, ID: "c"}, {At: 5, ID: "d"}, {At: 12, ID: "e"}} {
		changes = queue(changes, e)
	}
	var ids []string
	for _, e := range changes {
		ids = append(ids, e.ID)
	}
	if want := []string{"c", "a", "d", "b", "e"}; !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
}

// TestWatermark checks the partition clock: the lowest latest event time
// of the inputs with records left, an input read to its end not holding it
// back, and never going back.
func TestWatermark(t *testing.T) {
	k := newClocks(1, "click", "tx")
	if w := k.parts[0].advance(); w != 0 {
		t.Fatalf("no records yet: watermark %d, want 0", w)
	}
	k.parts[0].hwm = []int64{10, 10}
	observe := func(topic string, offset, ms int64) int64 {
		w, _ := k.observe(0, topic, offset, time.UnixMilli(ms))
		return w
	}
	if w := observe("click", 0, 100); w != 0 {
		t.Errorf("tx not read yet: watermark %d, want 0", w)
	}
	if w := observe("tx", 0, 50); w != 50 {
		t.Errorf("watermark %d, want 50 (tx's latest)", w)
	}
	if w := observe("tx", 9, 80); w != 100 {
		t.Errorf("tx read to its end: watermark %d, want 100 (click's latest)", w)
	}
	k.parts[0].hwm[1] = 20 // tx has more again
	if w := k.watermark(0); w != 100 {
		t.Errorf("watermark went back to %d, want 100", w)
	}
	k.parts[0].hwm[1] = 10 // and then not
	if w := observe("click", 9, 300); w != 300 {
		t.Errorf("every input at its end: watermark %d, want 300 (the latest)", w)
	}
}
