package schemas

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

func TestEventRoundTrip(t *testing.T) {
	_, cl := newRegistry(t)
	for _, f := range []Format{FormatAvro, FormatJSON} {
		encs, decs := encoders(t, f, cl), decoders(t, f, cl)
		for _, src := range sources {
			for name, in := range map[string]Event{"full": sampleEvent(src), "minimal": minimalEvent(src)} {
				t.Run(fmt.Sprintf("%s/%s/%s", f, src, name), func(t *testing.T) {
					b, err := encs[src].Encode([]byte("prefix"), &in)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(string(b), "prefix") {
						t.Fatalf("Encode did not append to dst: %q", b)
					}
					var out Event
					out.Items = make([]Item, 5) // a reused Event: Decode must reset it
					out.Properties = map[string]string{"stale": "x"}
					if err := decs[src].Decode(b[len("prefix"):], &out); err != nil {
						t.Fatalf("%v\n%s", err, b)
					}
					if got, want := normEvent(out), normEvent(in); !reflect.DeepEqual(got, want) {
						t.Errorf("round trip changed the event\n got %+v\nwant %+v", got, want)
					}
				})
			}
		}
	}
}

func TestTriggerRoundTrip(t *testing.T) {
	_, cl := newRegistry(t)
	for _, f := range []Format{FormatAvro, FormatJSON} {
		enc, err := NewTriggerEncoder(context.Background(), f, cl, ValueSubject("triggers"))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewTriggerDecoder(f, cl)
		if err != nil {
			t.Fatal(err)
		}
		for name, in := range map[string]Trigger{
			"full":    sampleTrigger(),
			"minimal": {ID: "t", Rule: "r", Customer: "c", FiredAt: ms("2025-01-01T00:00:00Z")},
		} {
			t.Run(fmt.Sprintf("%s/%s", f, name), func(t *testing.T) {
				b, err := enc.Encode(nil, &in)
				if err != nil {
					t.Fatal(err)
				}
				out := Trigger{CausedBy: []string{"stale"}}
				if err := dec.Decode(b, &out); err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				if got, want := normTrigger(out), normTrigger(in); !reflect.DeepEqual(got, want) {
					t.Errorf("round trip changed the trigger\n got %+v\nwant %+v", got, want)
				}
				var once Trigger
				if err := DecodeTrigger(context.Background(), f, cl, b, &once); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(normTrigger(once), normTrigger(in)) {
					t.Errorf("DecodeTrigger differs: %+v", once)
				}
			})
		}
	}
}

// TestTriggerJSONShape pins the JSON contract for downstream senders.
func TestTriggerJSONShape(t *testing.T) {
	enc, err := NewTriggerEncoder(context.Background(), FormatJSON, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	tr := sampleTrigger()
	tr.Attributes = map[string]string{"b": "2", "a": "1"}
	b, err := enc.Encode(nil, &tr)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"trigger_id":"c-42/cart_abandoned/3/1/ev-1","rule_id":"cart_abandoned","rule_version":3,` +
		`"kind":"cart_abandoned","stage":1,"channel":"email","priority":5,"customer_id":"c-42",` +
		`"fired_at":"2025-03-01T10:15:00.007Z","due_at":"2025-03-01T10:15:00.000Z","expires_at":"2025-03-02T10:15:00.000Z",` +
		`"caused_by":["ev-1","ev-5"],"attributes":{"a":"1","b":"2"},` +
		`"items":[{"product_id":"sku-1","quantity":2,"unit_price":{"minor":1999,"currency":"EUR"}}],` +
		`"value":{"minor":3998,"currency":"EUR"}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if !json.Valid(b) {
		t.Error("not valid JSON")
	}
	tr = Trigger{ID: "t", Rule: "r", Customer: "c"}
	b, _ = enc.Encode(nil, &tr)
	if !strings.Contains(string(b), `"caused_by":[],"attributes":{},"items":[],"value":null`) {
		t.Errorf("empty collections and null value: %s", b)
	}
}

// TestJSONStringEscaping compares the hand-written string encoder with
// encoding/json on awkward strings.
func TestJSONStringEscaping(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ slash/", "\x00\x01\x1f\x7f", "tab\tnl\ncr\r", "é€😀", "bad\xffutf8\xc3", "\u2028\u2029"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q encodes to invalid JSON %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Errorf("%q: decodes back as %q, want %q", s, back, want)
		}
	}
}

