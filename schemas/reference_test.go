package schemas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// This file is the Avro codec this package had before read.go and
// write.go, kept as the reference the tests hold them to: goavro decodes a
// record with its writer schema into generic values (maps, []any, union
// wrappers), which are mapped onto T by field name; encoding builds the
// generic values and lets goavro write them. It shares only the field
// table (names, kinds, accessors) and the schema parser (to unwrap goavro's
// unions) with the code under test.

// refReader decodes records as the previous avroReader did.
type refReader[T any] struct {
	cl      *sr.Client
	name    string
	targets map[string]*field[T]

	mu      sync.Mutex
	schemas map[int]refSchema
}

type refSchema struct {
	codec *goavro.Codec
	wt    *wtype
	err   *DecodeError
}

func newRefReader[T any](cl *sr.Client, schema string, fs []field[T]) *refReader[T] {
	wt, err := parseWriterSchema(schema)
	if err != nil {
		panic(err)
	}
	r := &refReader[T]{cl: cl, name: unqualified(wt.name), targets: make(map[string]*field[T]), schemas: make(map[int]refSchema)}
	for i := range fs {
		r.targets[fs[i].name] = &fs[i]
	}
	return r
}

func (r *refReader[T]) schema(id int) (refSchema, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.schemas[id]; ok {
		return s, nil
	}
	wrong := func(format string, args ...any) (refSchema, error) {
		s := refSchema{err: decodeErrf(ReasonWrongSchema, "", format, args...)}
		r.schemas[id] = s
		return s, nil
	}
	s, err := r.cl.SchemaByID(context.Background(), id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			rs := refSchema{err: decodeErrf(ReasonUnknownSchema, "", "schema ID %d is not in the registry", id)}
			r.schemas[id] = rs
			return rs, nil
		}
		return refSchema{}, err
	}
	if s.Type != sr.TypeAvro || len(s.References) > 0 {
		return wrong("not a plain Avro schema")
	}
	codec, err := newCodec(s.Schema)
	if err != nil {
		return wrong("%v", err)
	}
	wt, err := parseWriterSchema(s.Schema)
	if err != nil {
		return wrong("%v", err)
	}
	if wt.kind != wRecord || unqualified(wt.name) != r.name {
		return wrong("not record %s", r.name)
	}
	rs := refSchema{codec: codec, wt: wt}
	r.schemas[id] = rs
	return rs, nil
}

func (r *refReader[T]) decode(value []byte, dst *T) error {
	id, payload, err := confluent.DecodeID(value)
	if err != nil {
		return decodeErrf(ReasonBadFraming, "", "not Confluent-framed")
	}
	s, err := r.schema(id)
	if err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	native, rest, err := refNativeFromBinary(s.codec, payload)
	if err != nil {
		return decodeErrf(refMalformedReason(err), "", "schema %d: %w", id, err)
	}
	if len(rest) > 0 {
		return decodeErrf(ReasonTrailingBytes, "", "schema %d: %d bytes after the record", id, len(rest))
	}
	m := native.(map[string]any)
	for _, f := range s.wt.fields {
		if tf := r.targets[f.name]; tf != nil {
			if err := refSet(tf, dst, m[f.name], f.t); err != nil {
				return decodeErr(ReasonWrongSchema, f.name, err)
			}
		}
	}
	return nil
}

// refMalformedReason classifies goavro's error: it says "short buffer"
// (io.ErrShortBuffer, wrapped or in its own words) when the record ended
// early.
func refMalformedReason(err error) string {
	if errors.Is(err, io.ErrShortBuffer) || strings.Contains(err.Error(), "short buffer") {
		return ReasonTruncated
	}
	return ReasonMalformedAvro
}

// refNativeFromBinary guards against a panic in goavro on crafted input.
func refNativeFromBinary(c *goavro.Codec, b []byte) (native any, rest []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			native, rest, err = nil, nil, fmt.Errorf("goavro panicked: %v", p)
		}
	}()
	return c.NativeFromBinary(b)
}

