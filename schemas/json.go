package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// JSON records use the Avro schema's field names. Reading goes through
// encoding/json into the structs below (one per schema, so that a field of
// another topic's schema is ignored like any unknown field); writing is
// table-driven from fields.go and appends to the caller's buffer.

// jsonTime accepts epoch milliseconds (a JSON integer) or an RFC 3339
// string; null and "" are unset.
type jsonTime struct{ t time.Time }

func (j *jsonTime) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		j.t = time.Time{}
		return nil
	case len(b) > 0 && b[0] == '"':
		s, err := jsonUnquote(b)
		if err != nil {
			return err
		}
		if s == "" {
			j.t = time.Time{}
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return &valueError{what: "timestamp", raw: b}
		}
		j.t = time.UnixMilli(t.UnixMilli()).UTC()
		return nil
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return &valueError{what: "timestamp", raw: b}
	}
	j.t = time.UnixMilli(ms).UTC()
	return nil
}

// jsonDate accepts "YYYY-MM-DD"; null and "" are unset.
type jsonDate struct{ d Date }

func (j *jsonDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		j.d = Date{}
		return nil
	}
	if len(b) == 0 || b[0] != '"' {
		return &valueError{what: "date", raw: b}
	}
	s, err := jsonUnquote(b)
	if err != nil {
		return err
	}
	if s == "" {
		j.d = Date{}
		return nil
	}
	d, err := ParseDate(s)
	if err != nil {
		return &valueError{what: "date", raw: b}
	}
	j.d = d
	return nil
}

func jsonUnquote(b []byte) (string, error) {
	if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 {
		return string(b[1 : len(b)-1]), nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", &valueError{what: "string", raw: b}
	}
	return s, nil
}

// valueError is a JSON value of the right JSON type but the wrong format.
type valueError struct {
	what string
	raw  []byte
}

func (e *valueError) Error() string {
	const max = 64
	raw := e.raw
	if len(raw) > max {
		raw = raw[:max]
	}
	return fmt.Sprintf("bad %s %s", e.what, raw)
}