func TestJSONTimestampsAndDates(t *testing.T) {
	dec, _ := NewDecoder(SourceTransaction, FormatJSON, nil)
	base := `"event_id":"e","customer_id":"c","type":"purchase","amount":{"minor":100,"currency":"EUR"}`
	for _, c := range []struct {
		json     string
		wantTime time.Time
		wantDate Date
	}{
		{`"event_time":1740820500123`, ms("2025-03-01T09:15:00.123Z"), Date{}},
		{`"event_time":"2025-03-01T09:15:00.123Z"`, ms("2025-03-01T09:15:00.123Z"), Date{}},
		{`"event_time":"2025-03-01T10:15:00.123456+01:00"`, ms("2025-03-01T09:15:00.123Z"), Date{}}, // to UTC, to ms
		{`"event_time":1,"service_date":"1969-07-20"`, time.UnixMilli(1).UTC(), Date{1969, time.July, 20}},
		{`"event_time":1,"service_date":null,"coupon_expiry":null`, time.UnixMilli(1).UTC(), Date{}},
	} {
		var ev Event
		if err := dec.Decode([]byte("{"+base+","+c.json+"}"), &ev); err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		if !ev.Time.Equal(c.wantTime) || ev.Time.Location() != time.UTC || ev.ServiceDate != c.wantDate {
			t.Errorf("%s: got %v %v", c.json, ev.Time, ev.ServiceDate)
		}
	}
}

// writeWith encodes v with a writer schema through hamba/avro (an
// implementation independent of goavro) and frames it with the ID the
// registry gives that schema.
func writeWith(t *testing.T, cl *sr.Client, subject, schema string, v any) []byte {
	t.Helper()
	id, err := cl.RegisterSchema(context.Background(), subject, sr.Schema{Schema: schema}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, err := avro.Marshal(parseHamba(t, schema), v)
	if err != nil {
		t.Fatal(err)
	}
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(nil, id, nil)
	return append(b, body...)
}

type hMoney struct {
	Minor    int64  `avro:"minor"`
	Currency string `avro:"currency"`
}

type hClick struct {
	EventID    string            `avro:"event_id"`
	CustomerID string            `avro:"customer_id"`
	EventTime  time.Time         `avro:"event_time"`
	Type       string            `avro:"type"`
	SessionID  *string           `avro:"session_id"`
	ProductID  *string           `avro:"product_id"`
	Quantity   *int32            `avro:"quantity"`
	Price      *hMoney           `avro:"price"`
	Device     *string           `avro:"device"`
	Country    *string           `avro:"country"`
	Properties map[string]string `avro:"properties"`
}

type hItem struct {
	ProductID string `avro:"product_id"`
	Quantity  int32  `avro:"quantity"`
	UnitPrice hMoney `avro:"unit_price"`
}

type hTransaction struct {
	EventID         string            `avro:"event_id"`
	CustomerID      string            `avro:"customer_id"`
	EventTime       time.Time         `avro:"event_time"`
	Type            string            `avro:"type"`
	OrderID         *string           `avro:"order_id"`
	Amount          hMoney            `avro:"amount"`
	Items           []hItem           `avro:"items"`
	PaymentMethod   *string           `avro:"payment_method"`
	CardFingerprint *string           `avro:"card_fingerprint"`
	Country         *string           `avro:"country"`
	CouponID        *string           `avro:"coupon_id"`
	CouponExpiry    *time.Time        `avro:"coupon_expiry"`
	ServiceDate     *time.Time        `avro:"service_date"`
	ContractEnd     *time.Time        `avro:"contract_end"`
	Properties      map[string]string `avro:"properties"`
}

type hProfile struct {
	EventID     string          `avro:"event_id"`
	CustomerID  string          `avro:"customer_id"`
	EventTime   time.Time       `avro:"event_time"`
	Type        string          `avro:"type"`
	Birthday    *time.Time      `avro:"birthday"`
	SignupDate  *time.Time      `avro:"signup_date"`
	TimeZone    *string         `avro:"time_zone"`
	Country     *string         `avro:"country"`
	OptIns      map[string]bool `avro:"opt_ins"`
	ContractEnd *time.Time      `avro:"contract_end"`
}

type hTrigger struct {
	TriggerID   string            `avro:"trigger_id"`
	RuleID      string            `avro:"rule_id"`
	RuleVersion int32             `avro:"rule_version"`
	Kind        string            `avro:"kind"`
	Stage       int32             `avro:"stage"`
	Channel     string            `avro:"channel"`
	Priority    int32             `avro:"priority"`
	CustomerID  string            `avro:"customer_id"`
	FiredAt     time.Time         `avro:"fired_at"`
	DueAt       time.Time         `avro:"due_at"`
	ExpiresAt   time.Time         `avro:"expires_at"`
	CausedBy    []string          `avro:"caused_by"`
	Attributes  map[string]string `avro:"attributes"`
	Items       []hItem           `avro:"items"`
	Value       *hMoney           `avro:"value"`
}

func ptr[T any](v T) *T { return &v }

func dateTime(d Date) *time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
	return &t
}

