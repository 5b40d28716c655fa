package main

import (
	"time"

	"github.com/lovoo/goka"
)

// customer is the group table's value: the counters, and the cart and its
// pending check as of the partition's watermark. The customer's cart
// changes that came ahead of the watermark wait in the partition's ahead
// buffer until it passes them.
type customer struct {
	Events     int64     `json:"events"`
	Purchases  int64     `json:"purchases"`
	SpendMinor int64     `json:"spend_minor"`
	LastSeen   time.Time `json:"last_seen"`
	Items      int32     `json:"items,omitempty"`
	Value      int64     `json:"value,omitempty"`
	Occurrence string    `json:"occ,omitempty"` // the cart change the pending check is for
	Due        int64     `json:"due,omitempty"` // its due time, ms; 0: no check pending
}

// ahead holds, per partition and customer, the cart changes that came
// ahead of the partition's watermark, in event-time order: an input read
// behind the others may still bring an earlier change. It is in memory,
// beside the table, not in it: a customer with many changes while an
// input lags would otherwise write them all to the table (and its topic)
// at every event, which made the peer's cost grow with the lag and the
// backlog (87.6 µs CPU/event at bench-quick size instead of 16). Like the
// delayer's heap it is not durable (a crash loses it); the comparison
// favours goka there. Each partition's map is used by the partition's goka
// goroutine only.
type ahead []map[string][]cartEv

func newAhead(partitions int) ahead {
	a := make(ahead, partitions)
	for p := range a {
		a[p] = map[string][]cartEv{}
	}
	return a
}

// cartEv is one cart change of a customer.
type cartEv struct {
	At    int64  `json:"at"` // event time, ms
	ID    string `json:"id"`
	Kind  byte   `json:"k"` // 'a' add_to_cart, 'r' remove_from_cart, 'p' purchase
	Qty   int32  `json:"q,omitempty"`
	Price int64  `json:"pr,omitempty"`
}

// check wakes a customer up at a due time: the delayer hands it back to
// the group once the partition's watermark has passed Due.
type check struct {
	Occurrence string `json:"occurrence"`
	Due        int64  `json:"due"` // ms
}

type trigger struct {
	ID       string    `json:"id"`
	Rule     string    `json:"rule"`
	Customer string    `json:"customer"`
	Stage    int32     `json:"stage"`
	DueAt    time.Time `json:"due_at"`
	Items    int32     `json:"items"`
	Value    int64     `json:"value"`
}

// cartKind is the cart change an event type is, or 0.
func cartKind(typ string) byte {
	switch typ {
	case "add_to_cart":
		return 'a'
	case "remove_from_cart":
		return 'r'
	case "purchase":
		return 'p'
	}
	return 0
}

// queue puts a cart change among the changes ahead of the watermark, after
// every change at the same or an earlier time (ties keep their arrival
// order). Each input is in event-time order, so a change mostly goes last.
func queue(changes []cartEv, e cartEv) []cartEv {
	i := len(changes)
	for i > 0 && changes[i-1].At > e.At {
		i--
	}
	changes = append(changes, cartEv{})
	copy(changes[i+1:], changes[i:])
	changes[i] = e
	return changes
}

// settle brings the cart up to the watermark w: the changes before w are
// final (no input can still bring an earlier one), so they are applied in
// event-time order, a pending check firing when its due time passes
// before the next change; then the pending check fires if w has passed
// its due time (every change by then has come). A change at the due time
// itself replaces the check. It returns the changes still ahead of w and
// whether c changed.
func (c *customer) settle(changes []cartEv, w, stage1 int64, fire func(c *customer)) ([]cartEv, bool) {
	n := 0
	for n < len(changes) && changes[n].At < w {
		e := changes[n]
		if c.Due > 0 && c.Due < e.At {
			fire(c)
		}
		c.apply(e, stage1)
		n++
	}
	changed := n > 0
	if c.Due > 0 && c.Due < w {
		fire(c)
		changed = true
	}
	return changes[n:], changed
}

