package main

import (
	"time"

	"github.com/lovoo/goka"
)

// customer is the group table's value: the counters, the cart as of the
// partition's watermark, the cart's pending check, and the cart changes
// that came ahead of the watermark (Ahead, in event-time order), which an
// input read behind the others may still precede.
type customer struct {
	Events     int64     `json:"events"`
	Purchases  int64     `json:"purchases"`
	SpendMinor int64     `json:"spend_minor"`
	LastSeen   time.Time `json:"last_seen"`
	Items      int32     `json:"items,omitempty"`
	Value      int64     `json:"value,omitempty"`
	Occurrence string    `json:"occ,omitempty"` // the cart change the pending check is for
	Due        int64     `json:"due,omitempty"` // its due time, ms; 0: no check pending
	Ahead      []cartEv  `json:"ahead,omitempty"`
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
// order).
func (c *customer) queue(e cartEv) {
	i := len(c.Ahead)
	for i > 0 && c.Ahead[i-1].At > e.At {
		i--
	}
	c.Ahead = append(c.Ahead, cartEv{})
	copy(c.Ahead[i+1:], c.Ahead[i:])
	c.Ahead[i] = e
}

// settle brings the cart up to the watermark w: the changes before w are
// final (no input can still bring an earlier one), so they are applied in
// event-time order, a pending check firing when its due time passes
// before the next change; then the pending check fires if w has passed
// its due time (every change by then has come). A change at the due time
// itself replaces the check. It reports whether c changed.
func (c *customer) settle(w, stage1 int64, fire func(c *customer)) bool {
	n := 0
	for n < len(c.Ahead) && c.Ahead[n].At < w {
		e := c.Ahead[n]
		if c.Due > 0 && c.Due < e.At {
			fire(c)
		}
		c.apply(e, stage1)
		n++
	}
	changed := n > 0
	if changed {
		c.Ahead = append(c.Ahead[:0], c.Ahead[n:]...)
	}
	if c.Due > 0 && c.Due < w {
		fire(c)
		changed = true
	}
	return changed
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
func onEvent(ctx goka.Context, ev *event, stage1 time.Duration, k *clocks, delay, out goka.Stream, n *counts) {
	c, _ := ctx.Value().(*customer)
	if c == nil {
		c = &customer{}
	}
	w := k.observe(ctx.Partition(), string(ctx.Topic()), ctx.Offset(), ev.Time)
	n.events.Add(1)
	c.Events++
	if ev.Time.After(c.LastSeen) {
		c.LastSeen = ev.Time
	}
	kind := cartKind(ev.Type)
	if kind == 'p' {
		c.Purchases++
		c.SpendMinor += ev.Amount
	}
	if kind != 0 {
		e := cartEv{At: ev.Time.UnixMilli(), ID: ev.ID, Kind: kind, Qty: ev.Quantity, Price: ev.Price}
		c.queue(e)
		if kind != 'p' {
			ctx.Emit(delay, ctx.Key(), &check{Occurrence: ev.ID, Due: e.At + stage1.Milliseconds()})
			n.wakeups.Add(1)
		}
	}
	c.settle(w, stage1.Milliseconds(), fireFunc(ctx, out, n))
	n.ahead.Add(int64(len(c.Ahead)))
	ctx.SetValue(c)
}

// onCheck settles the customer's cart: the delayer sent the check once the
// watermark had passed its due time, so whatever it was for is decided now.
func onCheck(ctx goka.Context, stage1 time.Duration, k *clocks, out goka.Stream, n *counts) {
	n.checks.Add(1)
	c, _ := ctx.Value().(*customer)
	if c == nil {
		return
	}
	if c.settle(k.watermark(ctx.Partition()), stage1.Milliseconds(), fireFunc(ctx, out, n)) {
		ctx.SetValue(c)
	}
}