func hItems(items []Item) []hItem {
	var out []hItem
	for _, it := range items {
		out = append(out, hItem{it.ProductID, it.Quantity, hMoney(it.UnitPrice)})
	}
	return out
}

// hambaRecord is the sample of src as the released schema's producers
// would send it.
func hambaRecord(src Source) any {
	ev := sampleEvent(src)
	switch src {
	case SourceClickstream:
		return hClick{ev.ID, string(ev.Customer), ev.Time, string(ev.Type), ptr(ev.SessionID), ptr(ev.ProductID),
			ptr(ev.Quantity), ptr(hMoney(ev.Price)), ptr(ev.Device), ptr(ev.Country), ev.Properties}
	case SourceTransaction:
		return hTransaction{ev.ID, string(ev.Customer), ev.Time, string(ev.Type), ptr(ev.OrderID), hMoney(ev.Amount),
			hItems(ev.Items), ptr(ev.PaymentMethod), ptr(ev.CardFingerprint), ptr(ev.Country), ptr(ev.CouponID),
			ptr(ev.CouponExpiry), dateTime(ev.ServiceDate), dateTime(ev.ContractEnd), ev.Properties}
	case SourceProfile:
		optIns := map[string]bool{}
		for k, v := range ev.Profile.OptIns {
			optIns[string(k)] = v
		}
		p := ev.Profile
		return hProfile{ev.ID, string(ev.Customer), ev.Time, string(ev.Type), dateTime(p.Birthday), dateTime(p.SignupDate),
			ptr(p.TimeZone), ptr(p.Country), optIns, dateTime(p.ContractEnd)}
	}
	panic(src)
}

var schemaFiles = map[Source]string{
	SourceClickstream: "clickstream.avsc",
	SourceTransaction: "transaction.avsc",
	SourceProfile:     "profile.avsc",
}

