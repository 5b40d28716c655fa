package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// checkCustomerID holds Decoder.CustomerID to Decode (ev and err, Decode's
// result on data), as the repartition stage relies on it:
//   - Decode accepts: CustomerID gives Decode's customer ID;
//   - CustomerID fails: with Decode's error, word for word;
//   - CustomerID gives an ID where Decode fails: the ID is the one
//     encoding/json reads for customer_id alone (JSON) or the one Decode
//     read before it failed (Avro), and Decode's reason is not about the
//     customer ID, the framing, the schema or (JSON) the syntax: those the
//     stage must still dead-letter itself.
//
// The fuzz targets run it on every input (check), so the committed corpora
// and whatever -fuzz finds are held to it.
func (s *fuzzSetup) checkCustomerID(t *testing.T, src Source, data []byte, ev Event, err error) {
	t.Helper()
	f := s.decs[src].f
	id, idErr := s.decs[src].CustomerID(context.Background(), data)
	switch {
	case err == nil && idErr != nil:
		t.Fatalf("%v %s record %q: Decode gives customer %q, CustomerID fails: %v", src, f, data, ev.Customer, idErr)
	case err == nil && string(id) != string(ev.Customer):
		t.Fatalf("%v %s record %q: CustomerID %q, Decode's %q", src, f, data, id, ev.Customer)
	case idErr != nil && idErr.Error() != err.Error():
		t.Fatalf("%v %s record %q: CustomerID fails with %v, Decode with %v", src, f, data, idErr, err)
	case err != nil && idErr == nil:
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%v %s record %q: Decode fails with %v, not a *DecodeError", src, f, data, err)
		}
		switch de.Reason {
		case ReasonMissingCustomerID, ReasonBadFraming, ReasonUnknownSchema, ReasonInvalidJSON:
			t.Fatalf("%v %s record %q: CustomerID gives %q, Decode fails for a reason the stage must dead-letter: %v", src, f, data, id, err)
		}
		if de.Field == customerIDField || len(id) == 0 {
			t.Fatalf("%v %s record %q: CustomerID gives %q, Decode fails on the customer ID: %v", src, f, data, id, err)
		}
		want := string(ev.Customer)
		if f == FormatJSON {
			var ref struct {
				CustomerID string `json:"customer_id"`
			}
			if rerr := json.Unmarshal(data, &ref); rerr != nil {
				t.Fatalf("%v %s record %q: CustomerID gives %q, encoding/json cannot read customer_id alone: %v", src, f, data, id, rerr)
			}
			want = ref.CustomerID
		}
		if want != "" && string(id) != want {
			t.Fatalf("%v %s record %q: CustomerID gives %q, the record's customer ID is %q (Decode: %v)", src, f, data, id, want, err)
		}
	}
}

