package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
)

// wtype is a parsed Avro schema: the writer schema of a record to decode,
// or an embedded schema to encode with. The binary reader walks it to know
// what the next bytes are; it is immutable once parsed, so readers share
// it between goroutines.
type wtype struct {
	kind     wkind
	logical  wlogical
	name     string // full name of a named type
	fields   []wfield
	items    *wtype   // array
	values   *wtype   // map
	branches []*wtype // union
	symbols  []string // enum
	size     int      // fixed
	// minSize is a lower bound of the bytes a value of this type takes. An
	// array or map block that claims more items than the bytes left could
	// hold is rejected before anything is read or allocated for it. A type
	// whose minSize is 0 takes no bytes at all (null, fixed of size 0,
	// records of those), or is a record that contains itself and cannot be
	// written at all.
	minSize int
}

type wfield struct {
	name string
	t    *wtype
	// role says which part of a Money or Item a field of a record is, by
	// its name, so that reading those records needs no string comparison.
	role role
}

// wkind is an Avro type.
type wkind uint8

const (
	wNull wkind = iota
	wBoolean
	wInt
	wLong
	wFloat
	wDouble
	wBytes
	wString
	wRecord
	wEnum
	wFixed
	wArray
	wMap
	wUnion
)

var wkindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string",
	"record", "enum", "fixed", "array", "map", "union"}

func (k wkind) String() string { return wkindNames[k] }

// wlogical is a logical type that changes how a value reads into Go. Other
// logical types are ignored, as the Avro specification says a reader that
// does not know one must do (and as goavro, the previous reader, did).
type wlogical uint8

const (
	lNone            wlogical = iota
	lDate                     // int: days since 1970-01-01
	lTimeMillis               // int: time of day, not a timestamp
	lTimestampMillis          // long
	lTimestampMicros          // long
	lTimeMicros               // long: time of day, not a timestamp
)

var wlogicalNames = [...]string{"", "date", "time-millis", "timestamp-millis", "timestamp-micros", "time-micros"}

func (l wlogical) String() string { return wlogicalNames[l] }

// logicalOf returns the logical type lt annotates kind k with, or lNone.
func logicalOf(k wkind, lt string) wlogical {
	switch {
	case k == wInt && lt == "date":
		return lDate
	case k == wInt && lt == "time-millis":
		return lTimeMillis
	case k == wLong && lt == "timestamp-millis":
		return lTimestampMillis
	case k == wLong && lt == "timestamp-micros":
		return lTimestampMicros
	case k == wLong && lt == "time-micros":
		return lTimeMicros
	}
	return lNone
}

func (t *wtype) String() string {
	switch {
	case t.name != "":
		return t.kind.String() + " " + t.name
	case t.logical != lNone:
		return t.kind.String() + " (" + t.logical.String() + ")"
	}
	return t.kind.String()
}

// role is the part of a Money or Item record a field carries.
type role uint8

const (
	roleNone role = iota
	roleMinor
	roleCurrency
	roleProductID
	roleQuantity
	roleUnitPrice
)

func roleOf(fieldName string) role {
	switch fieldName {
	case "minor":
		return roleMinor
	case "currency":
		return roleCurrency
	case "product_id":
		return roleProductID
	case "quantity":
		return roleQuantity
	case "unit_price":
		return roleUnitPrice
	}
	return roleNone
}

var primitives = map[string]wkind{
	"null": wNull, "boolean": wBoolean, "int": wInt, "long": wLong,
	"float": wFloat, "double": wDouble, "bytes": wBytes, "string": wString,
}

// maxSchemaDepth bounds the nesting of a schema's JSON.
const maxSchemaDepth = 64

// parseWriterSchema parses an Avro schema's JSON text. It checks what
// reading needs (names resolve, fixed sizes, enum symbols); the registry
// entry is also compiled by goavro, which checks the rest of the
// specification.
func parseWriterSchema(text string) (*wtype, error) {
	var raw any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("schemas: writer schema is not JSON: %w", err)
	}
	p := schemaParser{names: make(map[string]*wtype)}
	t, err := p.parse(raw, "", 0)
	if err != nil {
		return nil, err
	}
	setMinSize(t, make(map[*wtype]bool))
	return t, nil
}

