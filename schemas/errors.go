package schemas

import "fmt"

// Reasons a record cannot be decoded. The processor puts the reason in the
// dead-letter record's header; the set is closed so that dashboards can
// count by it.
const (
	// ReasonBadFraming: an Avro record is not in the Confluent framing
	// (magic byte 0, then a 4-byte schema ID): too short, or another first
	// byte. The producer did not use a schema-registry serializer.
	ReasonBadFraming = "bad_framing"
	// ReasonUnknownSchema: the framing names a schema ID the registry
	// does not have (another registry, a deleted schema, garbage).
	ReasonUnknownSchema = "unknown_schema"
	// ReasonTruncated: the Avro record ends before its writer schema says
	// it does (a string, an array or a field cut off).
	ReasonTruncated = "truncated"
	// ReasonTrailingBytes: bytes are left after the whole Avro record was
	// read (the writer's schema is not the one the ID names, or two
	// records were concatenated).
	ReasonTrailingBytes = "trailing_bytes"
	// ReasonMalformedAvro: a value that no Avro writer produces: a varint
	// over 10 bytes, an int over 32 bits, a negative length, an enum or
	// union index out of range, a boolean byte other than 0 or 1, a map key
	// twice, over 65536 items in an array or map, values nested too deep.
	ReasonMalformedAvro = "malformed_avro"
	// ReasonInvalidJSON: a JSON record is not one JSON object (a syntax
	// error, an array, a string or a number, empty input, trailing data).
	ReasonInvalidJSON = "invalid_json"
	// ReasonWrongSchema: the writer schema is known but cannot be read as
	// this topic's schema (a field has an incompatible type, the schema is
	// not an Avro record).
	ReasonWrongSchema = "wrong_schema"
	// ReasonMissingCustomerID: customer_id is empty or absent.
	ReasonMissingCustomerID = "missing_customer_id"
	// ReasonMissingEventID: event_id is empty or absent.
	ReasonMissingEventID = "missing_event_id"
	// ReasonMissingType: type is empty or absent (except on the profile
	// topic, where it defaults to profile_update).
	ReasonMissingType = "missing_type"
	// ReasonBadField: a field has a value out of its domain: event_time
	// absent or not after 1970, a timestamp or date outside the years
	// 1..9999, a currency that is not three capital letters, a JSON value of
	// the wrong type or format, a negative quantity, a cart event
	// (add_to_cart, remove_from_cart) without product_id, an add_to_cart
	// without a quantity of at least 1.
	ReasonBadField = "bad_field"
)

// DecodeError is a record that can never be decoded, however often it is
// retried: the processor dead-letters it with Reason and moves on. Any other
// error from a decoder is transient (the schema registry could not be
// reached) and the record should be retried, not dead-lettered.
type DecodeError struct {
	Reason string // one of the Reason constants
	Field  string // the offending field, if known
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("schemas: %s: %s: %v", e.Reason, e.Field, e.Err)
	}
	return fmt.Sprintf("schemas: %s: %v", e.Reason, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(reason, field string, err error) *DecodeError {
	return &DecodeError{Reason: reason, Field: field, Err: err}
}

func decodeErrf(reason, field, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Field: field, Err: fmt.Errorf(format, args...)}
}
