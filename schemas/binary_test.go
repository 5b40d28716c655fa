package schemas

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"testing"
)

func mustParse(t *testing.T, schema string) *wtype {
	t.Helper()
	wt, err := parseWriterSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	return wt
}

// record wraps a field type in a record, as writer schemas come.
func record(fieldType string) string {
	return `{"type": "record", "name": "R", "fields": [{"name": "x", "type": ` + fieldType + `}]}`
}

// TestReaderRejectsMalformed: each malformed value is refused with the
// right error, whether the reader keeps it or skips it, and nothing panics.
func TestReaderRejectsMalformed(t *testing.T) {
	varint := func(v int64) []byte { return appendZigzag(nil, v) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name, typ string
		b         []byte
		want      error // nil: any error
	}{
		{"empty long", `"long"`, nil, errTruncated},
		{"unterminated varint", `"long"`, []byte{0x80, 0x80}, errTruncated},
		{"varint of 11 bytes", `"long"`, append(bytes.Repeat([]byte{0x80}, 10), 0), errBadVarint},
		{"varint over 64 bits", `"long"`, append(bytes.Repeat([]byte{0xff}, 9), 0x02), errBadVarint},
		{"int over 32 bits", `"int"`, varint(math.MaxInt32 + 1), errIntRange},
		{"int under 32 bits", `"int"`, varint(math.MinInt32 - 1), errIntRange},
		{"boolean 2", `"boolean"`, []byte{2}, nil},
		{"short float", `"float"`, []byte{1, 2, 3}, errTruncated},
		{"short double", `"double"`, make([]byte, 7), errTruncated},
		{"negative length", `"string"`, varint(-1), nil},
		{"length past the end", `"bytes"`, cat(varint(5), []byte("abcd")), errTruncated},
		{"huge length", `"string"`, varint(math.MaxInt64), errTruncated},
		{"short fixed", `{"type": "fixed", "name": "F", "size": 16}`, make([]byte, 15), errTruncated},
		{"enum index", `{"type": "enum", "name": "E", "symbols": ["a"]}`, varint(1), nil},
		{"negative enum index", `{"type": "enum", "name": "E", "symbols": ["a"]}`, varint(-1), nil},
		{"union index", `["null", "string"]`, varint(2), nil},
		{"negative union index", `["null", "string"]`, varint(-1), nil},
		{"block count over the limit", `{"type": "array", "items": "null"}`, varint(maxBlockCount + 1), nil},
		{"negative block count over the limit", `{"type": "array", "items": "null"}`, cat(varint(-maxBlockCount-1), varint(0)), nil},
		{"smallest block count", `{"type": "array", "items": "long"}`, varint(math.MinInt64), nil},
		{"more items than bytes", `{"type": "array", "items": "long"}`, cat(varint(4), []byte{0, 0, 0}), errTruncated},
		{"map entries past the end", `{"type": "map", "values": "string"}`, cat(varint(2), varint(1), []byte("k"), varint(0)), errTruncated},
		{"map key twice", `{"type": "map", "values": "string"}`, cat(varint(2), varint(1), []byte("k"), varint(0), varint(1), []byte("k"), varint(0), varint(0)), errDuplicateKey},
		{"map key twice over blocks", `{"type": "map", "values": "boolean"}`, cat(varint(1), varint(1), []byte("k"), []byte{1}, varint(1), varint(1), []byte("k"), []byte{0}, varint(0)), errDuplicateKey},
		{"string map key twice", `{"type": "map", "values": "string"}`, cat(varint(-2), varint(6), varint(1), []byte("k"), varint(0), varint(1), []byte("k"), varint(0), varint(0)), errDuplicateKey},
		{"no end of array", `{"type": "array", "items": "string"}`, cat(varint(1), varint(0)), errTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			wt := mustParse(t, record(c.typ))
			// Skipped, as a field the Go type lacks.
			in := newAvroIn(c.b)
			in.skip(wt)
			if in.err == nil || (c.want != nil && !errors.Is(in.err, c.want)) {
				t.Errorf("skipping % x as %s: got %v, want %v", c.b, c.typ, in.err, c.want)
			}
			// Read, as the Go type of a field of that writer type.
			ft := wt.fields[0].t
			in = newAvroIn(c.b)
			switch k := ft.kind; {
			case k == wUnion || k == wString || k == wEnum:
				in.readString(ft)
			case k == wInt:
				in.readInt32(ft)
			case k == wLong:
				in.readTime(ft)
			case k == wBoolean:
				in.readBoolean(ft)
			case k == wMap && ft.values.kind == wBoolean:
				in.readOptIns(ft)
			case k == wMap:
				in.readStringMap(ft)
			case k == wArray && ft.items.kind == wString:
				in.readStrings(nil, ft)
			case k == wArray:
				in.readItems(nil, ft) // as a wrong type: skipped
			default:
				return
			}
			if in.err == nil || (c.want != nil && !errors.Is(in.err, c.want)) {
				t.Errorf("reading % x as %s: got %v, want %v", c.b, c.typ, in.err, c.want)
			}
		})
	}
}

// TestReaderAcceptsBlocks: arrays and maps in several blocks, with
// negative counts and their byte sizes, read like one block.
func TestReaderAcceptsBlocks(t *testing.T) {
	b := appendZigzag(nil, -2)
	b = appendZigzag(b, 4)
	b = appendAvroString(appendAvroString(b, "a"), "b")
	b = appendZigzag(b, 1)
	b = appendAvroString(b, "c")
	b = appendZigzag(b, 0)
	wt := mustParse(t, `{"type": "array", "items": "string"}`)
	in := newAvroIn(b)
	got := in.readStrings(nil, wt)
	if in.err != nil || in.left() != 0 || len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("got %q, err %v, %d bytes left", got, in.err, in.left())
	}
	in = newAvroIn(b)
	in.skip(wt)
	if in.err != nil || in.left() != 0 {
		t.Errorf("skip: err %v, %d bytes left", in.err, in.left())
	}
}

