package schemas

import (
	"fmt"
	"time"
)

// This file maps goavro's generic values, decoded with the writer's schema,
// onto Go values. Each function takes the writer's type of the value, so a
// writer that made a field nullable (or not), or promoted int to long, still
// maps. A type that cannot be read as the Go type is an error; the caller
// reports it as ReasonWrongSchema.

// resolve unwraps a union value: goavro decodes a non-null union value as a
// one-entry map from the branch's name to the value.
func resolve(v any, t *wtype) (any, *wtype, error) {
	if t.kind != "union" || v == nil {
		return v, t, nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, nil, fmt.Errorf("malformed union value %T", v)
	}
	for k, x := range m {
		for _, b := range t.branches {
			if b.unionKey() == k {
				return resolve(x, b)
			}
		}
		return nil, nil, fmt.Errorf("union has no branch %q", k)
	}
	panic("unreachable")
}

func wrongType(want string, v any, t *wtype) error {
	return fmt.Errorf("want %s, writer has %s (%T)", want, t.kind, v)
}

func asString(v any, t *wtype) (string, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return "", err
	}
	if s, ok := v.(string); ok { // string or enum
		return s, nil
	}
	return "", wrongType("string", v, t)
}

func asInt32(v any, t *wtype) (int32, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return 0, err
	}
	if i, ok := v.(int32); ok {
		return i, nil
	}
	return 0, wrongType("int", v, t)
}

func asInt64(v any, t *wtype) (int64, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return 0, err
	}
	switch i := v.(type) {
	case int64:
		return i, nil
	case int32: // Avro promotes int to long
		return int64(i), nil
	}
	return 0, wrongType("long", v, t)
}

func asBool(v any, t *wtype) (bool, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return false, err
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, wrongType("boolean", v, t)
}

// asTime reads a timestamp: timestamp-millis (or -micros) decodes to a
// time.Time; a plain long is taken as epoch milliseconds.
func asTime(v any, t *wtype) (time.Time, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case time.Time:
		return time.UnixMilli(x.UnixMilli()).UTC(), nil
	case int64:
		return time.UnixMilli(x).UTC(), nil
	}
	return time.Time{}, wrongType("timestamp-millis", v, t)
}

// asDate reads a date: goavro decodes the date logical type to midnight UTC
// of that day; a plain int is days since 1970-01-01.
func asDate(v any, t *wtype) (Date, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return Date{}, err
	}
	switch x := v.(type) {
	case time.Time:
		return dateOf(x), nil
	case int32:
		return dateFromDays(x), nil
	}
	return Date{}, wrongType("date", v, t)
}

func asMoney(v any, t *wtype) (Money, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return Money{}, err
	}
	m, ok := v.(map[string]any)
	if !ok || t.kind != "record" {
		return Money{}, wrongType("Money record", v, t)
	}
	var out Money
	for _, f := range t.fields {
		switch f.name {
		case "minor":
			out.Minor, err = asInt64(m[f.name], f.t)
		case "currency":
			out.Currency, err = asString(m[f.name], f.t)
		}
		if err != nil {
			return Money{}, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return out, nil
}

func asItem(v any, t *wtype) (Item, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return Item{}, err
	}
	m, ok := v.(map[string]any)
	if !ok || t.kind != "record" {
		return Item{}, wrongType("Item record", v, t)
	}
	var out Item
	for _, f := range t.fields {
		switch f.name {
		case "product_id":
			out.ProductID, err = asString(m[f.name], f.t)
		case "quantity":
			out.Quantity, err = asInt32(m[f.name], f.t)
		case "unit_price":
			out.UnitPrice, err = asMoney(m[f.name], f.t)
		}
		if err != nil {
			return Item{}, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return out, nil
}

// appendItems appends the items of an array value to dst, so that a reused
// Event keeps its slice's capacity.
func appendItems(dst []Item, v any, t *wtype) ([]Item, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return dst, err
	}
	a, ok := v.([]any)
	if !ok || t.kind != "array" {
		return dst, wrongType("array of Item", v, t)
	}
	for i, x := range a {
		it, err := asItem(x, t.items)
		if err != nil {
			return dst, fmt.Errorf("[%d]: %w", i, err)
		}
		dst = append(dst, it)
	}
	return dst, nil
}

func appendStrings(dst []string, v any, t *wtype) ([]string, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return dst, err
	}
	a, ok := v.([]any)
	if !ok || t.kind != "array" {
		return dst, wrongType("array of string", v, t)
	}
	for i, x := range a {
		s, err := asString(x, t.items)
		if err != nil {
			return dst, fmt.Errorf("[%d]: %w", i, err)
		}
		dst = append(dst, s)
	}
	return dst, nil
}

// asStringMap returns nil for an empty map: most records carry none, and
// nil costs no allocation.
func asStringMap(v any, t *wtype) (map[string]string, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || t.kind != "map" {
		return nil, wrongType("map of string", v, t)
	}
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, err := asString(x, t.values)
		if err != nil {
			return nil, fmt.Errorf("[%q]: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

func asOptIns(v any, t *wtype) (map[Channel]bool, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || t.kind != "map" {
		return nil, wrongType("map of boolean", v, t)
	}
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[Channel]bool, len(m))
	for k, x := range m {
		b, err := asBool(x, t.values)
		if err != nil {
			return nil, fmt.Errorf("[%q]: %w", k, err)
		}
		out[Channel(k)] = b
	}
	return out, nil
}

// dateOf is the calendar date of t in UTC. Dates travel as days since
// 1970-01-01 with no zone: they are local dates in the customer's zone, and
// UTC is only the arithmetic.
func dateOf(t time.Time) Date {
	t = t.UTC()
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func dateFromDays(days int32) Date {
	return dateOf(time.Unix(int64(days)*86400, 0))
}

// days returns the date as days since 1970-01-01.
func (d Date) days() int32 {
	return int32(time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}
