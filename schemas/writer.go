package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
)

// wtype is the shape of a writer schema, as far as mapping its decoded
// values onto Go types needs it. goavro decodes a record with the writer's
// schema into generic values; wtype tells which of those values are union
// wrappers (a one-entry map keyed by the branch's name), which would
// otherwise be indistinguishable from a one-entry Avro map.
type wtype struct {
	kind     string // null boolean int long float double bytes string record enum fixed array map union
	logical  string // logicalType, if any
	name     string // full name of a named type
	fields   []wfield
	items    *wtype // array
	values   *wtype // map
	branches []*wtype
}

type wfield struct {
	name string
	t    *wtype
}

func (t *wtype) field(name string) *wtype {
	for _, f := range t.fields {
		if f.name == name {
			return f.t
		}
	}
	return nil
}

// unionKey is the key goavro uses for a value of this branch of a union.
func (t *wtype) unionKey() string {
	if t.name != "" {
		return t.name
	}
	switch t.kind + "." + t.logical {
	case "long.timestamp-millis", "long.timestamp-micros", "int.time-millis", "long.time-micros", "int.date":
		return t.kind + "." + t.logical
	}
	return t.kind
}

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// parseWriterSchema parses an Avro schema's JSON text.
func parseWriterSchema(text string) (*wtype, error) {
	var raw any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("schemas: writer schema is not JSON: %w", err)
	}
	p := schemaParser{names: make(map[string]*wtype)}
	return p.parse(raw, "", 0)
}

type schemaParser struct {
	names map[string]*wtype
}

func (p *schemaParser) parse(v any, ns string, depth int) (*wtype, error) {
	if depth > 64 {
		return nil, fmt.Errorf("schemas: writer schema nests deeper than 64")
	}
	switch x := v.(type) {
	case string:
		return p.named(x, ns)
	case []any:
		u := &wtype{kind: "union"}
		for _, b := range x {
			bt, err := p.parse(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, bt)
		}
		return u, nil
	case map[string]any:
		typ, ok := x["type"].(string)
		if !ok {
			// {"type": {...}} or {"type": [...]}: the type is nested.
			return p.parse(x["type"], ns, depth+1)
		}
		switch typ {
		case "record", "error", "enum", "fixed":
			name, _ := x["name"].(string)
			if name == "" {
				return nil, fmt.Errorf("schemas: writer schema: %s without a name", typ)
			}
			full, childNS := fullName(name, stringOr(x["namespace"], ns))
			t := &wtype{kind: typ, name: full}
			if typ == "error" {
				t.kind = "record"
			}
			p.names[full] = t // before the fields: a record may refer to itself
			if t.kind != "record" {
				return t, nil
			}
			fields, _ := x["fields"].([]any)
			for _, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("schemas: writer schema: record %s has a malformed field", full)
				}
				fname, _ := fm["name"].(string)
				ft, err := p.parse(fm["type"], childNS, depth+1)
				if err != nil {
					return nil, err
				}
				t.fields = append(t.fields, wfield{name: fname, t: ft})
			}
			return t, nil
		case "array":
			it, err := p.parse(x["items"], ns, depth+1)
			if err != nil {
				return nil, err
			}
			return &wtype{kind: "array", items: it}, nil
		case "map":
			vt, err := p.parse(x["values"], ns, depth+1)
			if err != nil {
				return nil, err
			}
			return &wtype{kind: "map", values: vt}, nil
		}
		t, err := p.named(typ, ns)
		if err != nil {
			return nil, err
		}
		if lt, _ := x["logicalType"].(string); lt != "" && t.name == "" {
			t = &wtype{kind: t.kind, logical: lt}
		}
		return t, nil
	}
	return nil, fmt.Errorf("schemas: writer schema: unexpected %T", v)
}

func (p *schemaParser) named(s, ns string) (*wtype, error) {
	if primitives[s] {
		return &wtype{kind: s}, nil
	}
	if !strings.Contains(s, ".") && ns != "" {
		if t, ok := p.names[ns+"."+s]; ok {
			return t, nil
		}
	}
	if t, ok := p.names[s]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("schemas: writer schema: unknown type %q", s)
}

// fullName resolves a type name against a namespace, and returns the
// namespace its nested types inherit.
func fullName(name, ns string) (full, childNS string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name, name[:i]
	}
	if ns == "" {
		return name, ""
	}
	return ns + "." + name, ns
}

func stringOr(v any, def string) string {
	if s, ok := v.(string); ok {
		return s
	}
	return def
}
