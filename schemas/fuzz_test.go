package schemas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora under testdata/fuzz")

// fuzzSetup is the registry both fuzz targets and the corpus check use. The
// schema IDs are part of the committed Avro seeds: clickstream 1,
// transaction 2, profile 3 (the current schemas), 4 an older clickstream
// schema without device, country, properties and price, 5 a clickstream
// writer with fields of every Avro type (everyTypeClickstream).
type fuzzSetup struct {
	cl   *sr.Client
	decs map[Source]*Decoder
	encs map[Source]*EventEncoder
	refs map[Source]*refReader[Event] // Avro: the goavro-based reference
}

const everyTypeID = 5

func newFuzzSetup(tb testing.TB, f Format) *fuzzSetup {
	_, cl := newRegistry(tb)
	s := &fuzzSetup{cl: cl, encs: encoders(tb, f, cl), decs: decoders(tb, f, cl)}
	if f == FormatAvro {
		for i, src := range sources {
			if id := s.encs[src].SchemaID(); id != i+1 {
				tb.Fatalf("%v registered as schema %d, want %d: the Avro seeds name IDs", src, id, i+1)
			}
		}
		for _, w := range []struct {
			subject, schema string
			id              int
		}{{"old-clickstream-value", olderClickstream(), 4}, {"every-type-value", everyTypeClickstream, everyTypeID}} {
			id, err := cl.RegisterSchema(context.Background(), w.subject, sr.Schema{Schema: w.schema}, -1, -1)
			if err != nil || id != w.id {
				tb.Fatalf("%s registered as %d (%v), want %d", w.subject, id, err, w.id)
			}
		}
		s.refs = make(map[Source]*refReader[Event])
		for _, src := range sources {
			s.refs[src] = newRefReader(cl, EventSchema(src), eventFields(src))
		}
	}
	return s
}

// olderClickstream is the clickstream schema before device, country,
// properties and price.
func olderClickstream() string {
	s := EventSchema(SourceClickstream)
	start := strings.Index(s, `{"name": "price"`)
	end := strings.Index(s, `{"name": "properties"`)
	end += strings.Index(s[end:], "\n")
	s = s[:start] + `{"name": "_", "type": "null", "default": null}` + s[end:]
	return s
}

func sourceOf(b byte) Source { return sources[int(b)%len(sources)] }

// check runs the invariants of both fuzz targets on one input:
//   - Decode never panics, and every error is a *DecodeError (the registry
//     is up, so nothing is transient);
//   - for Avro, the goavro-based reference decodes the input alike: the
//     same Event, or an error with the same Reason and Field (unless the
//     direct reader made a check goavro lacked: see disagreement);
//   - a successful decode has non-empty customer_id, event_id and type and
//     an event time, and carries its decoder's Source;
//   - encoding the decoded Event in the same format and decoding that gives
//     the same Event;
//   - decoding into a used Event with a Reuse (DecodeReusing) gives what
//     Decode gives;
//   - CustomerID agrees with Decode (checkCustomerID).
func (s *fuzzSetup) check(t *testing.T, srcByte byte, data []byte) error {
	src := sourceOf(srcByte)
	var ev Event
	err := s.decs[src].Decode(data, &ev)
	s.checkReusing(t, src, data, ev, err)
	s.checkCustomerID(t, src, data, ev, err)
	if s.refs != nil {
		want, wantErr := refDecodeEvent(s.refs[src], src, data)
		if d := disagreement(ev, want, err, wantErr, normEvent); d != "" {
			t.Fatalf("%v record % x: the reference decodes it otherwise:\n%s", src, data, d)
		}
	}
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("not a *DecodeError: %v", err)
		}
		return err
	}
	if ev.Customer == "" || ev.ID == "" || ev.Type == "" || ev.Time.IsZero() || ev.Source != src {
		t.Fatalf("decoded an invalid event: %+v", ev)
	}
	b, err := s.encs[src].Encode(nil, &ev)
	if err != nil {
		t.Fatalf("re-encoding %+v: %v", ev, err)
	}
	var again Event
	if err := s.decs[src].Decode(b, &again); err != nil {
		t.Fatalf("decoding the re-encoded event: %v\nevent %+v\nbytes %q", err, ev, b)
	}
	if !reflect.DeepEqual(normEvent(again), normEvent(ev)) {
		t.Fatalf("re-encoding changed the event\nfirst  %+v\nsecond %+v", ev, again)
	}
	return nil
}

