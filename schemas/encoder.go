package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// Encoder encodes records of one type with one schema in one format: the
// same code for triggers, suppressions and events, which differ only in
// their schema and field table. It is safe for concurrent use.
type Encoder[T any] struct {
	f      Format
	fields []field[T]
	avro   *avroWriter[T]
}

// TriggerEncoder encodes triggers with the current trigger schema.
type TriggerEncoder = Encoder[Trigger]

// SuppressionEncoder encodes suppression records with the current
// suppression schema.
type SuppressionEncoder = Encoder[Suppression]

// EventEncoder encodes the events of one Source with its current schema,
// for the traffic generator and tests. Encode ignores ev.Source: the
// encoder's source decides the schema. Encode does not validate, so tests
// can write bad records.
type EventEncoder = Encoder[Event]

// NewTriggerEncoder returns an encoder for format f. For FormatAvro it
// registers the embedded trigger schema under subject (ValueSubject of the
// trigger topic) and frames every record with the ID the registry returns;
// a registry that rejects the schema as incompatible fails here, at start.
// For FormatJSON, reg and subject are unused.
func NewTriggerEncoder(ctx context.Context, f Format, reg *sr.Client, subject string) (*TriggerEncoder, error) {
	return newEncoder(ctx, f, reg, subject, triggerAvsc, triggerFields)
}

// NewSuppressionEncoder returns an encoder for format f, registering the
// embedded suppression schema under subject (ValueSubject of the
// suppressions topic) as NewTriggerEncoder does for triggers.
func NewSuppressionEncoder(ctx context.Context, f Format, reg *sr.Client, subject string) (*SuppressionEncoder, error) {
	return newEncoder(ctx, f, reg, subject, suppressionAvsc, suppressionFields)
}

// NewEventEncoder returns an encoder for the events of src in format f.
// Registration is as for NewTriggerEncoder.
func NewEventEncoder(ctx context.Context, src Source, f Format, reg *sr.Client, subject string) (*EventEncoder, error) {
	fs := eventFields(src)
	if fs == nil {
		return nil, fmt.Errorf("schemas: no encoder for source %v", src)
	}
	return newEncoder(ctx, f, reg, subject, EventSchema(src), fs)
}

func newEncoder[T any](ctx context.Context, f Format, reg *sr.Client, subject, avsc string, fs []field[T]) (*Encoder[T], error) {
	e := &Encoder[T]{f: f, fields: fs}
	switch f {
	case FormatAvro:
		w, err := newAvroWriter(ctx, reg, subject, avsc, fs)
		if err != nil {
			return nil, err
		}
		e.avro = w
	case FormatJSON:
	default:
		return nil, fmt.Errorf("schemas: unknown format %q", f)
	}
	return e, nil
}

// SchemaID is the registry ID of the schema the encoder writes with, or 0
// for FormatJSON.
func (e *Encoder[T]) SchemaID() int {
	if e.avro == nil {
		return 0
	}
	return e.avro.id
}

// Encode appends the encoding of v to dst and returns the extended slice;
// the caller owns it. Reusing dst across calls saves the allocation of the
// output buffer. Encode does not validate v. On error it returns dst as it
// was.
func (e *Encoder[T]) Encode(dst []byte, v *T) ([]byte, error) {
	if e.avro == nil {
		return appendJSONObject(dst, e.fields, v), nil
	}
	return e.avro.encode(dst, v), nil
}
