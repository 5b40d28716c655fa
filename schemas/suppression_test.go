package schemas

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// TestSuppressionRoundTrip writes a suppression and a deferral in both
// formats and reads them back: the trigger inside and the policy's fields
// survive, and a suppression's deferred_to is absent (null), not 1970.
func TestSuppressionRoundTrip(t *testing.T) {
	_, cl := newRegistry(t)
	for _, f := range []Format{FormatAvro, FormatJSON} {
		enc, err := NewSuppressionEncoder(context.Background(), f, cl, ValueSubject("suppressions"))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewSuppressionDecoder(f, cl)
		if err != nil {
			t.Fatal(err)
		}
		for name, in := range map[string]Suppression{
			"suppressed": {Trigger: sampleTrigger(), Action: ActionSuppressed, Reason: "cap", Policy: "email_7d",
				DecidedAt: ms("2025-03-01T10:00:00Z")},
			"deferred": {Trigger: sampleTrigger(), Action: ActionDeferred, Reason: "quiet_hours", Policy: "quiet_hours",
				DecidedAt: ms("2025-03-01T21:30:00Z"), DeferredTo: ms("2025-03-02T07:00:00Z")},
		} {
			t.Run(string(f)+"/"+name, func(t *testing.T) {
				b, err := enc.Encode(nil, &in)
				if err != nil {
					t.Fatal(err)
				}
				var out Suppression
				if err := dec.Decode(context.Background(), b, &out); err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				gotT, wantT := normTrigger(out.Trigger), normTrigger(in.Trigger)
				out.Trigger, in.Trigger = Trigger{}, Trigger{}
				if !reflect.DeepEqual(gotT, wantT) || !reflect.DeepEqual(out, in) {
					t.Errorf("round trip changed the suppression\n got %+v %+v\nwant %+v %+v", out, gotT, in, wantT)
				}
			})
		}
	}
}

// TestSuppressionFieldsMatchSchema checks that the field table, the JSON
// reader's struct and the .avsc name the same fields, and that the trigger
// fields are those of the trigger schema (a consumer reads them alike).
func TestSuppressionFieldsMatchSchema(t *testing.T) {
	var m struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(SuppressionSchema()), &m); err != nil {
		t.Fatal(err)
	}
	var schema, table []string
	for _, f := range m.Fields {
		schema = append(schema, f.Name)
	}
	for _, f := range suppressionFields {
		table = append(table, f.name)
	}
	if !slices.Equal(schema, table) {
		t.Errorf("suppression.avsc fields %v, table %v", schema, table)
	}
	var trig []string
	for _, f := range triggerFields {
		trig = append(trig, f.name)
	}
	if len(schema) < len(trig) || !slices.Equal(schema[len(schema)-len(trig):], trig) {
		t.Errorf("suppression.avsc does not end with the trigger fields %v", trig)
	}
	if _, err := newCodec(SuppressionSchema()); err != nil {
		t.Errorf("suppression.avsc does not parse: %v", err)
	}
	// A record without action or reason is refused.
	dec, _ := NewSuppressionDecoder(FormatJSON, nil)
	var s Suppression
	if err := dec.Decode(context.Background(), []byte(`{"trigger_id":"t","rule_id":"r","customer_id":"c"}`), &s); err == nil {
		t.Error("a suppression without action and reason decoded")
	}
}