// TestDecodeReleasedWriter: records written by producers on the released
// schemas decode with today's decoder.
func TestDecodeReleasedWriter(t *testing.T) {
	_, cl := newRegistry(t)
	decs := decoders(t, FormatAvro, cl)
	for _, src := range sources {
		t.Run(src.String(), func(t *testing.T) {
			b := writeWith(t, cl, "released-"+src.String(), released(t, schemaFiles[src]), hambaRecord(src))
			var ev Event
			if err := decs[src].Decode(b, &ev); err != nil {
				t.Fatal(err)
			}
			if got, want := normEvent(ev), normEvent(sampleEvent(src)); !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
	t.Run("trigger", func(t *testing.T) {
		tr := sampleTrigger()
		h := hTrigger{tr.ID, string(tr.Rule), tr.RuleVersion, tr.Kind, tr.Stage, string(tr.Channel), tr.Priority,
			string(tr.Customer), tr.FiredAt, tr.DueAt, tr.ExpiresAt, tr.CausedBy, tr.Attributes, hItems(tr.Items), ptr(hMoney(tr.Value))}
		b := writeWith(t, cl, "released-trigger", released(t, "trigger.avsc"), h)
		var got Trigger
		if err := DecodeTrigger(context.Background(), FormatAvro, cl, b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normTrigger(got), normTrigger(tr)) {
			t.Errorf("\n got %+v\nwant %+v", got, tr)
		}
	})
}

// TestReleasedReaderReadsCurrentTrigger: a downstream sender built on the
// released trigger schema (here: hamba with the released schema as reader)
// reads what this version writes.
func TestReleasedReaderReadsCurrentTrigger(t *testing.T) {
	_, cl := newRegistry(t)
	enc, err := NewTriggerEncoder(context.Background(), FormatAvro, cl, "triggers-value")
	if err != nil {
		t.Fatal(err)
	}
	tr := sampleTrigger()
	b, err := enc.Encode(nil, &tr)
	if err != nil {
		t.Fatal(err)
	}
	if id := int(binary.BigEndian.Uint32(b[1:5])); b[0] != 0 || id != enc.SchemaID() {
		t.Fatalf("framing: % x, schema ID %d", b[:5], enc.SchemaID())
	}
	var h hTrigger
	if err := avro.Unmarshal(parseHamba(t, released(t, "trigger.avsc")), b[5:], &h); err != nil {
		t.Fatal(err)
	}
	if h.TriggerID != tr.ID || !h.FiredAt.Equal(tr.FiredAt) || h.Value == nil || h.Value.Minor != 3998 || len(h.Items) != 1 {
		t.Errorf("released reader got %+v", h)
	}
}

// TestDecodeEvolvedWriters: writers on older and newer schemas decode by
// field name; fields the writer lacks are zero, fields the reader lacks are
// skipped, int is promoted to long, a field the writer made non-nullable
// still maps.
func TestDecodeEvolvedWriters(t *testing.T) {
	_, cl := newRegistry(t)
	dec, _ := NewDecoder(SourceClickstream, FormatAvro, cl)
	rel := released(t, "clickstream.avsc")

	older := editSchema(t, rel, func(fs []any) []any {
		for _, name := range []string{"device", "country", "properties", "price"} {
			fs = withoutField(name)(fs)
		}
		return fs
	})
	newer := editSchema(t, rel, func(fs []any) []any {
		for _, f := range fs {
			f := f.(map[string]any)
			switch f["name"] {
			case "quantity":
				f["type"], f["default"] = "int", 0 // no longer nullable
			case "price":
				f["type"] = []any{"null", map[string]any{"type": "record", "name": "Money", "fields": []any{
					map[string]any{"name": "minor", "type": "int"}, // promoted to long by the reader
					map[string]any{"name": "currency", "type": "string"},
					map[string]any{"name": "note", "type": "string", "default": ""},
				}}}
			}
		}
		return append([]any{map[string]any{"name": "referrer", "type": []any{"null", "string"}, "default": nil}}, fs...)
	})

	type hMoneyV2 struct {
		Minor    int32  `avro:"minor"`
		Currency string `avro:"currency"`
		Note     string `avro:"note"`
	}
	type hClickV2 struct {
		Referrer   *string           `avro:"referrer"`
		EventID    string            `avro:"event_id"`
		CustomerID string            `avro:"customer_id"`
		EventTime  time.Time         `avro:"event_time"`
		Type       string            `avro:"type"`
		SessionID  *string           `avro:"session_id"`
		ProductID  *string           `avro:"product_id"`
		Quantity   int32             `avro:"quantity"`
		Price      *hMoneyV2         `avro:"price"`
		Device     *string           `avro:"device"`
		Country    *string           `avro:"country"`
		Properties map[string]string `avro:"properties"`
	}
	full := sampleEvent(SourceClickstream)

	var ev Event
	if err := dec.Decode(writeWith(t, cl, "old", older, hambaRecord(SourceClickstream)), &ev); err != nil {
		t.Fatal(err)
	}
	want := full
	want.Device, want.Country, want.Properties, want.Price = "", "", nil, Money{}
	if !reflect.DeepEqual(normEvent(ev), want) {
		t.Errorf("older writer:\n got %+v\nwant %+v", ev, want)
	}

	h := hClickV2{ptr("newsletter"), full.ID, string(full.Customer), full.Time, string(full.Type), ptr(full.SessionID),
		ptr(full.ProductID), full.Quantity, &hMoneyV2{int32(full.Price.Minor), full.Price.Currency, "x"},
		ptr(full.Device), ptr(full.Country), full.Properties}
	if err := dec.Decode(writeWith(t, cl, "new", newer, h), &ev); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normEvent(ev), full) {
		t.Errorf("newer writer:\n got %+v\nwant %+v", ev, full)
	}
}

func TestDecodeErrors(t *testing.T) {
	reg, cl := newRegistry(t)
	encs := encoders(t, FormatAvro, cl)
	jencs := encoders(t, FormatJSON, nil)
	avroOf := func(ev Event) []byte {
		b, err := encs[ev.Source].Encode(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jsonOf := func(ev Event) []byte {
		b, _ := jencs[ev.Source].Encode(nil, &ev)
		return b
	}
	with := func(src Source, edit func(*Event)) Event {
		ev := sampleEvent(src)
		edit(&ev)
		return ev
	}
	good := avroOf(sampleEvent(SourceClickstream))
	// The core fields, then a session_id union index the schema lacks.
	badUnion := appendAvroString(appendAvroString(append([]byte(nil), good[:5]...), "e"), "c")
	badUnion = appendZigzag(appendAvroString(appendZigzag(badUnion, 1740820500000), "page_view"), 7)

	// A writer whose customer_id is a long.
	type hLongID struct {
		EventID    string    `avro:"event_id"`
		CustomerID int64     `avro:"customer_id"`
		EventTime  time.Time `avro:"event_time"`
		Type       string    `avro:"type"`
	}
	wrong := writeWith(t, cl, "wrong-value", strings.Replace(EventSchema(SourceClickstream),
		`{"name": "customer_id", "type": "string"`, `{"name": "customer_id", "type": "long"`, 1),
		hLongID{"e", 42, ms("2025-01-01T00:00:00Z"), "page_view"})
	jsonID, _, err := reg.RegisterSchema("json-value", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON})
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		src    Source
		f      Format
		value  []byte
		reason string
		field  string
	}{
		{"empty", SourceClickstream, FormatAvro, nil, ReasonBadFraming, ""},
		{"bad magic", SourceClickstream, FormatAvro, append([]byte{1}, good[1:]...), ReasonBadFraming, ""},
		{"short header", SourceClickstream, FormatAvro, good[:4], ReasonBadFraming, ""},
		{"unknown schema ID", SourceClickstream, FormatAvro, append([]byte{0, 0, 0, 0x3, 0xe7}, good[5:]...), ReasonUnknownSchema, ""},
		{"truncated", SourceClickstream, FormatAvro, good[:len(good)-1], ReasonTruncated, ""},
		{"header only", SourceClickstream, FormatAvro, good[:5], ReasonTruncated, ""},
		{"trailing bytes", SourceClickstream, FormatAvro, append(append([]byte(nil), good...), 0), ReasonTrailingBytes, ""},
		{"union index out of range", SourceClickstream, FormatAvro, badUnion, ReasonMalformedAvro, ""},
		{"field of the wrong type", SourceClickstream, FormatAvro, wrong, ReasonWrongSchema, "customer_id"},
		{"another topic's record", SourceProfile, FormatAvro, good, ReasonWrongSchema, ""},
		{"not an Avro schema", SourceClickstream, FormatAvro, binary.BigEndian.AppendUint32([]byte{0}, uint32(jsonID)), ReasonWrongSchema, ""},
		{"missing customer", SourceTransaction, FormatAvro, avroOf(with(SourceTransaction, func(e *Event) { e.Customer = "" })), ReasonMissingCustomerID, "customer_id"},
		{"missing event ID", SourceProfile, FormatAvro, avroOf(with(SourceProfile, func(e *Event) { e.ID = "" })), ReasonMissingEventID, "event_id"},
		{"missing type", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Type = "" })), ReasonMissingType, "type"},
		{"epoch event time", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Time = time.UnixMilli(0) })), ReasonBadField, "event_time"},
		{"year 10000", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Time = ms("9999-12-31T23:59:59Z").Add(time.Second) })), ReasonBadField, "event_time"},
		{"bad currency", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Price.Currency = "eur" })), ReasonBadField, "price"},
		{"amount without currency", SourceTransaction, FormatAvro, avroOf(with(SourceTransaction, func(e *Event) { e.Amount.Currency = "" })), ReasonBadField, "amount"},
		{"item currency", SourceTransaction, FormatAvro, avroOf(with(SourceTransaction, func(e *Event) { e.Items[1].UnitPrice.Currency = "EURO" })), ReasonBadField, "items[1].unit_price"},
		{"add_to_cart without product", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.ProductID = "" })), ReasonBadField, "product_id"},
		{"add_to_cart without quantity", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Quantity = 0 })), ReasonBadField, "quantity"},
		{"add_to_cart negative quantity", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Quantity = -2 })), ReasonBadField, "quantity"},
		{"remove_from_cart without product", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Type, e.ProductID = RemoveFromCart, "" })), ReasonBadField, "product_id"},
		{"remove_from_cart negative quantity", SourceClickstream, FormatAvro, avroOf(with(SourceClickstream, func(e *Event) { e.Type, e.Quantity = RemoveFromCart, -1 })), ReasonBadField, "quantity"},
		{"date out of range", SourceProfile, FormatAvro, avroOf(with(SourceProfile, func(e *Event) { e.Profile.Birthday = Date{10000, 1, 1} })), ReasonBadField, "birthday"},

		{"json syntax", SourceClickstream, FormatJSON, []byte(`{"event_id":`), ReasonInvalidJSON, ""},
		{"json not an object", SourceClickstream, FormatJSON, []byte(`["event_id"]`), ReasonInvalidJSON, ""},
		{"json trailing", SourceClickstream, FormatJSON, append(jsonOf(sampleEvent(SourceClickstream)), '}'), ReasonInvalidJSON, ""},
		{"json empty", SourceClickstream, FormatJSON, nil, ReasonInvalidJSON, ""},
		{"json wrong type", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":1,"quantity":"2"}`), ReasonBadField, "quantity"},
		{"json int overflow", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":1,"quantity":4294967296}`), ReasonBadField, "quantity"},
		{"json bad timestamp", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":"yesterday"}`), ReasonBadField, ""},
		{"json float timestamp", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":1.5e12}`), ReasonBadField, ""},
		{"json bad date", SourceTransaction, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":1,"service_date":"2025-02-30"}`), ReasonBadField, ""},
		{"json missing event time", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t"}`), ReasonBadField, "event_time"},
		{"json missing customer", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","type":"t","event_time":1}`), ReasonMissingCustomerID, "customer_id"},
		{"json null customer", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":null,"type":"t","event_time":1}`), ReasonMissingCustomerID, "customer_id"},
		{"json missing event ID", SourceClickstream, FormatJSON, []byte(`{"customer_id":"c","type":"t","event_time":1}`), ReasonMissingEventID, "event_id"},
		{"json missing type", SourceTransaction, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","event_time":1}`), ReasonMissingType, "type"},
		{"json add_to_cart without product", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"add_to_cart","event_time":1,"quantity":1}`), ReasonBadField, "product_id"},
		{"json add_to_cart null product", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"add_to_cart","event_time":1,"product_id":null,"quantity":1}`), ReasonBadField, "product_id"},
		{"json add_to_cart quantity 0", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"add_to_cart","event_time":1,"product_id":"p","quantity":0}`), ReasonBadField, "quantity"},
		{"json add_to_cart quantity absent", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"add_to_cart","event_time":1,"product_id":"p"}`), ReasonBadField, "quantity"},
		{"json add_to_cart quantity negative", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"add_to_cart","event_time":1,"product_id":"p","quantity":-1}`), ReasonBadField, "quantity"},
		{"json remove_from_cart without product", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"remove_from_cart","event_time":1}`), ReasonBadField, "product_id"},
		{"json price without currency", SourceClickstream, FormatJSON, []byte(`{"event_id":"e","customer_id":"c","type":"t","event_time":1,"price":{"minor":5}}`), ReasonBadField, "price"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dec, err := NewDecoder(c.src, c.f, cl)
			if err != nil {
				t.Fatal(err)
			}
			var ev Event
			err = dec.Decode(c.value, &ev)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v (%T), want a *DecodeError", err, err)
			}
			if de.Reason != c.reason || de.Field != c.field {
				t.Errorf("got reason %q field %q (%v), want %q %q", de.Reason, de.Field, err, c.reason, c.field)
			}
			if ev.Source != c.src {
				t.Errorf("Source %v, want %v", ev.Source, c.src)
			}
		})
	}
}

