package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// checkEncode holds the direct encoder to goavro (the previous encoder, in
// reference_test.go) on one value: the same bytes after the Confluent
// frame. goavro writes a map's entries in Go's random map order and the
// direct encoder sorts them, so a value with a map of two entries or more is
// compared by what goavro decodes from both.
func checkEncode[T any](t *testing.T, name string, w *avroWriter[T], schema string, fs []field[T], v *T, maps int) {
	t.Helper()
	got := w.encode([]byte("prefix"), v)
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("%s: encode did not append", name)
	}
	got = got[len("prefix"):]
	if got[0] != 0 || int(binary.BigEndian.Uint32(got[1:5])) != w.id {
		t.Fatalf("%s: frame % x, want schema ID %d", name, got[:5], w.id)
	}
	got = got[5:]
	want := refEncode(t, schema, fs, v)
	if maps < 2 {
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % x\nwant % x", name, got, want)
		}
		return
	}
	codec, err := newCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	gotNative, rest, err := codec.NativeFromBinary(got)
	if err != nil || len(rest) > 0 {
		t.Fatalf("%s: goavro cannot read the direct encoder's bytes: %v, %d bytes left", name, err, len(rest))
	}
	wantNative, _, _ := codec.NativeFromBinary(want)
	if len(got) != len(want) || !reflect.DeepEqual(gotNative, wantNative) {
		t.Errorf("%s:\n got %v\nwant %v", name, gotNative, wantNative)
	}
}

func TestEncodeMatchesGoavro(t *testing.T) {
	_, cl := newRegistry(t)
	ctx := context.Background()

	tw, err := newAvroWriter(ctx, cl, "triggers-value", triggerAvsc, triggerFields)
	if err != nil {
		t.Fatal(err)
	}
	one := sampleTrigger()
	one.Attributes = map[string]string{"subject": "Hi"}
	many := sampleTrigger()
	many.Items = append(many.Items, Item{ProductID: "", Quantity: -3, UnitPrice: Money{-1 << 40, "USD"}}, Item{})
	many.CausedBy = []string{"", "é", string(make([]byte, 200))} // a length over one varint byte
	many.Value = Money{}
	many.Priority = -1
	for name, c := range map[string]struct {
		tr   Trigger
		maps int
	}{
		"sample": {sampleTrigger(), 2}, "one attribute": {one, 1}, "many lines": {many, 2},
		"empty":   {Trigger{}, 0},
		"minimal": {Trigger{ID: "t", Rule: "r", Customer: "c", FiredAt: ms("2025-01-01T00:00:00Z")}, 0},
		"before 1970": {Trigger{ID: "t", FiredAt: ms("1969-07-20T20:17:40.5Z"), DueAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
			CausedBy: []string{}, Attributes: map[string]string{}, Items: []Item{}}, 0},
	} {
		checkEncode(t, "trigger "+name, tw, triggerAvsc, triggerFields, &c.tr, c.maps)
	}

	for _, src := range sources {
		w, err := newAvroWriter(ctx, cl, ValueSubject(topics[src]), EventSchema(src), eventFields(src))
		if err != nil {
			t.Fatal(err)
		}
		oneEntry := sampleEvent(src)
		oneEntry.Properties = map[string]string{"k": ""}
		oneEntry.Profile.OptIns = map[Channel]bool{ChannelSMS: false}
		sample := sampleEvent(src)
		for name, c := range map[string]struct {
			ev   Event
			maps int
		}{
			"sample": {sample, len(sample.Properties) + len(sample.Profile.OptIns)}, "one entry": {oneEntry, 1},
			"minimal": {minimalEvent(src), 0}, "empty": {Event{}, 0},
		} {
			checkEncode(t, fmt.Sprintf("%v %s", src, name), w, EventSchema(src), eventFields(src), &c.ev, c.maps)
		}
	}

	sw, err := newAvroWriter(ctx, cl, "suppressions-value", suppressionAvsc, suppressionFields)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Suppression{
		"suppressed": {Trigger: one, Action: ActionSuppressed, Reason: "cap", Policy: "email_7d", DecidedAt: ms("2025-03-01T10:00:00Z")},
		"deferred": {Trigger: one, Action: ActionDeferred, Reason: "quiet_hours", Policy: "quiet_hours",
			DecidedAt: ms("2025-03-01T21:30:00Z"), DeferredTo: ms("2025-03-02T07:00:00Z")},
	} {
		checkEncode(t, "suppression "+name, sw, suppressionAvsc, suppressionFields, &s, 1)
	}
}

// TestEncodeSortsMaps: equal values encode to equal bytes, whatever order
// Go iterates their maps in.
func TestEncodeSortsMaps(t *testing.T) {
	_, cl := newRegistry(t)
	w, err := newAvroWriter(context.Background(), cl, "triggers-value", triggerAvsc, triggerFields)
	if err != nil {
		t.Fatal(err)
	}
	tr := sampleTrigger()
	tr.Attributes = make(map[string]string)
	for i := range 40 { // more than sortedKeys' buffer on the stack
		tr.Attributes[fmt.Sprint(i)] = "v"
	}
	first := w.encode(nil, &tr)
	for range 20 {
		if b := w.encode(nil, &tr); !bytes.Equal(b, first) {
			t.Fatal("the same trigger encoded to different bytes")
		}
	}
}

// TestEncoderRefusesMismatchedSchema: an .avsc whose field types no longer
// fit the field table fails when the encoder is made.
func TestEncoderRefusesMismatchedSchema(t *testing.T) {
	_, cl := newRegistry(t)
	for _, edit := range []func([]any) []any{
		retype("stage", "long"),
		retype("priority", []any{"null", "int"}),
		retype("value", map[string]any{"type": "record", "name": "Money", "fields": []any{
			map[string]any{"name": "minor", "type": "int"}, map[string]any{"name": "currency", "type": "string"}}}),
		retype("fired_at", "long"),
		retype("caused_by", map[string]any{"type": "array", "items": "bytes"}),
	} {
		schema := editSchema(t, TriggerSchema(), edit)
		if _, err := newAvroWriter(context.Background(), cl, "t-value", schema, triggerFields); err == nil {
			t.Errorf("an encoder was made for %s", schema)
		}
	}
}

func retype(name string, typ any) func([]any) []any {
	return func(fs []any) []any {
		for _, f := range fs {
			if f := f.(map[string]any); f["name"] == name {
				f["type"] = typ
			}
		}
		return fs
	}
}
