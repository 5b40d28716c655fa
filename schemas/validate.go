package schemas

import (
	"fmt"
	"time"
)

// The range of timestamps and dates a record may carry: what RFC 3339 and
// YYYY-MM-DD can write, so that every decoded record can be re-encoded in
// either format.
const (
	minYear   = 1
	maxYear   = 9999
	maxMillis = 253402300799999 // 9999-12-31T23:59:59.999Z
	minMillis = -62135596800000 // 0001-01-01T00:00:00Z
)

// ValidateEvent checks ev as the decoders do (see the Reason constants) and
// returns a *DecodeError or nil; a profile event without a type becomes a
// profile_update. It is for events built in Go rather than decoded (the
// rule-script runner, tests), so that they meet the same contract.
func ValidateEvent(ev *Event) error { return validateEvent(ev) }

// validateEvent checks what every consumer of an Event relies on. It
// returns a *DecodeError or nil.
func validateEvent(ev *Event) error {
	switch {
	case ev.Customer == "":
		return decodeErrf(ReasonMissingCustomerID, "customer_id", "empty")
	case ev.ID == "":
		return decodeErrf(ReasonMissingEventID, "event_id", "empty")
	case ev.Type == "":
		if ev.Source != SourceProfile {
			return decodeErrf(ReasonMissingType, "type", "empty")
		}
		ev.Type = ProfileUpdate // the schema's default
	}
	if ms := ev.Time.UnixMilli(); ev.Time.IsZero() || ms <= 0 || ms > maxMillis {
		return decodeErrf(ReasonBadField, "event_time", "%s is absent or not in 1970..9999", ev.Time.Format(time.RFC3339Nano))
	}
	if err := checkTime("coupon_expiry", ev.CouponExpiry); err != nil {
		return err
	}
	if err := checkCart(ev); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		m    Money
	}{{"price", ev.Price}, {"amount", ev.Amount}} {
		if err := checkMoney(m.name, m.m); err != nil {
			return err
		}
	}
	if err := checkItems(ev.Items); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		d    Date
	}{
		{"service_date", ev.ServiceDate}, {"contract_end", ev.ContractEnd},
		{"birthday", ev.Profile.Birthday}, {"signup_date", ev.Profile.SignupDate},
		{"contract_end", ev.Profile.ContractEnd},
	} {
		if !d.d.IsZero() && (d.d.Year < minYear || d.d.Year > maxYear) {
			return decodeErrf(ReasonBadField, d.name, "%s is not in the years %d..%d", d.d, minYear, maxYear)
		}
	}
	return nil
}

// checkCart refuses the cart events that would change the cart in a way
// nobody asked for: a line without a product, or a quantity that is not a
// count. On add_to_cart the quantity is required and at least 1: null and 0
// are one value on the wire (see the package doc), so an absent quantity
// cannot be told from a zero one, and taking either as 1 would invent an
// item. On remove_from_cart an absent quantity removes the whole line.
func checkCart(ev *Event) error {
	if ev.Quantity < 0 {
		return decodeErrf(ReasonBadField, "quantity", "%d is negative", ev.Quantity)
	}
	if ev.Source != SourceClickstream || (ev.Type != AddToCart && ev.Type != RemoveFromCart) {
		return nil
	}
	if ev.ProductID == "" {
		return decodeErrf(ReasonBadField, "product_id", "%s without a product", ev.Type)
	}
	if ev.Type == AddToCart && ev.Quantity == 0 {
		return decodeErrf(ReasonBadField, "quantity", "add_to_cart needs a quantity of at least 1 (absent, null and 0 are one value)")
	}
	return nil
}

func validateTrigger(t *Trigger) error {
	switch {
	case t.Customer == "":
		return decodeErrf(ReasonMissingCustomerID, "customer_id", "empty")
	case t.ID == "":
		return decodeErrf(ReasonBadField, "trigger_id", "empty")
	case t.Rule == "":
		return decodeErrf(ReasonBadField, "rule_id", "empty")
	}
	for _, ts := range []struct {
		name string
		t    time.Time
	}{{"fired_at", t.FiredAt}, {"due_at", t.DueAt}, {"expires_at", t.ExpiresAt}} {
		if err := checkTime(ts.name, ts.t); err != nil {
			return err
		}
	}
	if err := checkMoney("value", t.Value); err != nil {
		return err
	}
	return checkItems(t.Items)
}

func checkTime(name string, t time.Time) error {
	if ms := t.UnixMilli(); !t.IsZero() && (ms < minMillis || ms > maxMillis) {
		return decodeErrf(ReasonBadField, name, "%s is not in the years %d..%d", t.Format(time.RFC3339Nano), minYear, maxYear)
	}
	return nil
}

// checkMoney accepts the zero Money (no amount) or a currency of three
// capital letters.
func checkMoney(name string, m Money) error {
	if m == (Money{}) || isCurrency(m.Currency) {
		return nil
	}
	return decodeErrf(ReasonBadField, name, "currency %q is not an ISO 4217 code", m.Currency)
}

func checkItems(items []Item) error {
	for i, it := range items {
		if checkMoney("", it.UnitPrice) != nil {
			return checkMoney(fmt.Sprintf("items[%d].unit_price", i), it.UnitPrice)
		}
	}
	return nil
}

func isCurrency(s string) bool {
	return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
