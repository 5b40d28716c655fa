package schemas

import "fmt"

// Reasons a record cannot be decoded. The processor puts the reason in the
// dead-letter record's header; the set is closed so that dashboards can
// count by it.
const (
	// ReasonUndecodable: the bytes are not a record of the expected
	// encoding: bad framing (magic byte), a schema ID the registry does not
	// know, truncated or trailing bytes, malformed Avro (see the package
	// doc), invalid JSON.
	ReasonUndecodable = "undecodable"
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
	// the wrong type or format.
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