// apply is a cart change's effect on the cart and its pending check: an
// add, or a removal that leaves items, replaces the check with one due
// stage1 later; a purchase or an emptied cart removes it.
func (c *customer) apply(e cartEv, stage1 int64) {
	switch e.Kind {
	case 'a':
		c.Items += e.Qty
		c.Value += int64(e.Qty) * e.Price
		c.Occurrence, c.Due = e.ID, e.At+stage1
	case 'r':
		if c.Items = max(c.Items-1, 0); c.Items == 0 {
			c.Value = 0
		}
		c.Occurrence, c.Due = e.ID, 0
		if c.Items > 0 {
			c.Due = e.At + stage1
		}
	case 'p':
		c.Items, c.Value, c.Occurrence, c.Due = 0, 0, "", 0
	}
}

// fireFunc returns settle's fire for one callback: a cart abandoned with
// items becomes a trigger; the check is done either way.
func fireFunc(ctx goka.Context, out goka.Stream, n *counts) func(c *customer) {
	return func(c *customer) {
		if c.Items > 0 {
			ctx.Emit(out, ctx.Key(), &trigger{ID: ctx.Key() + "/cart_abandoned/1/" + c.Occurrence, Rule: "cart_abandoned",
				Customer: ctx.Key(), Stage: 1, DueAt: time.UnixMilli(c.Due).UTC(), Items: c.Items, Value: c.Value})
			n.triggers.Add(1)
		}
		c.Occurrence, c.Due = "", 0
	}
}

// onEvent counts the event, queues a cart change and asks the delayer to
// wake the customer at its due time (whether the change arms a check is
// known only once the changes before it are), then settles the cart up to
// the partition's watermark.
func onEvent(ctx goka.Context, ev *event, stage1 time.Duration, k *clocks, a ahead, delay, out goka.Stream, n *counts) {
	c, _ := ctx.Value().(*customer)
	if c == nil {
		c = &customer{}
	}
	p := ctx.Partition()
	w, lag := k.observe(p, string(ctx.Topic()), ctx.Offset(), ev.Time)
	n.events.Add(1)
	n.lagMs.Add(lag)
	c.Events++
	if ev.Time.After(c.LastSeen) {
		c.LastSeen = ev.Time
	}
	kind := cartKind(ev.Type)
	if kind == 'p' {
		c.Purchases++
		c.SpendMinor += ev.Amount
	}
	changes := a[p][ctx.Key()]
	if kind != 0 {
		e := cartEv{At: ev.Time.UnixMilli(), ID: ev.ID, Kind: kind, Qty: ev.Quantity, Price: ev.Price}
		changes = queue(changes, e)
		if kind != 'p' {
			ctx.Emit(delay, ctx.Key(), &check{Occurrence: ev.ID, Due: e.At + stage1.Milliseconds()})
			n.wakeups.Add(1)
		}
	}
	changes, _ = c.settle(changes, w, stage1.Milliseconds(), fireFunc(ctx, out, n))
	a.put(p, ctx.Key(), changes)
	n.ahead.Add(int64(len(changes)))
	ctx.SetValue(c)
}

// onCheck settles the customer's cart: the delayer sent the check once the
// watermark had passed its due time, so whatever it was for is decided now.
func onCheck(ctx goka.Context, stage1 time.Duration, k *clocks, a ahead, out goka.Stream, n *counts) {
	n.checks.Add(1)
	c, _ := ctx.Value().(*customer)
	if c == nil {
		return
	}
	p := ctx.Partition()
	changes, changed := c.settle(a[p][ctx.Key()], k.watermark(p), stage1.Milliseconds(), fireFunc(ctx, out, n))
	a.put(p, ctx.Key(), changes)
	if changed {
		ctx.SetValue(c)
	}
}

// put keeps a customer's changes still ahead, or forgets the customer.
func (a ahead) put(p int32, key string, changes []cartEv) {
	if len(changes) == 0 {
		delete(a[p], key)
		return
	}
	a[p][key] = changes
}
