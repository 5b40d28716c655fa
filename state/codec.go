package state

// The record codec. Records (customer, timer, offsets, held) are written by
// hand in a subset of the protocol-buffers wire format (wire.go; the layout
// and the evolution rules are in doc.go). Each record type has a file of its
// own, which holds, for every struct it encodes, the three things that must
// agree:
//
//   - the field numbers, one const block per struct;
//   - the field table (a fieldTable: number and wire type of every field
//     the decoder knows), which drives the decoder's skeleton, reader.next:
//     read the tag, skip a field the table does not know, refuse a known
//     field with another wire type;
//   - the encoder (appendX, the fields in write order) and the decoder
//     (decodeX, one case per field of the table).
//
// The files: codec_customer.go (schemas.Customer: the record itself, its
// counters, its dedupe window, the reset and the hints), codec_cart.go (cart
// and items), codec_profile.go (profile and opt-ins), codec_stats.go (the
// rules engine's transaction stats, per-type last seen, aggregates, RFM),
// codec_runs.go (runs and marks), codec_decisions.go (the contact history
// and the audit trail), codec_timers.go (timers and deferred triggers),
// codec_offsets.go (the offsets record, event-time progress included, and
// held records).
//
// # How to add a customer field
//
//  1. Add the field to its type in schemas (schemas.Customer or a struct it
//     holds).
//  2. In the codec file of that struct: a new const with the next unused
//     field number (never reuse or renumber one, see doc.go); an entry in
//     the struct's fieldTable with its wire type; a line in appendX that
//     writes it (omit the zero value, and keep the write order: append it at
//     the end of appendX so that older fields keep their bytes); a case in
//     decodeX that reads it. A time is written with base.appendCTimeField
//     and read with r.time(); a name that recurs (rule, channel) with
//     nm.append and read with r.name / r.nameRef (two field numbers).
//  3. If the field is a slice or a map of the customer, keep its capacity in
//     resetCustomer (codec_customer.go), or the decoder allocates.
//  4. Set it in fullCustomer (codec_test.go): TestFullCustomerIsFull fails
//     until you do, and TestCustomerRoundTrip checks the round trip. Then
//     add a new golden record (go test ./state -run FormatV2Late -update
//     writes newestCustomerHex: point newestCustomerHex at a new file first
//     and keep the old ones, each is a release's bytes that must still
//     decode).
//  5. The version byte does not change: older releases skip the field.
//     Only a change the fields cannot express needs a new format version
//     (a new case in decodeCustomer, kept for ever).

// Format versions: the first byte of every record. Adding a field does not
// change it (readers skip unknown fields); a version is added only for a
// change the field scheme cannot express, and the decoder keeps a case for
// every version it has ever written.
const (
	customerV1 = 1
	// customerV2: the base time (varint unix milliseconds) follows the
	// version byte, and every time in the record is compact (see
	// appendCTime), relative to it.
	customerV2 = 2
	timerV1    = 1
	offsetsV1  = 1
	heldV1     = 1
)

// maxFieldNum bounds the field numbers a fieldTable holds.
const maxFieldNum = 31

// fieldTable is the decoder's view of a struct's fields: the wire type of
// every field number it knows. A zero entry is an unknown field (skipped).
type fieldTable [maxFieldNum + 1]int8

// field is one entry of a fieldTable.
type field struct {
	num  int
	wire int8
}

// newFieldTable builds a table. It panics (at package init) on a number out
// of range or given twice: a field table is code, not input.
func newFieldTable(fields ...field) *fieldTable {
	var t fieldTable
	for _, f := range fields {
		if f.num <= 0 || f.num > maxFieldNum || t[f.num] != 0 {
			panic("state: bad or repeated field number in a field table")
		}
		t[f.num] = f.wire + 1
	}
	return &t
}

// Shorthands for the tables.
func varintField(num int) field { return field{num, wireVarint} }
func bytesField(num int) field  { return field{num, wireBytes} }

// next advances r to the next field its table knows, skipping the others,
// and leaves its number in r.field. It returns false at the end of the record
// or on an error (in r.err): a bad tag, a known field with the wrong wire
// type, a truncated unknown field. This is the skeleton every decoder shares:
//
//	for r.next(table) {
//		switch r.field {
//		case fieldA:
//			v.A = r.time()
//		}
//	}
//	return r.err
func (r *reader) next(t *fieldTable) bool {
	for !r.done() {
		var f, w int
		if c := r.b[0]; c < 0x80 {
			// A one-byte tag (every field number below 16): read
			// in place, the common case.
			r.b = r.b[1:]
			f, w = int(c>>3), int(c&7)
		} else if f, w = r.tag(); r.err != nil {
			return false
		}
		var want int8
		if f <= maxFieldNum {
			want = t[f]
		}
		if want == 0 {
			r.skip(w)
			continue
		}
		if !r.expect(w, int(want-1)) {
			return false
		}
		r.field = f
		return true
	}
	return false
}
