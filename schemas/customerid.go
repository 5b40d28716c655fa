package schemas

import (
	"context"
	"encoding/json"
	"unicode/utf8"
)

// CustomerID reads only what it must of a record to give its customer ID,
// for a caller that routes records by customer and leaves the decoding to
// whoever consumes them (the processor's repartition stage).
//
// When Decode would accept value, CustomerID returns the customer ID Decode
// would give. When Decode would reject value, CustomerID returns Decode's
// error, or, if the customer ID reads well and only another part of the
// record is bad, that customer ID: the consumer that decodes the record in
// full rejects it then. A record whose customer ID is absent, empty, null,
// of the wrong type, or that is not one valid JSON object (anywhere in it),
// not Confluent-framed, of an unknown or wrong schema, or cut short or
// malformed before its customer ID, always gets Decode's error, with its
// Reason. As for Decode,
// an error that is not a *DecodeError means the schema registry could not
// be reached: retry the record.
//
// The returned bytes may share value's memory; the caller must not change
// them. The fast paths: JSON is scanned, without building anything, for
// its top-level customer_id (jsonCustomerID); Avro is read with the writer
// schema up to the customer_id field, the fields before it skipped.
// Whatever a fast path is not sure of (an escaped or non-ASCII top-level
// key, values nested very deep, a customer ID that is not a non-empty
// string) it hands to Decode.
func (d *Decoder) CustomerID(ctx context.Context, value []byte) ([]byte, error) {
	switch d.f {
	case FormatJSON:
		if id, ok := jsonCustomerID(value); ok {
			return id, nil
		}
	case FormatAvro:
		id, ok, err := d.avro.customerID(ctx, value)
		if err != nil {
			return nil, err
		}
		if ok {
			return id, nil
		}
	}
	var ev Event
	if err := d.DecodeContext(ctx, value, &ev); err != nil {
		return nil, err
	}
	return []byte(ev.Customer), nil
}

// customerIDField is the field the records of every input carry their
// customer ID in.
const customerIDField = "customer_id"

// customerID reads the record's customer ID if it is a non-empty string of
// a writer field customer_id, skipping the fields before it. ok is false
// when it cannot tell (bad framing, an unknown or wrong schema, a record
// cut short or malformed before the ID, a null, empty or non-string ID):
// Decode says what is wrong. An error means the registry could not be
// reached.
func (r *avroReader[T]) customerID(ctx context.Context, value []byte) (id []byte, ok bool, err error) {
	schemaID, payload, err := confluent.DecodeID(value)
	if err != nil {
		return nil, false, nil
	}
	w, err := r.writer(ctx, schemaID)
	if err != nil || w.err != nil || w.customer < 0 {
		return nil, false, err
	}
	in := newAvroIn(payload)
	for i := range w.customer {
		if in.skip(w.fields[i].t); in.err != nil {
			return nil, false, nil
		}
	}
	t := in.value(w.fields[w.customer].t)
	if in.err != nil || t == nil || t.kind != wString {
		return nil, false, nil // an enum's symbol, say: Decode reads it
	}
	n := in.length()
	if in.err != nil || n == 0 {
		return nil, false, nil
	}
	return in.b[in.pos : in.pos+n : in.pos+n], true, nil
}

// customerIndex is the position of the customer_id field among a writer's
// fields, -1 if it has none.
func customerIndex[T any](fields []fieldPlan[T]) int {
	for i := range fields {
		if fields[i].name == customerIDField {
			return i
		}
	}
	return -1
}