type schemaParser struct {
	names map[string]*wtype
}

func (p *schemaParser) parse(v any, ns string, depth int) (*wtype, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("schemas: writer schema nests deeper than %d", maxSchemaDepth)
	}
	switch x := v.(type) {
	case string:
		return p.named(x, ns)
	case []any:
		u := &wtype{kind: wUnion}
		for _, b := range x {
			bt, err := p.parse(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			if bt.kind == wUnion {
				return nil, fmt.Errorf("schemas: writer schema: a union inside a union")
			}
			u.branches = append(u.branches, bt)
		}
		if len(u.branches) == 0 {
			return nil, fmt.Errorf("schemas: writer schema: an empty union")
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
			return p.namedType(x, typ, ns, depth)
		case "array":
			it, err := p.parse(x["items"], ns, depth+1)
			if err != nil {
				return nil, err
			}
			return &wtype{kind: wArray, items: it}, nil
		case "map":
			vt, err := p.parse(x["values"], ns, depth+1)
			if err != nil {
				return nil, err
			}
			return &wtype{kind: wMap, values: vt}, nil
		}
		t, err := p.named(typ, ns)
		if err != nil {
			return nil, err
		}
		if lt, _ := x["logicalType"].(string); lt != "" && t.name == "" {
			if l := logicalOf(t.kind, lt); l != lNone {
				t = &wtype{kind: t.kind, logical: l}
			}
		}
		return t, nil
	}
	return nil, fmt.Errorf("schemas: writer schema: unexpected %T", v)
}

func (p *schemaParser) namedType(x map[string]any, typ, ns string, depth int) (*wtype, error) {
	name, _ := x["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("schemas: writer schema: %s without a name", typ)
	}
	full, childNS := fullName(name, stringOr(x["namespace"], ns))
	t := &wtype{name: full}
	p.names[full] = t // before the fields: a record may refer to itself
	switch typ {
	case "enum":
		t.kind = wEnum
		syms, _ := x["symbols"].([]any)
		for _, s := range syms {
			sym, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("schemas: writer schema: enum %s has a symbol that is not a string", full)
			}
			t.symbols = append(t.symbols, sym)
		}
		return t, nil
	case "fixed":
		t.kind = wFixed
		size, ok := x["size"].(float64)
		if !ok || size < 0 || size != float64(int(size)) || size > 1<<30 {
			return nil, fmt.Errorf("schemas: writer schema: fixed %s has no valid size", full)
		}
		t.size = int(size)
		return t, nil
	}
	t.kind = wRecord // a record or an error
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
		t.fields = append(t.fields, wfield{name: fname, t: ft, role: roleOf(fname)})
	}
	return t, nil
}

func (p *schemaParser) named(s, ns string) (*wtype, error) {
	if k, ok := primitives[s]; ok {
		return &wtype{kind: k}, nil
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

// setMinSize fills in minSize for t and the types it contains, each named
// type once. A record met again while its own size is being summed (it
// contains itself) counts 0 there, which keeps the result a lower bound.
func setMinSize(t *wtype, seen map[*wtype]bool) int {
	if seen[t] {
		return t.minSize
	}
	seen[t] = true
	switch t.kind {
	case wNull:
		t.minSize = 0
	case wFloat:
		t.minSize = 4
	case wDouble:
		t.minSize = 8
	case wFixed:
		t.minSize = t.size
	case wRecord:
		n := 0
		for _, f := range t.fields {
			n += setMinSize(f.t, seen)
		}
		t.minSize = n
	case wArray:
		setMinSize(t.items, seen)
		t.minSize = 1 // the final block count
	case wMap:
		setMinSize(t.values, seen)
		t.minSize = 1
	case wUnion:
		for _, b := range t.branches {
			setMinSize(b, seen)
		}
		t.minSize = 1 // the branch index
	default: // boolean, int, long, enum, bytes and string take at least a byte
		t.minSize = 1
	}
	return t.minSize
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
