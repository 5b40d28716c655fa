package rules

import "github.com/triggerd/triggerd/schemas"

// applyEvent updates the customer record c for ev. It is the state the
// rules see: it runs before any rule is evaluated.
func applyEvent(c *schemas.Customer, ev *schemas.Event) (cartChanged bool) {
	if c.FirstSeen.IsZero() || ev.Time.Before(c.FirstSeen) {
		c.FirstSeen = ev.Time
	}
	if ev.Time.After(c.LastSeen) {
		c.LastSeen = ev.Time
	}
	c.Events++

	switch ev.Source {
	case schemas.SourceProfile:
		applyProfile(c, ev)
		return false
	case schemas.SourceTransaction:
		if ev.Type == schemas.Purchase {
			c.Purchases++
			addSpend(c, ev.Amount)
			if len(c.Cart.Items) > 0 {
				c.Cart.Items = c.Cart.Items[:0]
				c.Cart.UpdatedAt = ev.Time
				c.Cart.LastEvent = ev.ID
				return true
			}
		}
		return false
	}

	switch ev.Type {
	case schemas.AddToCart:
		q := ev.Quantity
		if q <= 0 {
			q = 1
		}
		addToCart(&c.Cart, ev.ProductID, q, ev.Price)
	case schemas.RemoveFromCart:
		if !removeFromCart(&c.Cart, ev.ProductID, ev.Quantity) {
			return false // not in the cart: nothing changed
		}
	default:
		return false
	}
	c.Cart.UpdatedAt = ev.Time
	c.Cart.LastEvent = ev.ID
	return true
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