// TestCustomerIDJSON: records built to fool a scan for customer_id. Each
// is checked against Decode (checkCustomerID) for every source, and the
// fast path must be taken, or not, as fast says: a test that passed only
// because every record fell back to Decode would prove nothing.
func TestCustomerIDJSON(t *testing.T) {
	const rest = `"event_id":"e1","event_time":1740820500123,"type":"page_view"`
	deep := strings.Repeat(`[`, maxScanDepth+1) + strings.Repeat(`]`, maxScanDepth+1)
	for _, c := range []struct {
		name, rec string
		fast      bool   // the scan alone answers
		want      string // the customer ID, "" if none
	}{
		{"plain", `{` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"first", `{"customer_id":"c1",` + rest + `}`, true, "c1"},
		{"spaces", " \t\n{ \"customer_id\" \r:\n \"c1\" , " + rest + " }\n ", true, "c1"},
		{"nested object first", `{"properties":{"customer_id":"x"},` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"nested only", `{"properties":{"customer_id":"x"},` + rest + `}`, false, ""},
		{"in an array", `{"items":[{"customer_id":"x"},["customer_id","y"]],"customer_id":"c1",` + rest + `}`, true, "c1"},
		{"name in a string", `{"event_id":"\"customer_id\":\"x\"","customer_id":"c1","event_time":1,"type":"t"}`, true, "c1"},
		{"name as a value", `{"session_id":"customer_id",` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"escaped quote before", `{"session_id":"a\\\",\"customer_id\":\"x",` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"last wins", `{"customer_id":"a",` + rest + `,"customer_id":"b"}`, true, "b"},
		{"null keeps", `{"customer_id":"a",` + rest + `,"customer_id":null}`, true, "a"},
		{"null only", `{"customer_id":null,` + rest + `}`, false, ""},
		{"empty after", `{"customer_id":"a",` + rest + `,"customer_id":""}`, false, ""},
		{"ascii case", `{"Customer_ID":"c1",` + rest + `}`, true, "c1"},
		{"case last wins", `{"customer_id":"a","CUSTOMER_ID":"b",` + rest + `}`, true, "b"},
		{"near names", `{"customer_idx":"x","customer_i":"y","customerid":"z",` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"escaped key", `{"customer\u005fid":"c1",` + rest + `}`, false, "c1"},
		{"escaped key later", `{"customer_id":"a","\u0063ustomer_id":"b",` + rest + `}`, false, "b"},
		{"long s folds", `{"cuſtomer_id":"c1",` + rest + `}`, false, "c1"},
		{"kelvin key elsewhere", `{"Kind":"x",` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"escaped value", `{"customer_id":"c\u00e9\n\"x\/",` + rest + `}`, true, "c\u00e9\n\"x/"},
		{"surrogate pair", `{"customer_id":"\ud83d\ude00",` + rest + `}`, true, "\U0001F600"},
		{"lone surrogate", `{"customer_id":"\ud83d",` + rest + `}`, true, "\uFFFD"},
		{"utf-8 value", `{"customer_id":"kunde-ß",` + rest + `}`, true, "kunde-ß"},
		{"invalid utf-8 value", "{\"customer_id\":\"c\xff\"," + rest + "}", true, "c\uFFFD"},
		{"number", `{"customer_id":42,` + rest + `}`, false, ""},
		{"object", `{"customer_id":{"id":"c1"},` + rest + `}`, false, ""},
		{"true", `{"customer_id":true,` + rest + `}`, false, ""},
		{"empty", `{"customer_id":"",` + rest + `}`, false, ""},
		{"absent", `{` + rest + `}`, false, ""},
		{"empty object", `{}`, false, ""},
		{"array", `[{"customer_id":"c1"}]`, false, ""},
		{"string", `"customer_id"`, false, ""},
		{"trailing data", `{"customer_id":"c1",` + rest + `} {}`, false, ""},
		{"trailing comma", `{"customer_id":"c1",` + rest + `,}`, false, ""},
		{"syntax after", `{"customer_id":"c1",` + rest + `,"quantity":01}`, false, ""},
		{"bad literal after", `{"customer_id":"c1",` + rest + `,"x":nul}`, false, ""},
		{"bad escape after", `{"customer_id":"c1",` + rest + `,"x":"\q"}`, false, ""},
		{"control byte", "{\"customer_id\":\"c\x01\"," + rest + "}", false, ""},
		{"cut short", `{"customer_id":"c1",` + rest, false, ""},
		{"unclosed nested", `{"customer_id":"c1","properties":{"a":"b",` + rest + `}`, false, ""},
		{"mismatched bracket", `{"customer_id":"c1","items":[}],` + rest + `}`, false, ""},
		{"numbers", `{"a":-0.5e+10,"b":0,"c":12.25E-3,"d":[1,-2,3e4],` + rest + `,"customer_id":"c1"}`, true, "c1"},
		{"bad number", `{"a":-.5,` + rest + `,"customer_id":"c1"}`, false, ""},
		{"too deep", `{"x":` + deep + `,` + rest + `,"customer_id":"c1"}`, false, "c1"},
		// Other fields bad, the customer ID fine: the scan passes them,
		// and the consumer's Decode rejects them.
		{"bad event_time", `{"customer_id":"c1","event_id":"e1","event_time":"yesterday","type":"t"}`, true, "c1"},
		{"no event_id", `{"customer_id":"c1","event_time":1,"type":"t"}`, true, "c1"},
		{"wrong type elsewhere", `{"customer_id":"c1",` + rest + `,"quantity":"2"}`, true, "c1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, ok := jsonCustomerID([]byte(c.rec))
			if ok != c.fast || (ok && string(id) != c.want) {
				t.Errorf("scan: %q, %v; want %q, %v", id, ok, c.want, c.fast)
			}
			s := newFuzzSetup(t, FormatJSON)
			for _, src := range sources {
				var ev Event
				err := s.decs[src].Decode([]byte(c.rec), &ev)
				s.checkCustomerID(t, src, []byte(c.rec), ev, err)
				got, err := s.decs[src].CustomerID(context.Background(), []byte(c.rec))
				if (c.want == "") != (err != nil) || (err == nil && string(got) != c.want) {
					t.Errorf("%v: CustomerID %q, %v; want %q", src, got, err, c.want)
				}
			}
		})
	}
}

// TestCustomerIDAvro: every committed Avro seed, and every cut of each,
// is checked against Decode, and the fast path answers for every writer
// whose customer ID is a string (schema 5 has fields of every type before
// it); the record's bytes are not copied.
func TestCustomerIDAvro(t *testing.T) {
	s := newFuzzSetup(t, FormatAvro)
	fast := 0
	for _, sd := range avroSeeds(t, s) {
		src := sourceOf(sd.src)
		for n := 0; n <= len(sd.data); n++ {
			data := sd.data[:n]
			var ev Event
			err := s.decs[src].Decode(data, &ev)
			s.checkCustomerID(t, src, data, ev, err)
			if n < len(sd.data) || err != nil {
				continue
			}
			id, ok, ferr := s.decs[src].avro.customerID(context.Background(), data)
			if !ok || ferr != nil || string(id) != string(ev.Customer) {
				t.Errorf("%s: fast path gave %q, %v, %v; want %q", sd.name, id, ok, ferr, ev.Customer)
			} else if &id[0] != &data[strings.Index(string(data), string(id))] {
				t.Errorf("%s: the customer ID is a copy", sd.name)
			}
			fast++
		}
	}
	if fast < 5 {
		t.Errorf("the fast path answered %d valid seeds, want every one (at least 5)", fast)
	}
}
