package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// TriggerEncoder encodes triggers with the current trigger schema. It is
// safe for concurrent use.
type TriggerEncoder struct {
	f    Format
	avro *avroWriter[Trigger]
}

// NewTriggerEncoder returns an encoder for format f. For FormatAvro it
// registers the embedded trigger schema under subject (ValueSubject of the
// trigger topic) and frames every record with the ID the registry returns;
// a registry that rejects the schema as incompatible fails here, at start.
// For FormatJSON, reg and subject are unused.
func NewTriggerEncoder(ctx context.Context, f Format, reg *sr.Client, subject string) (*TriggerEncoder, error) {
	e := &TriggerEncoder{f: f}
	switch f {
	case FormatAvro:
		w, err := newAvroWriter(ctx, reg, subject, triggerAvsc, triggerFields)
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
func (e *TriggerEncoder) SchemaID() int {
	if e.avro == nil {
		return 0
	}
	return e.avro.id
}

// Encode appends the encoding of t to dst and returns the extended slice;
// the caller owns it. Reusing dst across calls saves the allocation of the
// output buffer. Encode does not validate t. On error it returns dst as it
// was.
func (e *TriggerEncoder) Encode(dst []byte, t *Trigger) ([]byte, error) {
	if e.f == FormatJSON {
		return appendJSONObject(dst, triggerFields, t), nil
	}
	return e.avro.encode(dst, t), nil
}

// EventEncoder encodes events of one Source with its current schema, for
// the traffic generator and tests. It is safe for concurrent use.
type EventEncoder struct {
	src  Source
	f    Format
	avro *avroWriter[Event]
}

// NewEventEncoder returns an encoder for the events of src in format f.
// Registration is as for NewTriggerEncoder.
func NewEventEncoder(ctx context.Context, src Source, f Format, reg *sr.Client, subject string) (*EventEncoder, error) {
	fs := eventFields(src)
	if fs == nil {
		return nil, fmt.Errorf("schemas: no encoder for source %v", src)
	}
	e := &EventEncoder{src: src, f: f}
	switch f {
	case FormatAvro:
		w, err := newAvroWriter(ctx, reg, subject, EventSchema(src), fs)
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
func (e *EventEncoder) SchemaID() int {
	if e.avro == nil {
		return 0
	}
	return e.avro.id
}

// Encode appends the encoding of ev to dst and returns the extended slice,
// as TriggerEncoder.Encode does. ev.Source is ignored: the encoder's source
// decides the schema. Encode does not validate ev, so tests can write bad
// records.
func (e *EventEncoder) Encode(dst []byte, ev *Event) ([]byte, error) {
	if e.f == FormatJSON {
		return appendJSONObject(dst, eventFields(e.src), ev), nil
	}
	return e.avro.encode(dst, ev), nil
}
