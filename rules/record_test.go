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
