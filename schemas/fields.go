package schemas

import (
	"time"
)

// This file is the one map between the Avro field names and the Go types.
// The Avro reader (by name, against any writer schema), the Avro writer and
// the JSON writer (against the current schema) are all driven by it; the
// JSON reader uses the structs in json.go. A test checks that every field of
// every current .avsc has an entry here and in the JSON structs, and the
// other way round.

// kind is how a field is represented on the wire.
type kind uint8

const (
	kString    kind = iota // string
	kOptString             // ["null", "string"]; "" travels as null
	kInt32                 // int
	kOptInt32              // ["null", "int"]; 0 travels as null
	kTime                  // timestamp-millis
	kOptTime               // ["null", timestamp-millis]; the zero time travels as null
	kOptDate               // ["null", date]; the zero Date travels as null
	kMoney                 // Money
	kOptMoney              // ["null", Money]; the zero Money travels as null
	kItems                 // array of Item
	kStringMap             // map of string
	kOptIns                // map of boolean
	kStrings               // array of string
)

// field maps one Avro field onto a T (Event, Trigger or Suppression). It
// holds typed accessors to the Go field, the one for its kind set and the
// others nil, so that the codecs move values without boxing them: each
// codec switches on kind (readField, appendField, appendJSONField).
type field[T any] struct {
	name string
	kind kind

	// kString, kOptString: the Go field is a string type (CustomerID,
	// EventType, ...), so it is read and written through functions.
	getStr func(*T) string
	setStr func(*T, string)

	int32     func(*T) *int32             // kInt32, kOptInt32
	time      func(*T) *time.Time         // kTime, kOptTime
	date      func(*T) *Date              // kOptDate
	money     func(*T) *Money             // kMoney, kOptMoney
	items     func(*T) *[]Item            // kItems
	strings   func(*T) *[]string          // kStrings
	stringMap func(*T) *map[string]string // kStringMap
	optIns    func(*T) *map[Channel]bool  // kOptIns
}

func stringF[T any, S ~string](name string, k kind, p func(*T) *S) field[T] {
	return field[T]{name: name, kind: k,
		getStr: func(t *T) string { return string(*p(t)) },
		setStr: func(t *T, s string) { *p(t) = S(s) },
	}
}

func int32F[T any](name string, k kind, p func(*T) *int32) field[T] {
	return field[T]{name: name, kind: k, int32: p}
}

func timeF[T any](name string, k kind, p func(*T) *time.Time) field[T] {
	return field[T]{name: name, kind: k, time: p}
}

func dateF[T any](name string, p func(*T) *Date) field[T] {
	return field[T]{name: name, kind: kOptDate, date: p}
}

func moneyF[T any](name string, k kind, p func(*T) *Money) field[T] {
	return field[T]{name: name, kind: k, money: p}
}

func itemsF[T any](name string, p func(*T) *[]Item) field[T] {
	return field[T]{name: name, kind: kItems, items: p}
}

func stringsF[T any](name string, p func(*T) *[]string) field[T] {
	return field[T]{name: name, kind: kStrings, strings: p}
}

func stringMapF[T any](name string, p func(*T) *map[string]string) field[T] {
	return field[T]{name: name, kind: kStringMap, stringMap: p}
}

func optInsF[T any](name string, p func(*T) *map[Channel]bool) field[T] {
	return field[T]{name: name, kind: kOptIns, optIns: p}
}

// liftField adapts a field of T to a U that contains a T (a Suppression's
// Trigger).
func liftField[T, U any](f field[T], inner func(*U) *T) field[U] {
	g := field[U]{name: f.name, kind: f.kind}
	if f.getStr != nil {
		g.getStr = func(u *U) string { return f.getStr(inner(u)) }
		g.setStr = func(u *U, s string) { f.setStr(inner(u), s) }
	}
	g.int32 = lift(f.int32, inner)
	g.time = lift(f.time, inner)
	g.date = lift(f.date, inner)
	g.money = lift(f.money, inner)
	g.items = lift(f.items, inner)
	g.strings = lift(f.strings, inner)
	g.stringMap = lift(f.stringMap, inner)
	g.optIns = lift(f.optIns, inner)
	return g
}

func lift[T, U, V any](p func(*T) *V, inner func(*U) *T) func(*U) *V {
	if p == nil {
		return nil
	}
	return func(u *U) *V { return p(inner(u)) }
}

