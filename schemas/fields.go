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

// field maps one Avro field onto a T (Event or Trigger). The closures are
// built from a typed accessor, so that no value is boxed on the way to and
// from the wire beyond what goavro itself needs.
type field[T any] struct {
	name string
	kind kind
	// set stores a value that goavro decoded with the writer's type t.
	set func(dst *T, v any, t *wtype) error
	// native returns the goavro value to encode, unwrapped: nil for null.
	native func(src *T) any
	// json appends the JSON value to dst.
	json func(dst []byte, src *T) []byte
}

func stringF[T any, S ~string](name string, k kind, p func(*T) *S) field[T] {
	return field[T]{name: name, kind: k,
		set: func(dst *T, v any, t *wtype) error {
			s, err := asString(v, t)
			*p(dst) = S(s)
			return err
		},
		native: func(src *T) any {
			s := string(*p(src))
			if k == kOptString && s == "" {
				return nil
			}
			return s
		},
		json: func(dst []byte, src *T) []byte {
			s := string(*p(src))
			if k == kOptString && s == "" {
				return append(dst, "null"...)
			}
			return appendJSONString(dst, s)
		},
	}
}

func int32F[T any](name string, k kind, p func(*T) *int32) field[T] {
	return field[T]{name: name, kind: k,
		set: func(dst *T, v any, t *wtype) error {
			i, err := asInt32(v, t)
			*p(dst) = i
			return err
		},
		native: func(src *T) any {
			i := *p(src)
			if k == kOptInt32 && i == 0 {
				return nil
			}
			return i
		},
		json: func(dst []byte, src *T) []byte {
			i := *p(src)
			if k == kOptInt32 && i == 0 {
				return append(dst, "null"...)
			}
			return appendInt(dst, int64(i))
		},
	}
}

func timeF[T any](name string, k kind, p func(*T) *time.Time) field[T] {
	return field[T]{name: name, kind: k,
		set: func(dst *T, v any, t *wtype) error {
			ts, err := asTime(v, t)
			*p(dst) = ts
			return err
		},
		native: func(src *T) any {
			ts := *p(src)
			if k == kOptTime && ts.IsZero() {
				return nil
			}
			return ts.UnixMilli()
		},
		json: func(dst []byte, src *T) []byte {
			ts := *p(src)
			if k == kOptTime && ts.IsZero() {
				return append(dst, "null"...)
			}
			return appendJSONTime(dst, ts)
		},
	}
}

func dateF[T any](name string, p func(*T) *Date) field[T] {
	return field[T]{name: name, kind: kOptDate,
		set: func(dst *T, v any, t *wtype) error {
			d, err := asDate(v, t)
			*p(dst) = d
			return err
		},
		native: func(src *T) any {
			d := *p(src)
			if d.IsZero() {
				return nil
			}
			return d.days()
		},
		json: func(dst []byte, src *T) []byte {
			d := *p(src)
			if d.IsZero() {
				return append(dst, "null"...)
			}
			return appendJSONDate(dst, d)
		},
	}
}

func moneyF[T any](name string, k kind, p func(*T) *Money) field[T] {
	return field[T]{name: name, kind: k,
		set: func(dst *T, v any, t *wtype) error {
			m, err := asMoney(v, t)
			*p(dst) = m
			return err
		},
		native: func(src *T) any {
			m := *p(src)
			if k == kOptMoney && m == (Money{}) {
				return nil
			}
			return moneyNative(m)
		},
		json: func(dst []byte, src *T) []byte {
			m := *p(src)
			if k == kOptMoney && m == (Money{}) {
				return append(dst, "null"...)
			}
			return appendJSONMoney(dst, m)
		},
	}
}

func itemsF[T any](name string, p func(*T) *[]Item) field[T] {
	return field[T]{name: name, kind: kItems,
		set: func(dst *T, v any, t *wtype) error {
			items, err := appendItems((*p(dst))[:0], v, t)
			*p(dst) = items
			return err
		},
		native: func(src *T) any {
			items := *p(src)
			a := make([]any, len(items))
			for i, it := range items {
				a[i] = map[string]any{
					"product_id": it.ProductID,
					"quantity":   it.Quantity,
					"unit_price": moneyNative(it.UnitPrice),
				}
			}
			return a
		},
		json: func(dst []byte, src *T) []byte { return appendJSONItems(dst, *p(src)) },
	}
}

func stringsF[T any](name string, p func(*T) *[]string) field[T] {
	return field[T]{name: name, kind: kStrings,
		set: func(dst *T, v any, t *wtype) error {
			s, err := appendStrings((*p(dst))[:0], v, t)
			*p(dst) = s
			return err
		},
		native: func(src *T) any {
			s := *p(src)
			a := make([]any, len(s))
			for i, x := range s {
				a[i] = x
			}
			return a
		},
		json: func(dst []byte, src *T) []byte { return appendJSONStrings(dst, *p(src)) },
	}
}

func stringMapF[T any](name string, p func(*T) *map[string]string) field[T] {
	return field[T]{name: name, kind: kStringMap,
		set: func(dst *T, v any, t *wtype) error {
			m, err := asStringMap(v, t)
			*p(dst) = m
			return err
		},
		native: func(src *T) any {
			m := *p(src)
			n := make(map[string]any, len(m))
			for k, v := range m {
				n[k] = v
			}
			return n
		},
		json: func(dst []byte, src *T) []byte { return appendJSONMap(dst, *p(src), appendJSONString) },
	}
}

func optInsF[T any](name string, p func(*T) *map[Channel]bool) field[T] {
	return field[T]{name: name, kind: kOptIns,
		set: func(dst *T, v any, t *wtype) error {
			m, err := asOptIns(v, t)
			*p(dst) = m
			return err
		},
		native: func(src *T) any {
			m := *p(src)
			n := make(map[string]any, len(m))
			for k, v := range m {
				n[string(k)] = v
			}
			return n
		},
		json: func(dst []byte, src *T) []byte { return appendJSONMap(dst, *p(src), appendJSONBool) },
	}
}

func moneyNative(m Money) map[string]any {
	return map[string]any{"minor": m.Minor, "currency": m.Currency}
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
