package rules

import (
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// TestCartNeverInvented: a cart event the decoders would dead-letter, if
// it reaches the rules another way (a Go caller, an old record), changes
// neither the cart nor the reminders: no line for a missing product, no
// quantity of 1 for a missing or non-positive one.
func TestCartNeverInvented(t *testing.T) {
	s, err := CartOnly(time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, ev := range []schemas.Event{
		{Type: schemas.AddToCart, Quantity: 2},
		{Type: schemas.AddToCart, ProductID: "p1"},
		{Type: schemas.AddToCart, ProductID: "p1", Quantity: -3},
	} {
		c := &schemas.Customer{ID: "c1"}
		ev.Source, ev.ID, ev.Customer, ev.Time = schemas.SourceClickstream, "e1", c.ID, at
		var a Actions
		s.OnEvent(c, &ev, &a)
		if len(c.Cart.Items) != 0 || len(a.Schedule) != 0 {
			t.Errorf("%s product=%q quantity=%d: cart %+v, scheduled %+v; want neither", ev.Type, ev.ProductID, ev.Quantity, c.Cart.Items, a.Schedule)
		}
	}
	// A remove_from_cart with a negative quantity leaves the line alone.
	c := &schemas.Customer{ID: "c1", Cart: schemas.Cart{Items: []schemas.Item{{ProductID: "p1", Quantity: 2}}}}
	var a Actions
	s.OnEvent(c, &schemas.Event{Source: schemas.SourceClickstream, ID: "e2", Customer: c.ID, Type: schemas.RemoveFromCart,
		ProductID: "p1", Quantity: -1, Time: at}, &a)
	if len(c.Cart.Items) != 1 || c.Cart.Items[0].Quantity != 2 {
		t.Errorf("remove_from_cart quantity=-1 changed the cart to %+v", c.Cart.Items)
	}
}

// TestCartOnlyStages: the cart-only file has two stages, or one when stage2
// is not positive (the benchmark's peers' workload).
func TestCartOnlyStages(t *testing.T) {
	for _, tc := range []struct {
		stage2 time.Duration
		want   int
	}{{24 * time.Hour, 2}, {0, 1}} {
		s, err := CartOnly(time.Hour, tc.stage2)
		if err != nil {
			t.Fatalf("stage2 %s: %v", tc.stage2, err)
		}
		rs := s.Rules()
		if len(rs) != 1 || rs[0].ID != "cart_abandoned" || rs[0].Stages != tc.want {
			t.Fatalf("stage2 %s: rules %+v, want cart_abandoned with %d stages", tc.stage2, rs, tc.want)
		}
	}
}
