package schemas

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// The direct reader (read.go) must decode every input as the goavro-based
// reference (reference_test.go) does: the same Event, or errors with the
// same Reason and Field. The only differences allowed are the checks the
// reference lacked (see stricter).

// everyTypeClickstream is a clickstream writer schema that differs from the
// current one in every way a reader must cope with: fields the reader lacks,
// of every Avro type (skipped); fields in another order; an optional field
// made required and a required one optional; enums for strings; an int for
// a long; timestamp-micros for millis; union branches in another order; a
// record that contains itself; a product_id the writer lacks.
const everyTypeClickstream = `{
  "type": "record", "name": "ClickstreamEvent", "namespace": "io.example.v9",
  "fields": [
    {"name": "x_float", "type": "float"},
    {"name": "event_id", "type": "string"},
    {"name": "customer_id", "type": ["null", "string"]},
    {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "type", "type": {"type": "enum", "name": "Kind", "symbols": ["page_view", "add_to_cart", "checkout_start"]}},
    {"name": "x_bytes", "type": "bytes"},
    {"name": "x_fixed", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "session_id", "type": "string"},
    {"name": "x_double", "type": "double"},
    {"name": "quantity", "type": "int"},
    {"name": "price", "type": ["null", {"type": "record", "name": "Money", "fields": [
      {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD"]}},
      {"name": "note", "type": ["null", "string"]},
      {"name": "minor", "type": "int"}]}]},
    {"name": "x_map", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
    {"name": "x_list", "type": {"type": "record", "name": "Node", "fields": [
      {"name": "on", "type": "boolean"},
      {"name": "next", "type": ["null", "Node"]}]}},
    {"name": "device", "type": ["null", {"type": "enum", "name": "Device", "symbols": ["ios", "android", "web"]}]},
    {"name": "country", "type": ["string", "null"]},
    {"name": "properties", "type": {"type": "map", "values": ["null", "string"]}},
    {"name": "x_null", "type": "null"},
    {"name": "x_union", "type": ["null", "int", "string", "Node", {"type": "array", "items": "null"}]},
    {"name": "x_date", "type": ["null", {"type": "int", "logicalType": "date"}]}
  ]
}`

// everyTypeRecords are records of everyTypeClickstream, as goavro's native
// values: one with every optional value set, one with them null or empty.
func everyTypeRecords() []map[string]any {
	node := func(on bool, next any) map[string]any { return map[string]any{"on": on, "next": next} }
	full := map[string]any{
		"x_float": float32(1.5), "event_id": "ev-9", "customer_id": goavro.Union("string", "c-9"),
		"event_time": int64(1740820500123456), "type": "checkout_start",
		"x_bytes": []byte{1, 2, 3}, "x_fixed": []byte{4, 5, 6, 7}, "session_id": "s-1", "x_double": 2.5,
		"quantity": int32(3),
		"price": goavro.Union("io.example.v9.Money", map[string]any{
			"currency": "EUR", "note": goavro.Union("string", "n"), "minor": int32(-1999)}),
		"x_map":      map[string]any{"a": []any{int64(1), int64(-2)}, "b": []any{}}, // b-1 or a+1: a key twice
		"x_list":     node(true, goavro.Union("io.example.v9.Node", node(false, nil))),
		"device":     goavro.Union("io.example.v9.Device", "web"),
		"country":    goavro.Union("string", "DE"),
		"properties": map[string]any{"k": goavro.Union("string", "v")},
		"x_null":     nil,
		"x_union":    goavro.Union("io.example.v9.Node", node(true, nil)),
		"x_date":     goavro.Union("int.date", time.Date(1961, 12, 31, 0, 0, 0, 0, time.UTC)),
	}
	sparse := map[string]any{
		"x_float": float32(0), "event_id": "ev-10", "customer_id": goavro.Union("string", "c-9"),
		"event_time": int64(1740820500000999), "type": "page_view",
		"x_bytes": []byte{}, "x_fixed": []byte{0, 0, 0, 0}, "session_id": "", "x_double": 0.0,
		"quantity": int32(0), "price": nil, "x_map": map[string]any{}, "x_list": node(false, nil),
		"device": nil, "country": nil, "properties": map[string]any{"n": nil}, "x_null": nil,
		"x_union": goavro.Union("array", []any{nil, nil, nil}), "x_date": nil,
	}
	return []map[string]any{full, sparse}
}

