package schemas

// skip reads past a value of the writer's type t: a field the Go type
// lacks, or one whose writer type cannot be read as its Go type. It checks
// what goavro checked when it decoded every field (enum and union indexes,
// boolean bytes, lengths, map keys that come twice), so that a record is
// rejected for the same reasons whatever fields the reader keeps.
func (in *avroIn) skip(t *wtype) {
	switch t.kind {
	case wNull:
	case wBoolean:
		in.boolean()
	case wInt:
		in.int()
	case wLong:
		in.long()
	case wFloat:
		in.skipBytes(4)
	case wDouble:
		in.skipBytes(8)
	case wBytes, wString:
		in.skipBytes(in.length())
	case wFixed:
		in.skipBytes(t.size)
	case wEnum:
		in.enum(t)
	case wRecord, wArray, wMap, wUnion:
		in.depth++
		if in.depth > maxNesting {
			in.fail(errTooDeep)
			return
		}
		in.skipNested(t)
		in.depth--
	}
}

func (in *avroIn) skipNested(t *wtype) {
	switch t.kind {
	case wRecord:
		for i := range t.fields {
			in.skip(t.fields[i].t)
		}
	case wUnion:
		in.skip(in.branch(t))
	case wArray:
		for n := in.blockCount(t.items.minSize); n > 0; n = in.blockCount(t.items.minSize) {
			in.skipItems(n, t.items)
		}
	case wMap:
		var keys keySet
		for n := in.blockCount(1 + t.values.minSize); n > 0; n = in.blockCount(1 + t.values.minSize) {
			for range n {
				if keys.add(in.string()) {
					in.fail(errDuplicateKey)
				}
				in.skip(t.values)
				if in.err != nil {
					return
				}
			}
		}
	}
}

// keySet finds a key that comes twice in a map being skipped. Most such
// maps are small, so the set is made only at the second key.
type keySet struct {
	n     int
	first string
	set   map[string]bool
}

func (s *keySet) add(k string) (dup bool) {
	s.n++
	if s.n == 1 {
		s.first = k
		return false
	}
	if s.set == nil {
		s.set = map[string]bool{s.first: true}
	}
	dup = s.set[k]
	s.set[k] = true
	return dup
}

// skipItems skips n items of an array block. Items that take no bytes
// (nulls, say) are all alike: one is skipped, for its checks, and the rest
// cost nothing, so that a block of 65536 of them in every byte of a record
// does not make the reader loop for hours.
func (in *avroIn) skipItems(n int, t *wtype) {
	if t.minSize == 0 {
		n = 1
	}
	for range n {
		in.skip(t)
		if in.err != nil {
			return
		}
	}
}
