// Package schemas defines what travels on triggerd's topics: the Go types
// the processor works with, the Avro schemas that are the contract with
// producers and downstream senders (avro/*.avsc, embedded in the binary),
// and the codecs between the two. It reads and writes the Avro binary
// encoding itself (read.go, write.go); goavro only vets writer schemas
// from the registry. It is the only package that imports an Avro library.
//
// # Wire formats
//
// Each topic has a Format. FormatAvro is Avro binary in the Confluent
// Schema Registry framing: a magic byte 0, the writer schema's registry ID
// as a 4-byte big-endian integer, then the record. FormatJSON is one JSON
// object per record with the Avro field names; timestamps are epoch
// milliseconds or RFC 3339 strings on input and RFC 3339 in UTC with
// milliseconds on output, dates are "YYYY-MM-DD", money is
// {"minor": 1999, "currency": "EUR"}. Money is always integer minor units,
// never a float. Dates (birthday, contract end) are local calendar dates
// with no zone; timestamps decode to UTC.
//
// Optional fields are nullable with a null default. In Go, null is the zero
// value: "" for a string, 0 for a quantity, the zero Money, Date or time,
// an empty map or slice. So null and zero are one value and encode as null.
//
// # Subjects and schema IDs
//
// Schemas are registered under the topic's value subject ("<topic>-value",
// the TopicNameStrategy; see ValueSubject). Encoders register the embedded
// schema when they are created and frame every record with the returned ID.
// Decoders look a record's writer schema up by the ID in its frame, once per
// ID, and read the writer's fields into the Go type by name: a record
// written with an older or newer schema decodes as long as the writer's
// record name matches and each shared field has a readable type (int
// widens to long; a field may be nullable in one version and not in the
// other; an enum reads as a string; a time may be timestamp-millis,
// timestamp-micros or a plain long of milliseconds; a date may be a date
// or a plain int of days; Money and Item are read by their fields' names).
// A field the writer lacks is zero (a profile's type defaults to
// profile_update); a field the reader lacks is skipped, whatever its type.
//
// # Evolution
//
// avro/released/v1 holds the schemas as released. Tests check, with a real
// schema resolver, that each current schema reads its released copy
// (BACKWARD) and, for the trigger schema, that the released copy also reads
// the current one (FULL): downstream senders built on today's trigger schema
// must keep working. In practice: add fields only with a default, never
// remove or retype a trigger field, and never reuse a field name. Copy a
// schema to avro/released/vN when a release ships it.
//
// # Bad records
//
// Decoders return a *DecodeError for a record that can never be decoded;
// its Reason is one of a closed set, put on the dead-letter record:
//
//	bad_framing          not Confluent-framed Avro: shorter than 5 bytes, or a first byte other than 0
//	unknown_schema       the frame's schema ID is not in the registry
//	truncated            the Avro record ends before its writer schema says it does
//	trailing_bytes       bytes left after the whole Avro record was read
//	malformed_avro       a value no Avro writer produces: a varint over 10 bytes, an int over 32 bits,
//	                     a negative length, an enum or union index out of range, a boolean byte over 1,
//	                     a map key twice, over 65536 items in an array or map, values nested too deep
//	invalid_json         a JSON record that is not one JSON object (syntax error, array, string, number, empty, trailing data)
//	wrong_schema         the writer schema is not an Avro record of this topic (record name, field types)
//	missing_customer_id  customer_id empty
//	missing_event_id     event_id empty
//	missing_type         type empty (not on the profile topic)
//	bad_field            event_time absent or before 1970, a time or date outside the years 1..9999,
//	                     a currency that is not three capital letters, a JSON value of the wrong type,
//	                     a quantity below 0, an add_to_cart or remove_from_cart without product_id,
//	                     an add_to_cart whose quantity is absent, null or 0 (it must be at least 1:
//	                     null and 0 are one value, and neither may become an item); the DecodeError's
//	                     Field names the field
//
// Any other error from a decoder means the schema registry could not be
// reached: the record is fine and must be retried, not dead-lettered.
//
// # Hot path
//
// Decoders and encoders are safe for concurrent use. A Decoder resets and
// refills the caller's Event, keeping its Items capacity; encoders append to
// the caller's buffer.
//
// The Avro reader walks the record's bytes with the writer schema, parsed
// once per schema ID into a plan that names, for each writer field, the Go
// field it fills or nothing (skip it), and stores each value straight into
// the Go struct: no generic maps, no boxing. A record's strings are slices
// of one copy of its bytes, so a clickstream record costs 3 allocations
// (that copy and the properties map) and about 0.6 µs, where goavro's
// generic maps cost 60 allocations and 5.5 µs. The Avro writer appends the
// current schema's encoding field by field: no allocation, about 0.23 µs a
// trigger (goavro: 37 allocations, 2.6 µs); it writes the bytes goavro
// wrote, with map entries sorted. The JSON encoder allocates nothing.
//
// Decoder.CustomerID gives a record's customer ID without decoding the
// rest, for the repartition stage: a JSON record is scanned once for its
// top-level customer_id (its syntax checked as encoding/json checks it),
// an Avro record is read up to that field. Anything the scan cannot be sure
// of goes to Decode, so its errors are Decode's; tests hold it to Decode
// on the fuzz targets' inputs.
//
// The reader checks every length and count against the bytes left before
// it allocates, refuses an array or map of more than 65536 items, and
// bounds how deeply a writer type that contains itself nests: a crafted
// record can neither crash the processor nor make it allocate gigabytes.
// Tests hold it to the goavro-based reader it replaced (same Event, or the
// same Reason) on mutated records and under go test -fuzz.
package schemas
