package rules

import (
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// maxSeenTypes bounds the last-seen-per-type list of a customer: event types
// are open, so a customer could send thousands of them.
const maxSeenTypes = 16

// isDuplicate reports whether ev's ID was seen within the dedupe window,
// and otherwise remembers it (pruning by window and count).
func (s *Set) isDuplicate(c *schemas.Customer, ev *schemas.Event) bool {
	d := &s.dedupe
	if d.max <= 0 || ev.ID == "" {
		return false
	}
	key := schemas.EventKey(ev.ID)
	for i := range c.Recent {
		if c.Recent[i].Key != key {
			continue
		}
		if ev.Time.Sub(c.Recent[i].At) < d.window && c.Recent[i].At.Sub(ev.Time) < d.window {
			return true
		}
	}
	// Prune entries older than the window and cap the count; entries are
	// in arrival order, which is event-time order up to lateness.
	drop := 0
	for drop < len(c.Recent) && ev.Time.Sub(c.Recent[drop].At) >= d.window {
		drop++
	}
	drop = max(drop, len(c.Recent)+1-d.max)
	if drop > 0 {
		n := copy(c.Recent, c.Recent[drop:])
		c.Recent = c.Recent[:n]
	}
	c.Recent = grow(c.Recent)
	c.Recent[len(c.Recent)-1] = schemas.SeenEvent{Key: key, At: ev.Time}
	return false
}

// applyEvent updates the customer record c for ev. It is the state the
// rules see: it runs before any rule is evaluated. zone is the customer's
// time zone (for the signup date of a signup event).
func applyEvent(c *schemas.Customer, ev *schemas.Event, zone *time.Location) {
	if c.FirstSeen.IsZero() || ev.Time.Before(c.FirstSeen) {
		c.FirstSeen = ev.Time
	}
	if ev.Time.After(c.LastSeen) {
		c.LastSeen = ev.Time
	}
	c.Events++
	markSeen(c, ev.Type, ev.Time)
	if !ev.ContractEnd.IsZero() {
		// A contract end may come on a transaction (a lease bought).
		c.Profile.ContractEnd = ev.ContractEnd
	}
	if ev.Type == schemas.Signup && c.Profile.SignupDate.IsZero() {
		l := ev.Time.In(zone)
		c.Profile.SignupDate = schemas.Date{Year: l.Year(), Month: l.Month(), Day: l.Day()}
	}

	switch ev.Source {
	case schemas.SourceProfile:
		applyProfile(c, ev)
		return
	case schemas.SourceTransaction:
		if ev.Type == schemas.Purchase {
			c.Purchases++
			addSpend(c, ev.Amount)
			addTx(c, ev.Amount)
			if ev.Time.After(c.LastPurchaseAt) {
				c.LastPurchaseAt = ev.Time
			}
			if len(c.Cart.Items) > 0 {
				c.Cart.Items = c.Cart.Items[:0]
				c.Cart.UpdatedAt = ev.Time
				c.Cart.LastEvent = ev.ID
			}
		}
		return
	}

	switch ev.Type {
	case schemas.AddToCart:
		// The decoders dead-letter these (bad_field); an event built
		// otherwise must not invent a line or a quantity either.
		if ev.ProductID == "" || ev.Quantity <= 0 {
			return
		}
		addToCart(&c.Cart, ev.ProductID, ev.Quantity, ev.Price)
	case schemas.RemoveFromCart:
		if ev.ProductID == "" || ev.Quantity < 0 {
			return
		}
		if !removeFromCart(&c.Cart, ev.ProductID, ev.Quantity) {
			return // not in the cart: nothing changed
		}
	default:
		return
	}
	c.Cart.UpdatedAt = ev.Time
	c.Cart.LastEvent = ev.ID
}

// markSeen records when typ was last seen, evicting the type seen longest
// ago when the list is full.
func markSeen(c *schemas.Customer, typ schemas.EventType, at time.Time) {
	oldest := -1
	for i := range c.Seen {
		if c.Seen[i].Type == typ {
			if at.After(c.Seen[i].At) {
				c.Seen[i].At = at
			}
			return
		}
		if oldest < 0 || c.Seen[i].At.Before(c.Seen[oldest].At) {
			oldest = i
		}
	}
	if len(c.Seen) >= maxSeenTypes {
		c.Seen[oldest] = schemas.TypeSeen{Type: typ, At: at}
		return
	}
	c.Seen = grow(c.Seen)
	st := &c.Seen[len(c.Seen)-1]
	if st.Type != typ {
		st.Type = typ
	}
	st.At = at
}

func addToCart(cart *schemas.Cart, product string, qty int32, price schemas.Money) {
	for i := range cart.Items {
		if cart.Items[i].ProductID == product {
			cart.Items[i].Quantity += qty
			if price.Currency != "" {
				cart.Items[i].UnitPrice = price
			}
			return
		}
	}
	cart.Items = append(cart.Items, schemas.Item{ProductID: product, Quantity: qty, UnitPrice: price})
}

// removeFromCart removes qty of product, or the whole line when qty <= 0 or
// at least the quantity in the cart. It reports whether the cart changed.
func removeFromCart(cart *schemas.Cart, product string, qty int32) bool {
	for i := range cart.Items {
		if cart.Items[i].ProductID != product {
			continue
		}
		if qty > 0 && qty < cart.Items[i].Quantity {
			cart.Items[i].Quantity -= qty
			return true
		}
		cart.Items = append(cart.Items[:i], cart.Items[i+1:]...)
		return true
	}
	return false
}

func addSpend(c *schemas.Customer, m schemas.Money) {
	if m.Currency == "" || m.Minor == 0 {
		return
	}
	for i := range c.Spend {
		if c.Spend[i].Currency == m.Currency {
			c.Spend[i].Minor += m.Minor
			return
		}
	}
	c.Spend = append(c.Spend, m)
}

// addTx counts a purchase in its currency (for running averages).
func addTx(c *schemas.Customer, m schemas.Money) {
	if m.Currency == "" {
		return
	}
	for i := range c.Tx {
		if c.Tx[i].Currency == m.Currency {
			c.Tx[i].Count++
			c.Tx[i].Sum += m.Minor
			return
		}
	}
	c.Tx = append(c.Tx, schemas.TxStat{Currency: m.Currency, Count: 1, Sum: m.Minor})
}

// applyProfile merges the profile fields that ev carries: an unset field
// keeps the known value, so partial updates are safe.
func applyProfile(c *schemas.Customer, ev *schemas.Event) {
	p, in := &c.Profile, &ev.Profile
	if !in.Birthday.IsZero() {
		p.Birthday = in.Birthday
	}
	if !in.SignupDate.IsZero() {
		p.SignupDate = in.SignupDate
	}
	if in.TimeZone != "" {
		p.TimeZone = in.TimeZone
	}
	if in.Country != "" {
		p.Country = in.Country
	}
	if !in.ContractEnd.IsZero() {
		p.ContractEnd = in.ContractEnd
	}
	for ch, ok := range in.OptIns {
		if p.OptIns == nil {
			p.OptIns = make(map[schemas.Channel]bool, len(in.OptIns))
		}
		p.OptIns[ch] = ok
	}
	if ev.Time.After(c.ProfileUpdatedAt) {
		c.ProfileUpdatedAt = ev.Time
	}
}