// refSet stores a value goavro decoded with the writer's type t.
func refSet[T any](f *field[T], dst *T, v any, t *wtype) (err error) {
	switch f.kind {
	case kString, kOptString:
		var s string
		s, err = asString(v, t)
		f.setStr(dst, s)
	case kInt32, kOptInt32:
		*f.int32(dst), err = asInt32(v, t)
	case kTime, kOptTime:
		*f.time(dst), err = asTime(v, t)
	case kOptDate:
		*f.date(dst), err = asDate(v, t)
	case kMoney, kOptMoney:
		*f.money(dst), err = asMoney(v, t)
	case kItems:
		p := f.items(dst)
		*p, err = appendItems((*p)[:0], v, t)
	case kStrings:
		p := f.strings(dst)
		*p, err = appendStrings((*p)[:0], v, t)
	case kStringMap:
		*f.stringMap(dst), err = asStringMap(v, t)
	case kOptIns:
		*f.optIns(dst), err = asOptIns(v, t)
	}
	return err
}

// unionKey is the key goavro uses for a value of this branch of a union.
func unionKey(t *wtype) string {
	switch {
	case t.name != "":
		return t.name
	case t.logical != lNone:
		return t.kind.String() + "." + t.logical.String()
	}
	return t.kind.String()
}

// resolve unwraps a union value: goavro decodes a non-null union value as a
// one-entry map from the branch's name to the value.
func resolve(v any, t *wtype) (any, *wtype, error) {
	if t.kind != wUnion || v == nil {
		return v, t, nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, nil, fmt.Errorf("malformed union value %T", v)
	}
	for k, x := range m {
		for _, b := range t.branches {
			if unionKey(b) == k {
				return resolve(x, b)
			}
		}
		return nil, nil, fmt.Errorf("union has no branch %q", k)
	}
	panic("unreachable")
}

func wrongType(want string, v any, t *wtype) error {
	return fmt.Errorf("want %s, writer has %s (%T)", want, t, v)
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
	case int32:
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
	if !ok || t.kind != wRecord {
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
	if !ok || t.kind != wRecord {
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

func appendItems(dst []Item, v any, t *wtype) ([]Item, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return dst, err
	}
	a, ok := v.([]any)
	if !ok || t.kind != wArray {
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
	if !ok || t.kind != wArray {
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

func asStringMap(v any, t *wtype) (map[string]string, error) {
	v, t, err := resolve(v, t)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || t.kind != wMap {
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
	if !ok || t.kind != wMap {
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

// refEncode encodes src with schema as the previous avroWriter did: a map
// of generic values, written by goavro (without the Confluent framing).
func refEncode[T any](t testing.TB, schema string, fs []field[T], src *T) []byte {
	t.Helper()
	codec, err := newCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := parseWriterSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]any)
	for _, sf := range wt.fields {
		for i := range fs {
			if fs[i].name != sf.name {
				continue
			}
			v := refNative(&fs[i], src)
			if v != nil && sf.t.kind == wUnion {
				for _, b := range sf.t.branches {
					if b.kind != wNull {
						v = goavro.Union(unionKey(b), v)
						break
					}
				}
			}
			m[sf.name] = v
		}
	}
	b, err := codec.BinaryFromNative(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refNative returns the goavro value of a field of src: nil for null.
func refNative[T any](f *field[T], src *T) any {
	money := func(m Money) map[string]any { return map[string]any{"minor": m.Minor, "currency": m.Currency} }
	switch f.kind {
	case kString, kOptString:
		s := f.getStr(src)
		if f.kind == kOptString && s == "" {
			return nil
		}
		return s
	case kInt32, kOptInt32:
		i := *f.int32(src)
		if f.kind == kOptInt32 && i == 0 {
			return nil
		}
		return i
	case kTime, kOptTime:
		ts := *f.time(src)
		if f.kind == kOptTime && ts.IsZero() {
			return nil
		}
		return ts.UnixMilli()
	case kOptDate:
		d := *f.date(src)
		if d.IsZero() {
			return nil
		}
		return d.days()
	case kMoney, kOptMoney:
		m := *f.money(src)
		if f.kind == kOptMoney && m == (Money{}) {
			return nil
		}
		return money(m)
	case kItems:
		var a []any
		for _, it := range *f.items(src) {
			a = append(a, map[string]any{"product_id": it.ProductID, "quantity": it.Quantity, "unit_price": money(it.UnitPrice)})
		}
		return a
	case kStrings:
		var a []any
		for _, s := range *f.strings(src) {
			a = append(a, s)
		}
		return a
	case kStringMap:
		m := make(map[string]any)
		for k, v := range *f.stringMap(src) {
			m[k] = v
		}
		return m
	case kOptIns:
		m := make(map[string]any)
		for k, v := range *f.optIns(src) {
			m[string(k)] = v
		}
		return m
	}
	panic("no native value")
}
