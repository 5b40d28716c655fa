package schemas

import (
	"context"
	"testing"
)

// The hot path: one decode per input record. Run with
//
//	go test ./schemas -run '^$' -bench . -benchmem -count 10 | benchstat -
func benchmarkDecode(b *testing.B, f Format) {
	_, cl := newRegistry(b)
	enc, err := NewEventEncoder(context.Background(), SourceClickstream, f, cl, "clickstream-value")
	if err != nil {
		b.Fatal(err)
	}
	ev := sampleEvent(SourceClickstream)
	rec, err := enc.Encode(nil, &ev)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := NewDecoder(SourceClickstream, f, cl)
	if err != nil {
		b.Fatal(err)
	}
	// Into one Event with one Reuse, as a processor worker decodes.
	var reuse Reuse
	if err := dec.DecodeReusing(context.Background(), rec, &ev, &reuse); err != nil { // warm the schema cache
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if err := dec.DecodeReusing(context.Background(), rec, &ev, &reuse); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeClickstreamAvro(b *testing.B) { benchmarkDecode(b, FormatAvro) }
func BenchmarkDecodeClickstreamJSON(b *testing.B) { benchmarkDecode(b, FormatJSON) }

func benchmarkEncodeTrigger(b *testing.B, f Format) {
	_, cl := newRegistry(b)
	enc, err := NewTriggerEncoder(context.Background(), f, cl, "triggers-value")
	if err != nil {
		b.Fatal(err)
	}
	tr := sampleTrigger()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, err = enc.Encode(buf[:0], &tr)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeTriggerAvro(b *testing.B) { benchmarkEncodeTrigger(b, FormatAvro) }
func BenchmarkEncodeTriggerJSON(b *testing.B) { benchmarkEncodeTrigger(b, FormatJSON) }