// blockRecord is a transaction (schema 2 of the fuzz registry) written by
// hand with what goavro never writes: an items array in two blocks, the
// first with a negative count and its size in bytes, and a properties map
// in a negative-count block.
func blockRecord() []byte {
	item := func(b []byte, id string, q int64) []byte {
		b = appendAvroString(b, id)
		b = appendZigzag(b, q)
		b = appendZigzag(b, 250)
		return appendAvroString(b, "EUR")
	}
	b := []byte{0, 0, 0, 0, 2}
	b = appendAvroString(b, "e")
	b = appendAvroString(b, "c")
	b = appendZigzag(b, 1740820500000)
	b = appendAvroString(b, "purchase")
	b = appendZigzag(b, 1) // order_id: the string branch
	b = appendAvroString(b, "o-1")
	b = appendZigzag(b, 500) // amount
	b = appendAvroString(b, "EUR")
	first := item(nil, "sku-1", 1)
	b = appendZigzag(b, -1)
	b = appendZigzag(b, int64(len(first)))
	b = append(b, first...)
	b = appendZigzag(b, 1)
	b = item(b, "sku-2", 2)
	b = appendZigzag(b, 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0) // seven null optionals
	entries := appendAvroString(appendAvroString(appendAvroString(appendAvroString(nil, "a"), "1"), "b"), "2")
	b = appendZigzag(b, -2)
	b = appendZigzag(b, int64(len(entries)))
	b = append(b, entries...)
	return appendZigzag(b, 0)
}

// stricter reports whether err comes from a check the direct reader makes
// and goavro did not: goavro read varints of any length, truncated ints to
// 32 bits, let the items of an array add up past the limit over many
// blocks, and nested values as deep as the stack would go.
func stricter(err error) bool {
	return errors.Is(err, errBadVarint) || errors.Is(err, errIntRange) ||
		errors.Is(err, errTooManyItems) || errors.Is(err, errTooDeep)
}

// disagreement describes how the direct reader's result differs from the
// reference's, or returns "".
func disagreement[T any](got, want T, gotErr, wantErr error, norm func(T) T) string {
	if stricter(gotErr) {
		return ""
	}
	switch {
	case gotErr == nil && wantErr == nil:
		if !reflect.DeepEqual(norm(got), norm(want)) {
			return fmt.Sprintf("decoded differently\n got %+v\nwant %+v", got, want)
		}
		return ""
	case gotErr != nil && wantErr != nil:
		var g, w *DecodeError
		if errors.Is(gotErr, errItemsPastEnd) && errors.As(wantErr, &w) && (w.Reason == ReasonTruncated || w.Reason == ReasonMalformedAvro) {
			return "" // found earlier than goavro, which read on into whatever the bytes were
		}
		if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) || g.Reason != w.Reason || g.Field != w.Field {
			return fmt.Sprintf("errors differ\n got %v\nwant %v", gotErr, wantErr)
		}
		return ""
	}
	return fmt.Sprintf("got %v, reference %v\n got %+v\nwant %+v", gotErr, wantErr, got, want)
}

// refDecodeEvent decodes as the previous Decoder did.
func refDecodeEvent(ref *refReader[Event], src Source, value []byte) (Event, error) {
	var ev Event
	err := ref.decode(value, &ev)
	ev.Source = src
	if err == nil {
		err = validateEvent(&ev)
	}
	return ev, err
}

