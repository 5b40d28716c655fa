package schemas

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

// TestDecodeReusing decodes a run of records of both sources into one Event
// with one Reuse, as a processor worker does: properties that come and go,
// change names and counts, more names than Reuse keeps, and a bad record in
// between. Each result must equal a fresh Decode of the same record, so no
// property is left over from an earlier record and none is lost.
func TestDecodeReusing(t *testing.T) {
	_, cl := newRegistry(t)
	encs := encoders(t, FormatAvro, cl)
	decs := decoders(t, FormatAvro, cl)
	var (
		ev    Event
		reuse Reuse
	)
	props := []map[string]string{
		{"campaign": "spring", "ab": "b"},
		nil,
		{"campaign": "summer"},
		{"url": "https://shop.example.com/", "referrer": "", "user_agent": "ua", "campaign": "brand"},
		{},
		{"ab": "a"},
	}
	for i := range 3 * maxReusedNames {
		if i < len(props) {
			continue
		}
		// Names past what Reuse keeps: one new name per record.
		props = append(props, map[string]string{fmt.Sprintf("name-%d", i): "v", "campaign": "c"})
	}
	for i, p := range props {
		src := []Source{SourceClickstream, SourceTransaction}[i%2]
		in := sampleEvent(src)
		in.ID = fmt.Sprintf("ev-%d", i)
		in.Properties = p
		rec, err := encs[src].Encode(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			// A record cut short: truncated, and the next record
			// must not see what it left behind.
			if err := decs[src].DecodeReusing(context.Background(), rec[:len(rec)-3], &ev, &reuse); reasonOf(err) != ReasonTruncated {
				t.Fatalf("record %d cut short: got %v, want a truncated record", i, err)
			}
		}
		if err := decs[src].DecodeReusing(context.Background(), rec, &ev, &reuse); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		var fresh Event
		if err := decs[src].Decode(rec, &fresh); err != nil {
			t.Fatalf("record %d, fresh: %v", i, err)
		}
		// (ev.Items keeps its capacity between records: an empty
		// slice, not nil; normEvent evens that out.)
		if !reflect.DeepEqual(normEvent(ev), normEvent(fresh)) {
			t.Fatalf("record %d: decoded reusing\n%+v\nwant\n%+v", i, ev, fresh)
		}
		if len(p) == 0 && ev.Properties != nil {
			t.Fatalf("record %d has no properties, but Properties is %v, not nil", i, ev.Properties)
		}
	}
	if n := len(reuse.names); n != maxReusedNames {
		t.Errorf("Reuse kept %d names, want its bound %d", n, maxReusedNames)
	}
}

// TestDecodeReusingAllocates checks what reuse is for: decoding the same
// record again into the same Event allocates neither the properties map
// nor their names.
func TestDecodeReusingAllocates(t *testing.T) {
	_, cl := newRegistry(t)
	in := sampleEvent(SourceClickstream)
	rec, err := encoders(t, FormatAvro, cl)[SourceClickstream].Encode(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	dec := decoders(t, FormatAvro, cl)[SourceClickstream]
	var (
		ev    Event
		reuse Reuse
	)
	if err := dec.DecodeReusing(context.Background(), rec, &ev, &reuse); err != nil { // warm the schema cache
		t.Fatal(err)
	}
	fresh := testing.AllocsPerRun(100, func() { _ = dec.Decode(rec, &ev) })
	reused := testing.AllocsPerRun(100, func() { _ = dec.DecodeReusing(context.Background(), rec, &ev, &reuse) })
	// At least the map and one string per name fewer.
	if want := fresh - float64(1+len(in.Properties)); reused > want {
		t.Errorf("decoding reusing made %.0f allocations, decoding afresh %.0f: want at most %.0f", reused, fresh, want)
	}
	if !reflect.DeepEqual(ev.Properties, in.Properties) {
		t.Errorf("properties %v, want %v", ev.Properties, in.Properties)
	}
}