// jsonCustomerID scans a JSON record for the customer ID encoding/json
// would read into the decoders' structs, and checks the record's syntax as
// encoding/json does before it decodes anything. ok is false when the
// record is not one syntactically valid JSON object, when its customer ID
// is absent, empty, or not a string or null, and when the scan cannot be
// sure which key encoding/json would take for customer_id: a top-level key
// with an escape or a non-ASCII byte (encoding/json unescapes keys and
// matches them case-insensitively with Unicode folding, so that
// "cu\u017Ftomer_id" is customer_id), or values nested deeper than
// maxScanDepth. Keys match as encoding/json matches them: exactly or ASCII
// case-insensitively, the last one wins, and a null leaves what was read
// before.
func jsonCustomerID(b []byte) (id []byte, ok bool) {
	s := jsonScan{b: b}
	s.space()
	if !s.take('{') {
		return nil, false
	}
	s.space()
	if s.take('}') {
		return nil, false // no customer ID
	}
	for {
		s.space()
		start := s.i
		escaped, high, valid := s.str()
		if !valid || escaped || high {
			return nil, false
		}
		key := b[start+1 : s.i-1]
		s.space()
		if !s.take(':') {
			return nil, false
		}
		s.space()
		if isCustomerIDKey(key) {
			switch {
			case s.peek() == '"':
				vstart := s.i
				escaped, high, valid := s.str()
				if !valid {
					return nil, false
				}
				if id = b[vstart+1 : s.i-1 : s.i-1]; escaped || high && !utf8.Valid(id) {
					// Escapes, or bytes encoding/json replaces:
					// unquote it as encoding/json does.
					var u string
					if json.Unmarshal(b[vstart:s.i], &u) != nil {
						return nil, false
					}
					id = []byte(u)
				}
			case s.literal("null"):
				// encoding/json leaves a string as it was on null.
			default:
				return nil, false // a type error: Decode reports it
			}
		} else if !s.value(0) {
			return nil, false
		}
		s.space()
		if s.take('}') {
			break
		}
		if !s.take(',') {
			return nil, false
		}
	}
	s.space()
	if s.i != len(b) || len(id) == 0 {
		return nil, false
	}
	return id, true
}

// isCustomerIDKey is whether an ASCII key is customer_id to encoding/json:
// equal up to the case of ASCII letters.
func isCustomerIDKey(key []byte) bool {
	if len(key) != len(customerIDField) {
		return false
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != customerIDField[i] {
			return false
		}
	}
	return true
}

// maxScanDepth bounds the nesting jsonCustomerID follows (each level is a
// call); a deeper record, which no producer of events writes, is left to
// encoding/json.
const maxScanDepth = 64

// jsonScan checks the JSON grammar (RFC 8259) over b from i, as
// encoding/json's own check does: strings may hold any byte of 0x20 and
// over (invalid UTF-8 included), but no other control byte; escapes are
// the grammar's; numbers have no leading zero or bare dot.
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScan) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jsonScan) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str reads a string from its opening quote and says whether it has an
// escape and a byte over 0x7f: without either, its bytes are its value.
func (s *jsonScan) str() (escaped, high, valid bool) {
	if !s.take('"') {
		return false, false, false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return escaped, high, true
		case c < 0x20:
			return false, false, false
		case c >= 0x80:
			high = true
		case c == '\\':
			escaped = true
			if s.i >= len(s.b) {
				return false, false, false
			}
			e := s.b[s.i]
			s.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.b)-s.i < 4 {
					return false, false, false
				}
				for _, h := range s.b[s.i : s.i+4] {
					if !isHex(h) {
						return false, false, false
					}
				}
				s.i += 4
			default:
				return false, false, false
			}
		}
	}
	return false, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// value skips one value, checking its syntax, at nesting depth.
func (s *jsonScan) value(depth int) bool {
	switch c := s.peek(); {
	case c == '"':
		_, _, valid := s.str()
		return valid
	case c == '{' || c == '[':
		if depth >= maxScanDepth {
			return false
		}
		return s.container(depth + 1)
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// container skips an object or an array from its opening bracket.
func (s *jsonScan) container(depth int) bool {
	object := s.b[s.i] == '{'
	end := byte(']')
	if object {
		end = '}'
	}
	s.i++
	s.space()
	if s.take(end) {
		return true
	}
	for {
		s.space()
		if object {
			if _, _, valid := s.str(); !valid {
				return false
			}
			s.space()
			if !s.take(':') {
				return false
			}
			s.space()
		}
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.take(end) {
			return true
		}
		if !s.take(',') {
			return false
		}
	}
}

// number skips a number: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
func (s *jsonScan) number() bool {
	s.take('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.take('.') && !s.digits() {
		return false
	}
	if s.take('e') || s.take('E') {
		if !s.take('+') {
			s.take('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips [0-9]* and says whether there was one.
func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
