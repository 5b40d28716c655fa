package rules

import (
	"strconv"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// BenchmarkRules evaluates the full example rule set over a realistic mix
// of events (views, cart changes, purchases by card, coupons, profiles) for
// 1,000 customers whose records carry carts, windows, runs and marks, and
// fires their timers when due, as the processor does. One op is one event
// (with the timers due before it). Run it with
//
//	go test -run=^$ -bench=. -benchmem ./rules/
func BenchmarkRules(b *testing.B) {
	s, err := ExampleSet()
	if err != nil {
		b.Fatal(err)
	}
	const customers = 1000
	cs := make([]*schemas.Customer, customers)
	timers := make([][]schemas.Timer, customers)
	ids := make([]schemas.CustomerID, customers)
	for i := range cs {
		ids[i] = schemas.CustomerID("c-" + strconv.Itoa(i))
		cs[i] = &schemas.Customer{ID: ids[i]}
	}
	// The mix of a shop: mostly browsing, some carts, a few purchases.
	mix := []schemas.EventType{
		schemas.PageView, schemas.ProductView, schemas.ProductView, schemas.PageView, schemas.ProductView,
		schemas.AddToCart, schemas.ProductView, schemas.PageView, schemas.RemoveFromCart, schemas.ProductView,
		schemas.AddToCart, schemas.PageView, schemas.ProductView, schemas.Purchase, schemas.EmailOpen,
		schemas.ProductView, schemas.PageView, schemas.CouponIssued, schemas.ProductView, schemas.ProfileUpdate,
	}
	products := make([]string, 50)
	for i := range products {
		products[i] = "p-" + strconv.Itoa(i)
	}
	evIDs := make([]string, 1<<16)
	for i := range evIDs {
		evIDs[i] = "e-" + strconv.Itoa(i)
	}
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var a Actions
	var ev schemas.Event
	apply := func(ci int) {
		for _, ref := range a.Cancel {
			ts := timers[ci]
			for j := range ts {
				if ts[j].ID == ref.ID {
					ts[j] = ts[len(ts)-1]
					timers[ci] = ts[:len(ts)-1]
					break
				}
			}
		}
		for _, t := range a.Schedule {
			ts := timers[ci]
			found := false
			for j := range ts {
				if ts[j].ID == t.ID {
					ts[j], found = t, true
					break
				}
			}
			if !found {
				timers[ci] = append(ts, t)
			}
		}
	}
	warm := func(n int) {
		ci := (n * 7919) % customers
		c := cs[ci]
		now := base.Add(time.Duration(n) * 2 * time.Second)
		// Timers due before this event fire first.
		for j := 0; j < len(timers[ci]); {
			if t := timers[ci][j]; !t.Due.After(now) {
				timers[ci][j] = timers[ci][len(timers[ci])-1]
				timers[ci] = timers[ci][:len(timers[ci])-1]
				a.Reset()
				s.OnTimer(c, &t, &a)
				apply(ci)
				continue
			}
			j++
		}
		typ := mix[n%len(mix)]
		ev.Reset()
		ev.ID, ev.Customer, ev.Type, ev.Time = evIDs[n%len(evIDs)], c.ID, typ, now
		ev.Source = schemas.SourceClickstream
		p := products[(n/3)%len(products)]
		switch typ {
		case schemas.ProductView, schemas.AddToCart, schemas.RemoveFromCart:
			ev.ProductID, ev.Quantity, ev.Price = p, 1, schemas.Money{Minor: 1999, Currency: "EUR"}
		case schemas.Purchase:
			ev.Source = schemas.SourceTransaction
			ev.OrderID = "o-" + ev.ID
			ev.Amount = schemas.Money{Minor: int64(1000 + n%5000), Currency: "EUR"}
			ev.PaymentMethod, ev.Country = "card", "DE"
		case schemas.CouponIssued:
			ev.Source = schemas.SourceTransaction
			ev.CouponID, ev.CouponExpiry = "cp-"+ev.ID, now.Add(10*24*time.Hour)
		case schemas.ProfileUpdate:
			ev.Source = schemas.SourceProfile
			ev.Profile.Birthday = schemas.Date{Year: 1980 + ci%30, Month: time.Month(1 + ci%12), Day: 1 + ci%28}
			ev.Profile.TimeZone = "Europe/Berlin"
		}
		a.Reset()
		s.OnEvent(c, &ev, &a)
		apply(ci)
	}
	// Warm the customers up so their records hold state (about 200
	// events each) before measuring.
	for n := range 200 * customers {
		warm(n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		warm(200*customers + n)
	}
}