// mutations returns rec, every prefix of it, and rec with each byte
// replaced by a few telling values (0, 1, 2, -1 as a varint, a
// continuation bit, 0xff, the byte's neighbours), dropped or doubled.
func mutations(rec []byte) [][]byte {
	out := [][]byte{rec}
	for i := range rec {
		out = append(out, rec[:i])
		for _, c := range []byte{0, 1, 2, 3, 0x7f, 0x80, 0xff, rec[i] + 1, rec[i] - 1, rec[i] ^ 0x80} {
			m := append([]byte(nil), rec...)
			m[i] = c
			out = append(out, m)
		}
		out = append(out, append(append([]byte(nil), rec[:i]...), rec[i+1:]...))
		out = append(out, append(append(append([]byte(nil), rec[:i+1]...), rec[i]), rec[i+1:]...))
	}
	return out
}

// TestDecodeDifferential runs the direct reader and the reference on
// records of the current, an older and a very different writer schema,
// records with blocks goavro does not write, and every mutation of them.
func TestDecodeDifferential(t *testing.T) {
	s := newFuzzSetup(t, FormatAvro)
	var recs []struct {
		src Source
		b   []byte
	}
	add := func(src Source, b []byte) {
		recs = append(recs, struct {
			src Source
			b   []byte
		}{src, b})
	}
	for _, sd := range avroSeeds(t, s) {
		add(sourceOf(sd.src), sd.data)
	}
	for _, src := range sources {
		ev := sampleEvent(src)
		ev.Properties = map[string]string{"one": "1"}
		ev.Profile.OptIns = map[Channel]bool{ChannelPush: true}
		b, err := s.encs[src].Encode(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		add(src, b)
	}
	codec, err := goavro.NewCodec(everyTypeClickstream)
	if err != nil {
		t.Fatal(err)
	}
	for _, native := range everyTypeRecords() {
		body, err := codec.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatal(err)
		}
		add(SourceClickstream, append([]byte{0, 0, 0, 0, everyTypeID}, body...))
	}
	add(SourceTransaction, blockRecord())

	var decoded, failed int
	for _, r := range recs {
		for _, m := range mutations(r.b) {
			var got Event
			gotErr := s.decs[r.src].Decode(m, &got)
			want, wantErr := refDecodeEvent(s.refs[r.src], r.src, m)
			if d := disagreement(got, want, gotErr, wantErr, normEvent); d != "" {
				t.Fatalf("%v record % x:\n%s", r.src, m, d)
			}
			if gotErr == nil {
				decoded++
			} else {
				failed++
			}
		}
	}
	// The originals decode, and the sweep reaches both outcomes often.
	for _, r := range recs[len(recs)-3:] {
		var ev Event
		if err := s.decs[r.src].Decode(r.b, &ev); err != nil {
			t.Errorf("%v record % x: %v", r.src, r.b, err)
		}
	}
	if decoded < 1000 || failed < 1000 {
		t.Errorf("%d mutations decoded and %d failed: the sweep lost its reach", decoded, failed)
	}
	t.Logf("%d records and mutations decoded alike, %d failed alike", decoded, failed)
}

// triggerSetup is a registry with the trigger schema (ID 1) and a trigger
// writer of another version (ID 2), with the decoder under test and the
// reference.
type triggerSetup struct {
	enc *TriggerEncoder
	dec *TriggerDecoder
	ref *refReader[Trigger]
}