// checkReusing decodes data as a processor worker does, into an Event
// that held another record (with properties) and with its Reuse: the
// result must be Decode's, ev or an error alike.
func (s *fuzzSetup) checkReusing(t *testing.T, src Source, data []byte, ev Event, err error) {
	prev := sampleEvent(src)
	prev.Properties = map[string]string{"campaign": "spring", "left": "over"}
	b, perr := s.encs[src].Encode(nil, &prev)
	if perr != nil {
		t.Fatal(perr)
	}
	var (
		got   Event
		reuse Reuse
	)
	if perr := s.decs[src].DecodeReusing(context.Background(), b, &got, &reuse); perr != nil {
		t.Fatal(perr)
	}
	gotErr := s.decs[src].DecodeReusing(context.Background(), data, &got, &reuse)
	switch {
	case (gotErr == nil) != (err == nil) || (err != nil && gotErr.Error() != err.Error()):
		t.Fatalf("%v record % x: decoding reusing: error %v, Decode's %v", src, data, gotErr, err)
	case err == nil && !reflect.DeepEqual(normEvent(got), normEvent(ev)):
		t.Fatalf("%v record % x: decoding reusing gave\n%+v\nDecode\n%+v", src, data, got, ev)
	}
}

func FuzzDecodeAvro(f *testing.F) {
	s := newFuzzSetup(f, FormatAvro)
	// Seeds: testdata/fuzz/FuzzDecodeAvro (see TestFuzzCorpus).
	f.Fuzz(func(t *testing.T, src byte, data []byte) { s.check(t, src, data) })
}

// FuzzDecodeTriggerAvro holds the trigger decoder to the reference, on
// the current trigger schema (ID 1) and an evolved one (ID 2): the same
// Trigger, or errors with the same Reason and Field; never a panic.
func FuzzDecodeTriggerAvro(f *testing.F) {
	s := newTriggerSetup(f)
	for _, seed := range s.seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { s.check(t, data) })
}

func FuzzDecodeJSON(f *testing.F) {
	s := newFuzzSetup(f, FormatJSON)
	// Seeds: testdata/fuzz/FuzzDecodeJSON (see TestFuzzCorpus).
	f.Fuzz(func(t *testing.T, src byte, data []byte) { s.check(t, src, data) })
}

type seed struct {
	name string // "valid-..." decodes; "bad-..." does not
	src  byte
	data []byte
}

// appendZigzag appends an Avro long.
func appendZigzag(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64((v<<1)^(v>>63)))
}

func appendAvroString(b []byte, s string) []byte {
	return append(appendZigzag(b, int64(len(s))), s...)
}

// hugeItemsRecord is a transaction (schema 2) whose items array claims
// 1<<24 elements and then ends: goavro would allocate room for all of them
// before reading one, without the block count limit.
func hugeItemsRecord() []byte {
	b := []byte{0, 0, 0, 0, 2}
	b = appendAvroString(b, "e")        // event_id
	b = appendAvroString(b, "c")        // customer_id
	b = appendZigzag(b, 1740820500000)  // event_time
	b = appendAvroString(b, "purchase") // type
	b = appendZigzag(b, 0)              // order_id: null
	b = appendZigzag(b, 100)            // amount.minor
	b = appendAvroString(b, "EUR")      // amount.currency
	return appendZigzag(b, 1<<24)       // items: block count
}