// TestProfileTypeDefault: a profile without a type is an update, as the
// schema's default says.
func TestProfileTypeDefault(t *testing.T) {
	dec, _ := NewDecoder(SourceProfile, FormatJSON, nil)
	var ev Event
	if err := dec.Decode([]byte(`{"event_id":"e","customer_id":"c","event_time":1,"time_zone":"Asia/Tokyo","opt_ins":{"email":true}}`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != ProfileUpdate || ev.Profile.TimeZone != "Asia/Tokyo" || !ev.Profile.OptIns[ChannelEmail] {
		t.Errorf("got %+v", ev)
	}
}

// TestRegistryDownIsNotADecodeError: a record must not be dead-lettered
// because the registry is unreachable.
func TestRegistryDownIsNotADecodeError(t *testing.T) {
	reg, cl := newRegistry(t)
	enc, _ := NewEventEncoder(context.Background(), SourceClickstream, FormatAvro, cl, "clickstream-value")
	ev := sampleEvent(SourceClickstream)
	b, _ := enc.Encode(nil, &ev)
	reg.Close()
	dec, _ := NewDecoder(SourceClickstream, FormatAvro, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := dec.DecodeContext(ctx, b, &ev)
	var de *DecodeError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("got %v, want a transient error", err)
	}
}

// TestConcurrentDecode shares one Decoder between workers that meet new
// schema IDs at the same time (run with -race).
func TestConcurrentDecode(t *testing.T) {
	_, cl := newRegistry(t)
	rel := released(t, "clickstream.avsc")
	var records [][]byte
	for i := range 4 {
		schema := editSchema(t, rel, func(fs []any) []any {
			return append(fs, map[string]any{"name": fmt.Sprintf("extra%d", i), "type": "string", "default": ""})
		})
		records = append(records, writeWith(t, cl, fmt.Sprintf("v%d", i), schema, hambaRecord(SourceClickstream)))
	}
	dec, _ := NewDecoder(SourceClickstream, FormatAvro, cl)
	want := normEvent(sampleEvent(SourceClickstream))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			var ev Event
			for i := range 200 {
				if err := dec.Decode(records[(w+i)%len(records)], &ev); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(normEvent(ev), want) {
					errs <- fmt.Errorf("got %+v", ev)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewDecoderArgs(t *testing.T) {
	if _, err := NewDecoder(SourceClickstream, FormatAvro, nil); err == nil {
		t.Error("avro without a registry client")
	}
	if _, err := NewDecoder(SourceUnknown, FormatJSON, nil); err == nil {
		t.Error("unknown source")
	}
	if _, err := NewDecoder(SourceClickstream, "xml", nil); err == nil {
		t.Error("unknown format")
	}
	if _, err := ParseFormat("AVRO"); err == nil {
		t.Error("ParseFormat is case-sensitive")
	}
	if f, err := ParseFormat("json"); err != nil || f != FormatJSON {
		t.Error(f, err)
	}
	if _, err := NewTriggerEncoder(context.Background(), FormatAvro, nil, "t-value"); err == nil {
		t.Error("avro encoder without a registry client")
	}
}

// TestEventKeyIsPinned: event keys are stored in customer records (the
// dedupe window), so the function must never change. The vectors are
// 64-bit FNV-1a's published ones.
func TestEventKeyIsPinned(t *testing.T) {
	for id, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := EventKey(id); got != want {
			t.Errorf("EventKey(%q) = %#x, want %#x", id, got, want)
		}
	}
}

// TestCartEventsValid: the cart events that meet the contract decode: a
// remove_from_cart without a quantity (the whole line) and an add_to_cart
// with one.
func TestCartEventsValid(t *testing.T) {
	dec, _ := NewDecoder(SourceClickstream, FormatJSON, nil)
	for _, c := range []struct {
		value string
		typ   EventType
		qty   int32
	}{
		{`{"event_id":"e","customer_id":"c","event_time":1,"type":"remove_from_cart","product_id":"p"}`, RemoveFromCart, 0},
		{`{"event_id":"e","customer_id":"c","event_time":1,"type":"remove_from_cart","product_id":"p","quantity":2}`, RemoveFromCart, 2},
		{`{"event_id":"e","customer_id":"c","event_time":1,"type":"add_to_cart","product_id":"p","quantity":3}`, AddToCart, 3},
		{`{"event_id":"e","customer_id":"c","event_time":1,"type":"page_view"}`, PageView, 0},
	} {
		var ev Event
		if err := dec.Decode([]byte(c.value), &ev); err != nil {
			t.Errorf("%s: %v", c.value, err)
			continue
		}
		if ev.Type != c.typ || ev.Quantity != c.qty || (c.typ != PageView && ev.ProductID != "p") {
			t.Errorf("%s: got %+v", c.value, ev)
		}
	}
}
