package schemas

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// The released copies under avro/released/ are what producers and
// downstream senders in the field were built against. A change to a current
// schema must stay readable against them: goavro has no schema resolver, so
// these tests use hamba/avro's, which implements the Avro specification's
// resolution rules.

type compatCase struct {
	file string
	// full: the released schema must also read the current one, because
	// downstream senders built on the released trigger schema read the
	// triggers this version writes. For inputs, BACKWARD suffices: this
	// version reads what producers on the released schema write.
	full bool
}

var compatCases = []compatCase{
	{"clickstream.avsc", false},
	{"transaction.avsc", false},
	{"profile.avsc", false},
	{"trigger.avsc", true},
}

func parseHamba(t *testing.T, text string) avro.Schema {
	t.Helper()
	// A fresh cache per parse: hamba's default cache is keyed by type name,
	// and the two versions of a schema share their names.
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func released(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile("avro/released/v1/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func current(t *testing.T, file string) string {
	t.Helper()
	switch file {
	case "clickstream.avsc":
		return EventSchema(SourceClickstream)
	case "transaction.avsc":
		return EventSchema(SourceTransaction)
	case "profile.avsc":
		return EventSchema(SourceProfile)
	case "trigger.avsc":
		return TriggerSchema()
	}
	t.Fatalf("no schema %s", file)
	return ""
}

// checkCompat reports whether the current schema cur may replace the
// released schema rel.
func checkCompat(t *testing.T, cur, rel string, full bool) error {
	t.Helper()
	c, r := parseHamba(t, cur), parseHamba(t, rel)
	sc := avro.NewSchemaCompatibility()
	if err := sc.Compatible(c, r); err != nil { // BACKWARD: current reads released
		return err
	}
	if full {
		return sc.Compatible(r, c) // FORWARD: released reads current
	}
	return nil
}

func TestSchemasCompatibleWithReleased(t *testing.T) {
	for _, c := range compatCases {
		t.Run(c.file, func(t *testing.T) {
			if err := checkCompat(t, current(t, c.file), released(t, c.file), c.full); err != nil {
				t.Errorf("current %s cannot replace the released v1 (full=%v): %v", c.file, c.full, err)
			}
		})
	}
}

// editSchema applies edit to the fields of a schema's JSON.
func editSchema(t *testing.T, text string, edit func(fields []any) []any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	m["fields"] = edit(m["fields"].([]any))
	return mustJSON(m)
}

func withoutField(name string) func([]any) []any {
	return func(fs []any) []any {
		return slices.DeleteFunc(fs, func(f any) bool { return f.(map[string]any)["name"] == name })
	}
}

// TestCompatCheckCatchesBreakingChanges proves the check above can fail.
func TestCompatCheckCatchesBreakingChanges(t *testing.T) {
	addRequired := func(fs []any) []any {
		return append(fs, map[string]any{"name": "referrer", "type": "string"}) // no default
	}
	for _, c := range compatCases {
		rel := released(t, c.file)
		if err := checkCompat(t, editSchema(t, rel, addRequired), rel, false); err == nil {
			t.Errorf("%s: adding a field without a default passed the BACKWARD check", c.file)
		}
	}
	// Dropping a field without a default is BACKWARD-compatible (a reader
	// ignores what it does not know) but breaks senders on the released
	// trigger schema, which need it.
	rel := released(t, "trigger.avsc")
	dropped := editSchema(t, rel, withoutField("kind"))
	if err := checkCompat(t, dropped, rel, false); err != nil {
		t.Errorf("dropping trigger.kind should pass BACKWARD: %v", err)
	}
	if err := checkCompat(t, dropped, rel, true); err == nil {
		t.Error("dropping trigger.kind passed the FULL check")
	}
	// Changing a field's type.
	retyped := editSchema(t, rel, func(fs []any) []any {
		for _, f := range fs {
			if f := f.(map[string]any); f["name"] == "stage" {
				f["type"] = "string"
			}
		}
		return fs
	})
	if err := checkCompat(t, retyped, rel, false); err == nil {
		t.Error("retyping trigger.stage int -> string passed the BACKWARD check")
	}
}

// TestTriggerFieldsAfterCoreHaveDefaults: every field a future version adds
// needs a default, and the shipped optional ones set the example.
func TestTriggerFieldsAfterCoreHaveDefaults(t *testing.T) {
	var m struct {
		Fields []map[string]any `json:"fields"`
	}
	if err := json.Unmarshal([]byte(TriggerSchema()), &m); err != nil {
		t.Fatal(err)
	}
	core := map[string]bool{"trigger_id": true, "rule_id": true, "rule_version": true, "kind": true, "stage": true,
		"channel": true, "customer_id": true, "fired_at": true, "due_at": true, "expires_at": true}
	for _, f := range m.Fields {
		if _, ok := f["default"]; !ok && !core[f["name"].(string)] {
			t.Errorf("trigger field %v has no default", f["name"])
		}
	}
}

// TestFieldTablesMatchSchemas checks that every field of every current
// schema is mapped to Go, in the Avro tables and the JSON structs, and that
// nothing is mapped that the schema lacks.
func TestFieldTablesMatchSchemas(t *testing.T) {
	names := func(fs []wfield) []string {
		var s []string
		for _, f := range fs {
			s = append(s, f.name)
		}
		return s
	}
	tags := func(v any) []string {
		var s []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			s = append(s, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		return s
	}
	check := func(name, schema string, table, jsonTags []string) {
		wt, err := parseWriterSchema(schema)
		if err != nil {
			t.Fatal(err)
		}
		want := names(wt.fields)
		if !slices.Equal(table, want) {
			t.Errorf("%s: field table %v, schema %v", name, table, want)
		}
		if !slices.Equal(jsonTags, want) {
			t.Errorf("%s: JSON struct %v, schema %v", name, jsonTags, want)
		}
	}
	tableNames := func(n int, name func(i int) string) []string {
		var s []string
		for i := 0; i < n; i++ {
			s = append(s, name(i))
		}
		return s
	}
	jsonStructs := map[Source]any{SourceClickstream: jsonClickstream{}, SourceTransaction: jsonTransaction{}, SourceProfile: jsonProfile{}}
	for _, src := range sources {
		fs := eventFields(src)
		check(src.String(), EventSchema(src), tableNames(len(fs), func(i int) string { return fs[i].name }), tags(jsonStructs[src]))
	}
	check("trigger", TriggerSchema(), tableNames(len(triggerFields), func(i int) string { return triggerFields[i].name }), tags(jsonTrigger{}))
}