type jsonMoney struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"currency"`
}

type jsonItem struct {
	ProductID string    `json:"product_id"`
	Quantity  int32     `json:"quantity"`
	UnitPrice jsonMoney `json:"unit_price"`
}

func copyItems(dst []Item, src []jsonItem) []Item {
	for _, it := range src {
		dst = append(dst, Item{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: Money(it.UnitPrice)})
	}
	return dst
}

// jsonRecord is one of the JSON structs. Decoders keep them in a sync.Pool.
type jsonRecord[T any] interface {
	reset()
	copyTo(dst *T)
}

type jsonClickstream struct {
	EventID    string            `json:"event_id"`
	CustomerID string            `json:"customer_id"`
	EventTime  jsonTime          `json:"event_time"`
	Type       string            `json:"type"`
	SessionID  string            `json:"session_id"`
	ProductID  string            `json:"product_id"`
	Quantity   int32             `json:"quantity"`
	Price      jsonMoney         `json:"price"`
	Device     string            `json:"device"`
	Country    string            `json:"country"`
	Properties map[string]string `json:"properties"`
}

func (j *jsonClickstream) reset() { *j = jsonClickstream{} }

func (j *jsonClickstream) copyTo(ev *Event) {
	ev.ID, ev.Customer, ev.Time, ev.Type = j.EventID, CustomerID(j.CustomerID), j.EventTime.t, EventType(j.Type)
	ev.SessionID = j.SessionID
	ev.ProductID = j.ProductID
	ev.Quantity = j.Quantity
	ev.Price = Money(j.Price)
	ev.Device = j.Device
	ev.Country = j.Country
	ev.Properties = nonEmpty(j.Properties)
}

type jsonTransaction struct {
	EventID         string            `json:"event_id"`
	CustomerID      string            `json:"customer_id"`
	EventTime       jsonTime          `json:"event_time"`
	Type            string            `json:"type"`
	OrderID         string            `json:"order_id"`
	Amount          jsonMoney         `json:"amount"`
	Items           []jsonItem        `json:"items"`
	PaymentMethod   string            `json:"payment_method"`
	CardFingerprint string            `json:"card_fingerprint"`
	Country         string            `json:"country"`
	CouponID        string            `json:"coupon_id"`
	CouponExpiry    jsonTime          `json:"coupon_expiry"`
	ServiceDate     jsonDate          `json:"service_date"`
	ContractEnd     jsonDate          `json:"contract_end"`
	Properties      map[string]string `json:"properties"`
}

func (j *jsonTransaction) reset() {
	// encoding/json decodes array elements into the slice's old elements
	// without zeroing them: clear them so that an absent field of a new
	// item is not the old item's value.
	items := j.Items[:cap(j.Items)]
	clear(items)
	*j = jsonTransaction{Items: items[:0]}
}

func (j *jsonTransaction) copyTo(ev *Event) {
	ev.ID, ev.Customer, ev.Time, ev.Type = j.EventID, CustomerID(j.CustomerID), j.EventTime.t, EventType(j.Type)
	ev.OrderID = j.OrderID
	ev.Amount = Money(j.Amount)
	ev.Items = copyItems(ev.Items[:0], j.Items)
	ev.PaymentMethod = j.PaymentMethod
	ev.CardFingerprint = j.CardFingerprint
	ev.Country = j.Country
	ev.CouponID = j.CouponID
	ev.CouponExpiry = j.CouponExpiry.t
	ev.ServiceDate = j.ServiceDate.d
	ev.ContractEnd = j.ContractEnd.d
	ev.Properties = nonEmpty(j.Properties)
}

type jsonProfile struct {
	EventID     string           `json:"event_id"`
	CustomerID  string           `json:"customer_id"`
	EventTime   jsonTime         `json:"event_time"`
	Type        string           `json:"type"`
	Birthday    jsonDate         `json:"birthday"`
	SignupDate  jsonDate         `json:"signup_date"`
	TimeZone    string           `json:"time_zone"`
	Country     string           `json:"country"`
	OptIns      map[Channel]bool `json:"opt_ins"`
	ContractEnd jsonDate         `json:"contract_end"`
}

func (j *jsonProfile) reset() { *j = jsonProfile{} }

func (j *jsonProfile) copyTo(ev *Event) {
	ev.ID, ev.Customer, ev.Time, ev.Type = j.EventID, CustomerID(j.CustomerID), j.EventTime.t, EventType(j.Type)
	ev.Profile.Birthday = j.Birthday.d
	ev.Profile.SignupDate = j.SignupDate.d
	ev.Profile.TimeZone = j.TimeZone
	ev.Profile.Country = j.Country
	if len(j.OptIns) > 0 {
		ev.Profile.OptIns = j.OptIns
	}
	ev.Profile.ContractEnd = j.ContractEnd.d
}

type jsonTrigger struct {
	TriggerID   string            `json:"trigger_id"`
	RuleID      string            `json:"rule_id"`
	RuleVersion int32             `json:"rule_version"`
	Kind        string            `json:"kind"`
	Stage       int32             `json:"stage"`
	Channel     string            `json:"channel"`
	Priority    int32             `json:"priority"`
	CustomerID  string            `json:"customer_id"`
	FiredAt     jsonTime          `json:"fired_at"`
	DueAt       jsonTime          `json:"due_at"`
	ExpiresAt   jsonTime          `json:"expires_at"`
	CausedBy    []string          `json:"caused_by"`
	Attributes  map[string]string `json:"attributes"`
	Items       []jsonItem        `json:"items"`
	Value       jsonMoney         `json:"value"`
}

func (j *jsonTrigger) reset() {
	items := j.Items[:cap(j.Items)]
	clear(items)
	*j = jsonTrigger{Items: items[:0]}
}

func (j *jsonTrigger) copyTo(t *Trigger) {
	t.ID = j.TriggerID
	t.Rule = RuleID(j.RuleID)
	t.RuleVersion = j.RuleVersion
	t.Kind = j.Kind
	t.Stage = j.Stage
	t.Channel = Channel(j.Channel)
	t.Priority = j.Priority
	t.Customer = CustomerID(j.CustomerID)
	t.FiredAt = j.FiredAt.t
	t.DueAt = j.DueAt.t
	t.ExpiresAt = j.ExpiresAt.t
	t.CausedBy = append(t.CausedBy[:0], j.CausedBy...)
	t.Attributes = nonEmpty(j.Attributes)
	t.Items = copyItems(t.Items[:0], j.Items)
	t.Value = Money(j.Value)
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// jsonError classifies an encoding/json error.
func jsonError(err error) error {
	var (
		te *json.UnmarshalTypeError
		ve *valueError
	)
	switch {
	case errors.As(err, &te) && te.Field != "":
		return decodeErr(ReasonBadField, te.Field, err)
	case errors.As(err, &ve):
		return decodeErr(ReasonBadField, "", err)
	}
	return decodeErr(ReasonInvalidJSON, "", err)
}

// appendJSONObject appends src as a JSON object with the fields fs, in
// order. Optional fields that are unset are written as null, so that every
// field of the schema is present.
func appendJSONObject[T any](dst []byte, fs []field[T], src *T) []byte {
	dst = append(dst, '{')
	for i := range fs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, fs[i].name)
		dst = append(dst, ':')
		dst = appendJSONField(dst, &fs[i], src)
	}
	return append(dst, '}')
}

// appendJSONField appends the value of one field of src.
func appendJSONField[T any](dst []byte, f *field[T], src *T) []byte {
	switch f.kind {
	case kString, kOptString:
		s := f.getStr(src)
		if f.kind == kOptString && s == "" {
			return append(dst, "null"...)
		}
		return appendJSONString(dst, s)
	case kInt32, kOptInt32:
		i := *f.int32(src)
		if f.kind == kOptInt32 && i == 0 {
			return append(dst, "null"...)
		}
		return appendInt(dst, int64(i))
	case kTime, kOptTime:
		ts := *f.time(src)
		if f.kind == kOptTime && ts.IsZero() {
			return append(dst, "null"...)
		}
		return appendJSONTime(dst, ts)
	case kOptDate:
		d := *f.date(src)
		if d.IsZero() {
			return append(dst, "null"...)
		}
		return appendJSONDate(dst, d)
	case kMoney, kOptMoney:
		m := *f.money(src)
		if f.kind == kOptMoney && m == (Money{}) {
			return append(dst, "null"...)
		}
		return appendJSONMoney(dst, m)
	case kItems:
		return appendJSONItems(dst, *f.items(src))
	case kStrings:
		return appendJSONStrings(dst, *f.strings(src))
	case kStringMap:
		return appendJSONMap(dst, *f.stringMap(src), appendJSONString)
	case kOptIns:
		return appendJSONMap(dst, *f.optIns(src), appendJSONBool)
	}
	panic("schemas: field kind without a JSON encoding")
}

const hex = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendInt(dst []byte, i int64) []byte { return strconv.AppendInt(dst, i, 10) }

func appendJSONBool(dst []byte, b bool) []byte { return strconv.AppendBool(dst, b) }

// appendJSONTime writes RFC 3339 in UTC with milliseconds, e.g.
// "2025-03-01T09:00:00.000Z".
func appendJSONTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, `"2006-01-02T15:04:05.000Z07:00"`)
}

func appendJSONDate(dst []byte, d Date) []byte {
	dst = append(dst, '"')
	dst = appendPadded(dst, d.Year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(d.Month), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, d.Day, 2)
	return append(dst, '"')
}

func appendPadded(dst []byte, v, width int) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	for n, p := 1, 10; n < width; n, p = n+1, p*10 {
		if v < p {
			dst = append(dst, '0')
		}
	}
	return strconv.AppendInt(dst, int64(v), 10)
}

func appendJSONMoney(dst []byte, m Money) []byte {
	dst = append(dst, `{"minor":`...)
	dst = appendInt(dst, m.Minor)
	dst = append(dst, `,"currency":`...)
	dst = appendJSONString(dst, m.Currency)
	return append(dst, '}')
}

func appendJSONItems(dst []byte, items []Item) []byte {
	dst = append(dst, '[')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"product_id":`...)
		dst = appendJSONString(dst, it.ProductID)
		dst = append(dst, `,"quantity":`...)
		dst = appendInt(dst, int64(it.Quantity))
		dst = append(dst, `,"unit_price":`...)
		dst = appendJSONMoney(dst, it.UnitPrice)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendJSONStrings(dst []byte, s []string) []byte {
	dst = append(dst, '[')
	for i, x := range s {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, x)
	}
	return append(dst, ']')
}

// appendJSONMap writes the entries sorted by key, so that equal maps encode
// to equal bytes.
func appendJSONMap[K ~string, V any](dst []byte, m map[K]V, value func([]byte, V) []byte) []byte {
	var buf [16]K
	dst = append(dst, '{')
	for i, k := range sortedKeys(m, buf[:0]) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, string(k))
		dst = append(dst, ':')
		dst = value(dst, m[k])
	}
	return append(dst, '}')
}