func avroSeeds(tb testing.TB, s *fuzzSetup) []seed {
	enc := func(src Source, ev Event) []byte {
		b, err := s.encs[src].Encode(nil, &ev)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	click := enc(SourceClickstream, sampleEvent(SourceClickstream))
	noCustomer := sampleEvent(SourceTransaction)
	noCustomer.Customer = ""
	// The older writer: the current record's core fields (the seven
	// optional fields after them are one byte each, null or empty), then
	// the older schema's three nullable fields (its "_" takes no bytes).
	minimal := enc(SourceClickstream, minimalEvent(SourceClickstream))
	older := append(append([]byte{0, 0, 0, 0, 4}, minimal[5:len(minimal)-7]...), 0, 0, 0)
	return []seed{
		{"valid-clickstream", 0, click},
		{"valid-clickstream-minimal", 0, minimal},
		{"valid-transaction", 1, enc(SourceTransaction, sampleEvent(SourceTransaction))},
		{"valid-profile", 2, enc(SourceProfile, sampleEvent(SourceProfile))},
		{"valid-clickstream-older-writer", 0, older},
		{"valid-clickstream-every-type", 0, everyTypeRecord(tb)},
		{"bad-magic", 0, append([]byte{1}, click[1:]...)},
		{"bad-unknown-schema", 0, append([]byte{0, 0, 0, 0, 99}, click[5:]...)},
		{"bad-truncated", 0, click[:len(click)/2]},
		{"bad-missing-customer", 1, enc(SourceTransaction, noCustomer)},
		{"bad-huge-block-count", 1, hugeItemsRecord()},
		{"bad-wrong-source", 2, click},
	}
}

// everyTypeRecord is a record of everyTypeClickstream (schema 5) with
// every optional value set, and one key in its skipped map, so that the
// seed's bytes do not depend on goavro's map order.
func everyTypeRecord(tb testing.TB) []byte {
	codec, err := goavro.NewCodec(everyTypeClickstream)
	if err != nil {
		tb.Fatal(err)
	}
	native := everyTypeRecords()[0]
	native["x_map"] = map[string]any{"a": []any{int64(1)}}
	b, err := codec.BinaryFromNative([]byte{0, 0, 0, 0, everyTypeID}, native)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func jsonSeeds() []seed {
	return []seed{
		{"valid-clickstream-millis", 0, []byte(`{"event_id":"e1","customer_id":"c1","event_time":1740820500123,"type":"add_to_cart","product_id":"sku-1","quantity":2,"price":{"minor":1999,"currency":"EUR"},"properties":{"ab":"b"}}`)},
		{"valid-clickstream-rfc3339", 0, []byte(`{"event_id":"e1","customer_id":"c\u00e9","event_time":"2025-03-01T10:15:00.5+01:00","type":"page_view","session_id":null}`)},
		{"valid-transaction", 1, []byte(`{"event_id":"e2","customer_id":"c1","event_time":1740820500000,"type":"purchase","order_id":"o1","amount":{"minor":4997,"currency":"EUR"},"items":[{"product_id":"sku-1","quantity":2,"unit_price":{"minor":1999,"currency":"EUR"}},{"product_id":"sku-2","quantity":1,"unit_price":{"minor":999,"currency":"EUR"}}],"coupon_expiry":"2025-04-01T00:00:00Z","service_date":"2025-07-14","unknown":{"x":[1,2]}}`)},
		{"valid-profile", 2, []byte(`{"event_id":"e3","customer_id":"c1","event_time":1740820500000,"birthday":"1961-12-31","time_zone":"Europe/Berlin","opt_ins":{"email":true,"sms":false}}`)},
		{"bad-syntax", 0, []byte(`{"event_id":"e1",`)},
		{"bad-missing-customer", 1, []byte(`{"event_id":"e2","event_time":1,"type":"purchase"}`)},
		{"bad-quantity-type", 0, []byte(`{"event_id":"e1","customer_id":"c1","event_time":1,"type":"t","quantity":"2"}`)},
		{"bad-date", 2, []byte(`{"event_id":"e3","customer_id":"c1","event_time":1,"birthday":"31.12.1961"}`)},
		{"bad-currency", 1, []byte(`{"event_id":"e2","customer_id":"c1","event_time":1,"type":"refund","amount":{"minor":-5,"currency":"euro"}}`)},
	}
}

func corpusFile(s seed) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", s.src, s.data)
}

func parseCorpusFile(b []byte) (src byte, data []byte, err error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "byte(") || !strings.HasPrefix(lines[2], "[]byte(") {
		return 0, nil, fmt.Errorf("not a (byte, []byte) corpus file")
	}
	r, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "byte("), ")"))
	if err != nil {
		return 0, nil, err
	}
	d, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "[]byte("), ")"))
	return byte([]rune(r)[0]), []byte(d), err
}

// TestFuzzCorpus keeps the committed seed corpora honest: every "valid-"
// seed decodes and every "bad-" seed is rejected, under the fuzz targets'
// invariants. -update-corpus rewrites them.
func TestFuzzCorpus(t *testing.T) {
	for _, c := range []struct {
		target string
		f      Format
	}{{"FuzzDecodeAvro", FormatAvro}, {"FuzzDecodeJSON", FormatJSON}} {
		t.Run(c.target, func(t *testing.T) {
			s := newFuzzSetup(t, c.f)
			dir := filepath.Join("testdata", "fuzz", c.target)
			if *updateCorpus {
				seeds := jsonSeeds()
				if c.f == FormatAvro {
					seeds = avroSeeds(t, s)
				}
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, sd := range seeds {
					if err := os.WriteFile(filepath.Join(dir, sd.name), corpusFile(sd), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var valid, bad int
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				src, data, err := parseCorpusFile(b)
				if err != nil {
					t.Fatalf("%s: %v", e.Name(), err)
				}
				err = s.check(t, src, data)
				switch {
				case strings.HasPrefix(e.Name(), "valid-"):
					valid++
					if err != nil {
						t.Errorf("%s: %v", e.Name(), err)
					}
				case strings.HasPrefix(e.Name(), "bad-"):
					bad++
					if err == nil {
						t.Errorf("%s decoded", e.Name())
					}
				}
			}
			if valid < 3 || bad < 3 {
				t.Errorf("%d valid and %d bad seeds in %s; want at least 3 of each", valid, bad, dir)
			}
		})
	}
}

// TestHugeBlockCount: a record that claims a huge array is rejected without
// allocating room for it.
func TestHugeBlockCount(t *testing.T) {
	s := newFuzzSetup(t, FormatAvro)
	dec := s.decs[SourceTransaction]
	var ev Event
	rec := hugeItemsRecord()
	dec.Decode(rec, &ev) // warm the schema cache
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := dec.Decode(rec, &ev)
	runtime.ReadMemStats(&after)
	if reasonOf(err) != ReasonMalformedAvro {
		t.Errorf("got %v, want malformed_avro (a block over the item limit)", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("decoding allocated %d MB", alloc>>20)
	}
	if !bytes.HasPrefix(rec, []byte{0, 0, 0, 0, 2}) {
		t.Fatal("seed framing")
	}
}