// TestReaderStringsOwnTheirBytes: strings read from a record stay the same
// when the caller's buffer is reused.
func TestReaderStringsOwnTheirBytes(t *testing.T) {
	b := appendAvroString(nil, "customer")
	in := newAvroIn(b)
	s := in.readString(mustParse(t, `"string"`))
	clear(b)
	if s != "customer" {
		t.Errorf("the string changed with the buffer: %q", s)
	}
}

// TestItemCountBound: an array of items that take no bytes is refused past
// maxBlockCount items in all, though each block is within the limit.
func TestItemCountBound(t *testing.T) {
	wt := mustParse(t, `{"type": "array", "items": {"type": "record", "name": "Item", "fields": []}}`)
	var b []byte
	for range 2 {
		b = appendZigzag(b, maxBlockCount)
	}
	b = appendZigzag(b, 0)
	in := newAvroIn(b)
	items := in.readItems(nil, wt)
	if !errors.Is(in.err, errTooManyItems) || len(items) > maxBlockCount {
		t.Errorf("got %d items, err %v", len(items), in.err)
	}
	// Skipped, the same array is fine: nothing is kept.
	in = newAvroIn(b)
	in.skip(wt)
	if in.err != nil {
		t.Errorf("skip: %v", in.err)
	}
}

// TestZeroSizeItemsSkipFast: a record of blocks of 65536 nulls, one after
// the other, is skipped a block at a time, not an item at a time. (Were it
// not, this test would take minutes: 170,000 blocks of 65536 items.)
func TestZeroSizeItemsSkipFast(t *testing.T) {
	wt := mustParse(t, record(`{"type": "array", "items": {"type": "array", "items": "null"}}`))
	block := appendZigzag(nil, maxBlockCount)
	var b []byte
	b = appendZigzag(b, 1) // one outer item: an array of nulls
	b = append(b, bytes.Repeat(block, 170_000)...)
	b = appendZigzag(b, 0)
	b = appendZigzag(b, 0)
	in := newAvroIn(b)
	in.skip(wt)
	if in.err != nil || in.left() != 0 {
		t.Errorf("err %v, %d bytes left", in.err, in.left())
	}
}

// TestDeepNesting: a writer type that contains itself nests values only as
// deep as maxNesting, so a crafted record cannot exhaust the stack.
func TestDeepNesting(t *testing.T) {
	wt := mustParse(t, `{"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}`)
	ok := append(bytes.Repeat([]byte{2}, maxNesting/2-1), 0)
	in := newAvroIn(ok)
	in.skip(wt)
	if in.err != nil || in.left() != 0 {
		t.Errorf("%d levels: err %v", maxNesting/2, in.err)
	}
	deep := append(bytes.Repeat([]byte{2}, 1_000_000), 0)
	in = newAvroIn(deep)
	in.skip(wt)
	if !errors.Is(in.err, errTooDeep) {
		t.Errorf("a million levels: got %v, want %v", in.err, errTooDeep)
	}
	// A record that must contain itself cannot be written at all.
	wt = mustParse(t, `{"type": "record", "name": "Loop", "fields": [{"name": "self", "type": "Loop"}]}`)
	in = newAvroIn(nil)
	in.skip(wt)
	if !errors.Is(in.err, errTooDeep) {
		t.Errorf("a record of itself: got %v", in.err)
	}
}

// TestHugeClaimsAllocateLittle: lengths and counts that claim gigabytes are
// refused before anything is allocated for them.
func TestHugeClaimsAllocateLittle(t *testing.T) {
	for _, c := range []struct{ typ string }{
		{`{"type": "map", "values": "string"}`},
		{`{"type": "array", "items": "string"}`},
		{`"string"`},
	} {
		wt := mustParse(t, c.typ)
		b := appendZigzag(nil, maxBlockCount) // a count, or a length
		b = append(b, make([]byte, 100)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		in := newAvroIn(b)
		switch wt.kind {
		case wMap:
			in.readStringMap(wt)
		case wArray:
			in.readStrings(nil, wt)
		default:
			in.readString(wt)
		}
		runtime.ReadMemStats(&after)
		if in.err == nil {
			t.Errorf("%s: a claim of %d decoded from %d bytes", c.typ, maxBlockCount, len(b))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
			t.Errorf("%s: allocated %d bytes", c.typ, alloc)
		}
	}
}

// TestMinSize: the lower bounds of encoded sizes that block counts are
// checked against.
func TestMinSize(t *testing.T) {
	for typ, want := range map[string]int{
		`"null"`: 0, `"boolean"`: 1, `"float"`: 4, `"double"`: 8, `"string"`: 1, `["null", "double"]`: 1,
		`{"type": "fixed", "name": "F", "size": 16}`: 16,
		`{"type": "array", "items": "double"}`:       1,
		`{"type": "record", "name": "R", "fields": [{"name": "a", "type": "double"}, {"name": "b", "type": "int"}]}`:      9,
		`{"type": "record", "name": "N", "fields": [{"name": "v", "type": "int"}, {"name": "n", "type": ["null", "N"]}]}`: 2,
		`{"type": "record", "name": "L", "fields": [{"name": "self", "type": "L"}]}`:                                      0,
	} {
		if got := mustParse(t, typ).minSize; got != want {
			t.Errorf("%s: minSize %d, want %d", typ, got, want)
		}
	}
}