// The fields every input schema starts with.
var eventCoreFields = []field[Event]{
	stringF("event_id", kString, func(e *Event) *string { return &e.ID }),
	stringF("customer_id", kString, func(e *Event) *CustomerID { return &e.Customer }),
	timeF("event_time", kTime, func(e *Event) *time.Time { return &e.Time }),
	stringF("type", kString, func(e *Event) *EventType { return &e.Type }),
}

// withCore returns the core fields followed by fs, in a new slice.
func withCore(fs ...field[Event]) []field[Event] {
	return append(append([]field[Event](nil), eventCoreFields...), fs...)
}

var clickstreamFields = withCore(
	stringF("session_id", kOptString, func(e *Event) *string { return &e.SessionID }),
	stringF("product_id", kOptString, func(e *Event) *string { return &e.ProductID }),
	int32F("quantity", kOptInt32, func(e *Event) *int32 { return &e.Quantity }),
	moneyF("price", kOptMoney, func(e *Event) *Money { return &e.Price }),
	stringF("device", kOptString, func(e *Event) *string { return &e.Device }),
	stringF("country", kOptString, func(e *Event) *string { return &e.Country }),
	stringMapF("properties", func(e *Event) *map[string]string { return &e.Properties }),
)

var transactionFields = withCore(
	stringF("order_id", kOptString, func(e *Event) *string { return &e.OrderID }),
	moneyF("amount", kMoney, func(e *Event) *Money { return &e.Amount }),
	itemsF("items", func(e *Event) *[]Item { return &e.Items }),
	stringF("payment_method", kOptString, func(e *Event) *string { return &e.PaymentMethod }),
	stringF("card_fingerprint", kOptString, func(e *Event) *string { return &e.CardFingerprint }),
	stringF("country", kOptString, func(e *Event) *string { return &e.Country }),
	stringF("coupon_id", kOptString, func(e *Event) *string { return &e.CouponID }),
	timeF("coupon_expiry", kOptTime, func(e *Event) *time.Time { return &e.CouponExpiry }),
	dateF("service_date", func(e *Event) *Date { return &e.ServiceDate }),
	dateF("contract_end", func(e *Event) *Date { return &e.ContractEnd }),
	stringMapF("properties", func(e *Event) *map[string]string { return &e.Properties }),
)

// Profile attributes live in Event.Profile, including country and
// contract_end, which on the other topics are Event fields.
var profileFields = withCore(
	dateF("birthday", func(e *Event) *Date { return &e.Profile.Birthday }),
	dateF("signup_date", func(e *Event) *Date { return &e.Profile.SignupDate }),
	stringF("time_zone", kOptString, func(e *Event) *string { return &e.Profile.TimeZone }),
	stringF("country", kOptString, func(e *Event) *string { return &e.Profile.Country }),
	optInsF("opt_ins", func(e *Event) *map[Channel]bool { return &e.Profile.OptIns }),
	dateF("contract_end", func(e *Event) *Date { return &e.Profile.ContractEnd }),
)

var triggerFields = []field[Trigger]{
	stringF("trigger_id", kString, func(t *Trigger) *string { return &t.ID }),
	stringF("rule_id", kString, func(t *Trigger) *RuleID { return &t.Rule }),
	int32F("rule_version", kInt32, func(t *Trigger) *int32 { return &t.RuleVersion }),
	stringF("kind", kString, func(t *Trigger) *string { return &t.Kind }),
	int32F("stage", kInt32, func(t *Trigger) *int32 { return &t.Stage }),
	stringF("channel", kString, func(t *Trigger) *Channel { return &t.Channel }),
	int32F("priority", kInt32, func(t *Trigger) *int32 { return &t.Priority }),
	stringF("customer_id", kString, func(t *Trigger) *CustomerID { return &t.Customer }),
	timeF("fired_at", kTime, func(t *Trigger) *time.Time { return &t.FiredAt }),
	timeF("due_at", kTime, func(t *Trigger) *time.Time { return &t.DueAt }),
	timeF("expires_at", kTime, func(t *Trigger) *time.Time { return &t.ExpiresAt }),
	stringsF("caused_by", func(t *Trigger) *[]string { return &t.CausedBy }),
	stringMapF("attributes", func(t *Trigger) *map[string]string { return &t.Attributes }),
	itemsF("items", func(t *Trigger) *[]Item { return &t.Items }),
	moneyF("value", kOptMoney, func(t *Trigger) *Money { return &t.Value }),
}

func eventFields(src Source) []field[Event] {
	switch src {
	case SourceClickstream:
		return clickstreamFields
	case SourceTransaction:
		return transactionFields
	case SourceProfile:
		return profileFields
	}
	return nil
}