// evolvedTrigger is a trigger writer that made caused_by a nullable array
// of nullable strings and priority nullable, and added a field first.
func evolvedTrigger(t testing.TB) string {
	s := TriggerSchema()
	for _, r := range [][2]string{
		{`{"name": "caused_by", "type": {"type": "array", "items": "string"}, "default": []`,
			`{"name": "caused_by", "type": ["null", {"type": "array", "items": ["null", "string"]}], "default": null`},
		{`{"name": "priority", "type": "int", "default": 0`, `{"name": "priority", "type": ["null", "int"], "default": null`},
		{`{"name": "trigger_id"`, `{"name": "x_extra", "type": {"type": "array", "items": "double"}, "default": []},
    {"name": "trigger_id"`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("trigger.avsc has no %s", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

func newTriggerSetup(tb testing.TB) *triggerSetup {
	_, cl := newRegistry(tb)
	enc, err := NewTriggerEncoder(context.Background(), FormatAvro, cl, "triggers-value")
	if err != nil {
		tb.Fatal(err)
	}
	if enc.SchemaID() != 1 {
		tb.Fatalf("trigger schema registered as %d, want 1", enc.SchemaID())
	}
	if id, err := cl.RegisterSchema(context.Background(), "evolved-value", sr.Schema{Schema: evolvedTrigger(tb)}, -1, -1); err != nil || id != 2 {
		tb.Fatalf("evolved trigger registered as %d (%v), want 2", id, err)
	}
	dec, err := NewTriggerDecoder(FormatAvro, cl)
	if err != nil {
		tb.Fatal(err)
	}
	return &triggerSetup{enc: enc, dec: dec, ref: newRefReader(cl, triggerAvsc, triggerFields)}
}

// check holds the trigger decoder to the reference on one input.
func (s *triggerSetup) check(t *testing.T, data []byte) error {
	var got, want Trigger
	gotErr := s.dec.Decode(data, &got)
	wantErr := s.ref.decode(data, &want)
	if wantErr == nil {
		wantErr = validateTrigger(&want)
	}
	if d := disagreement(got, want, gotErr, wantErr, normTrigger); d != "" {
		t.Fatalf("trigger % x:\n%s", data, d)
	}
	return gotErr
}

func (s *triggerSetup) seeds(tb testing.TB) [][]byte {
	full := sampleTrigger()
	full.Attributes = map[string]string{"k": "v"}
	full.Items = append(full.Items, Item{ProductID: "sku-2", Quantity: -1, UnitPrice: Money{-5, "USD"}})
	minimal := Trigger{ID: "t", Rule: "r", Customer: "c", FiredAt: ms("2025-01-01T00:00:00Z")}
	var out [][]byte
	for _, tr := range []Trigger{full, minimal} {
		b, err := s.enc.Encode(nil, &tr)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	// The evolved writer: x_extra (two doubles), then the fields as the
	// current schema writes them, with caused_by and priority as unions.
	b := []byte{0, 0, 0, 0, 2}
	b = appendZigzag(b, 2)
	b = append(b, make([]byte, 16)...)
	b = appendZigzag(b, 0)
	b = appendAvroString(b, "t-1")
	b = appendAvroString(b, "r")
	b = appendZigzag(b, 1)
	b = appendAvroString(b, "kind")
	b = appendZigzag(b, 1)
	b = appendAvroString(b, "email")
	b = appendZigzag(b, 1) // priority: the int branch
	b = appendZigzag(b, 7)
	b = appendAvroString(b, "c")
	for range 3 {
		b = appendZigzag(b, 1740820500000)
	}
	b = appendZigzag(b, 1) // caused_by: the array branch
	b = appendZigzag(b, 2)
	b = appendZigzag(b, 1)
	b = appendAvroString(b, "ev-1")
	b = appendZigzag(b, 0) // a null cause
	b = appendZigzag(b, 0)
	b = append(b, 0, 0, 0) // no attributes, no items, null value
	return append(out, b)
}

func TestDecodeTriggerDifferential(t *testing.T) {
	s := newTriggerSetup(t)
	var decoded, failed int
	for _, seed := range s.seeds(t) {
		if err := s.check(t, seed); err != nil {
			t.Errorf("seed % x: %v", seed, err)
		}
		for _, m := range mutations(seed) {
			if s.check(t, m) == nil {
				decoded++
			} else {
				failed++
			}
		}
	}
	if decoded < 300 || failed < 300 {
		t.Errorf("%d mutations decoded and %d failed: the sweep lost its reach", decoded, failed)
	}
}
