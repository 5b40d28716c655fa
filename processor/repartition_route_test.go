package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/triggerd/triggerd/schemas"
)

// routeSetup is a raw clickstream route in format f, with an in-process
// schema registry for Avro, and a record as the workload writes it
// (four properties, keyed by session, with a header).
func routeSetup(tb testing.TB, f schemas.Format) (*route, *schemas.EventEncoder) {
	tb.Helper()
	reg := srfake.New()
	tb.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := schemas.NewEventEncoder(context.Background(), schemas.SourceClickstream, f, cl, schemas.ValueSubject("clicks"))
	if err != nil {
		tb.Fatal(err)
	}
	dec, err := schemas.NewDecoder(schemas.SourceClickstream, f, cl)
	if err != nil {
		tb.Fatal(err)
	}
	return &route{raw: "clicks", internal: "clicks-internal", dec: dec}, enc
}

func rawRecord(tb testing.TB, enc *schemas.EventEncoder, ev schemas.Event) *kgo.Record {
	tb.Helper()
	v, err := enc.Encode(nil, &ev)
	if err != nil {
		tb.Fatal(err)
	}
	return &kgo.Record{Topic: "clicks", Partition: 3, Offset: 7, Key: []byte("session-1"), Value: v, Timestamp: ev.Time,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}}
}

func sampleClick() schemas.Event {
	return schemas.Event{Source: schemas.SourceClickstream, ID: "evt-000123456", Customer: "c-004711",
		Type: schemas.AddToCart, Time: time.UnixMilli(1740820500123).UTC(), SessionID: "s-00042", ProductID: "sku-1234",
		Quantity: 2, Price: schemas.Money{Minor: 1999, Currency: "EUR"}, Device: "ios", Country: "DE",
		Properties: map[string]string{"campaign": "spring", "ab": "b", "referrer": "newsletter", "page": "/p/sku-1234"}}
}

// routedFullDecode is how the stage read a raw record's customer ID before
// CustomerID: a full decode into the route's one Event, with its Reuse.
// Kept for the benchmark's comparison.
func routedFullDecode(rt *route, ev *schemas.Event, reuse *schemas.Reuse, rec *kgo.Record) (*kgo.Record, error) {
	if err := rt.dec.DecodeReusing(context.Background(), rec.Value, ev, reuse); err != nil {
		return nil, err
	}
	return rt.internalRecord(rec, []byte(ev.Customer)), nil
}

// TestRouted: the internal record is the raw one keyed by customer ID, with
// the raw partition header last; a record the worker would reject for a
// field other than the customer ID is routed (the worker dead-letters it);
// one without a customer ID gets the full decoder's reason.
func TestRouted(t *testing.T) {
	for _, f := range []schemas.Format{schemas.FormatJSON, schemas.FormatAvro} {
		t.Run(string(f), func(t *testing.T) {
			rt, enc := routeSetup(t, f)
			rec := rawRecord(t, enc, sampleClick())
			out, err := rt.routed(rec)
			if err != nil {
				t.Fatal(err)
			}
			if out.Topic != "clicks-internal" || string(out.Key) != "c-004711" || string(out.Value) != string(rec.Value) ||
				!out.Timestamp.Equal(rec.Timestamp) || len(out.Headers) != 2 || out.Headers[0].Key != "trace" ||
				out.Headers[1].Key != rawPartitionHeader || string(out.Headers[1].Value) != "3" {
				t.Errorf("routed %+v", out)
			}

			noEventID := sampleClick()
			noEventID.ID = ""
			bad := rawRecord(t, enc, noEventID)
			out, err = rt.routed(bad)
			if err != nil || string(out.Key) != "c-004711" {
				t.Errorf("a record with its customer ID and without an event ID: %v, %v; want it routed", out, err)
			}
			var ev schemas.Event
			if err := rt.dec.Decode(bad.Value, &ev); reasonOf(err) != schemas.ReasonMissingEventID {
				t.Errorf("the worker's decode of it: %v, want %s", err, schemas.ReasonMissingEventID)
			}

			noCustomer := sampleClick()
			noCustomer.Customer = ""
			if _, err := rt.routed(rawRecord(t, enc, noCustomer)); reasonOf(err) != schemas.ReasonMissingCustomerID {
				t.Errorf("a record without a customer ID: %v, want %s", err, schemas.ReasonMissingCustomerID)
			}
		})
	}
}

func reasonOf(err error) string {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// BenchmarkRouted is the repartition stage's work per raw record short of
// the produce: read the customer ID and build the internal record. The
// full-decode sub-benchmarks are the stage before CustomerID, run beside
// it so that before and after come from the same run:
//
//	go test ./processor -run '^$' -bench BenchmarkRouted -benchmem -count 5
func BenchmarkRouted(b *testing.B) {
	for _, f := range []schemas.Format{schemas.FormatJSON, schemas.FormatAvro} {
		rt, enc := routeSetup(b, f)
		rec := rawRecord(b, enc, sampleClick())
		b.Run(string(f)+"/full-decode", func(b *testing.B) {
			var (
				ev    schemas.Event
				reuse schemas.Reuse
			)
			if _, err := routedFullDecode(rt, &ev, &reuse, rec); err != nil { // warm the schema cache
				b.Fatal(err)
			}
			b.SetBytes(int64(len(rec.Value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := routedFullDecode(rt, &ev, &reuse, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(f)+"/customer-id", func(b *testing.B) {
			if _, err := rt.routed(rec); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(rec.Value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.routed(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
