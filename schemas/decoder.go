package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"
)

// Decoder decodes the record values of one input topic into Events. It is
// safe for concurrent use: partition workers may share one Decoder (they
// share its cache of writer schemas) or have one each.
type Decoder struct {
	src  Source
	f    Format
	avro *avroReader[Event] // FormatAvro
	pool sync.Pool          // FormatJSON: of jsonRecord[Event]
}

// NewDecoder returns a Decoder for the records of src in format f. reg is
// required for FormatAvro and unused for FormatJSON.
func NewDecoder(src Source, f Format, reg *sr.Client) (*Decoder, error) {
	d := &Decoder{src: src, f: f}
	switch src {
	case SourceClickstream:
		d.pool.New = func() any { return new(jsonClickstream) }
	case SourceTransaction:
		d.pool.New = func() any { return new(jsonTransaction) }
	case SourceProfile:
		d.pool.New = func() any { return new(jsonProfile) }
	default:
		return nil, fmt.Errorf("schemas: no decoder for source %v", src)
	}
	switch f {
	case FormatAvro:
		if reg == nil {
			return nil, errors.New("schemas: the avro format needs a schema registry client")
		}
		d.avro = newAvroReader(reg, EventSchema(src), eventFields(src))
	case FormatJSON:
	default:
		return nil, fmt.Errorf("schemas: unknown format %q", f)
	}
	return d, nil
}

// Source is the input the Decoder decodes.
func (d *Decoder) Source() Source { return d.src }

// Decode resets ev and fills it from value. The strings, maps and slices in
// ev are ev's own (none alias value, nor one another: a string kept long
// after the record keeps only its own bytes), and ev.Items keeps its
// capacity between calls.
//
// A *DecodeError means the record is bad for good: dead-letter it with its
// Reason. Any other error means the schema registry could not be reached to
// look up the record's writer schema: retry the record later. Decode
// validates customer_id, event_id, type and event_time, money and dates (see
// the Reason constants); it does not check that the record key equals
// ev.Customer, which is the caller's to do.
//
// For Avro, the first record with a new schema ID blocks on one registry
// lookup (at most 10 s); later ones do not touch the registry.
func (d *Decoder) Decode(value []byte, ev *Event) error {
	return d.DecodeContext(context.Background(), value, ev)
}

// DecodeContext is Decode with a context for the registry lookup.
func (d *Decoder) DecodeContext(ctx context.Context, value []byte, ev *Event) error {
	return d.DecodeReusing(ctx, value, ev, nil)
}

// Reuse is what decoding into the same Event again can use instead of
// allocating: the Properties map of the Event's last record, cleared, and
// the property names seen before (events of an input carry the same few;
// at most maxReusedNames are kept). Its zero value is ready; one Reuse goes
// with one Event, and neither is for concurrent use.
type Reuse struct {
	spare map[string]string
	names map[string]string // each name its own string, key and value
}

// maxReusedNames bounds Reuse.names: property names are a schema's few,
// but nothing stops a producer from sending a new one in every record.
const maxReusedNames = 64

// DecodeReusing is DecodeContext for a caller that decodes record after
// record into the same Event: ev's Properties map is cleared and filled
// again rather than replaced, and its names are strings decoded before.
// So the caller must not keep ev.Properties (the map) past the next call;
// the strings in it stay valid. r == nil is DecodeContext.
func (d *Decoder) DecodeReusing(ctx context.Context, value []byte, ev *Event, r *Reuse) error {
	if r != nil && ev.Properties != nil {
		clear(ev.Properties)
		r.spare = ev.Properties
	}
	ev.Reset()
	var err error
	switch d.f {
	case FormatAvro:
		err = d.avro.decode(ctx, value, ev, r)
	case FormatJSON:
		err = decodeJSON[Event](&d.pool, value, ev)
	}
	ev.Source = d.src
	if err != nil {
		return err
	}
	return validateEvent(ev)
}

func decodeJSON[T any](pool *sync.Pool, value []byte, dst *T) error {
	j := pool.Get().(jsonRecord[T])
	defer pool.Put(j)
	j.reset()
	if err := json.Unmarshal(value, j); err != nil {
		return jsonError(err)
	}
	j.copyTo(dst)
	return nil
}

// TriggerDecoder decodes trigger records, for tests, the demo's printer and
// downstream consumers written in Go. It is safe for concurrent use.
type TriggerDecoder struct {
	f    Format
	avro *avroReader[Trigger]
	pool sync.Pool
}

// NewTriggerDecoder returns a TriggerDecoder for format f. reg is required
// for FormatAvro: a record's writer schema is looked up by its ID.
func NewTriggerDecoder(f Format, reg *sr.Client) (*TriggerDecoder, error) {
	d := &TriggerDecoder{f: f}
	d.pool.New = func() any { return new(jsonTrigger) }
	switch f {
	case FormatAvro:
		if reg == nil {
			return nil, errors.New("schemas: the avro format needs a schema registry client")
		}
		d.avro = newAvroReader(reg, triggerAvsc, triggerFields)
	case FormatJSON:
	default:
		return nil, fmt.Errorf("schemas: unknown format %q", f)
	}
	return d, nil
}

// Decode overwrites t from value, reusing the capacity of t.CausedBy and
// t.Items. Errors are as for Decoder.Decode; a trigger needs customer_id,
// trigger_id and rule_id.
func (d *TriggerDecoder) Decode(value []byte, t *Trigger) error {
	return d.DecodeContext(context.Background(), value, t)
}

// DecodeContext is Decode with a context for the registry lookup.
func (d *TriggerDecoder) DecodeContext(ctx context.Context, value []byte, t *Trigger) error {
	*t = Trigger{CausedBy: t.CausedBy[:0], Items: t.Items[:0]}
	var err error
	switch d.f {
	case FormatAvro:
		err = d.avro.decode(ctx, value, t, nil)
	case FormatJSON:
		err = decodeJSON[Trigger](&d.pool, value, t)
	}
	if err != nil {
		return err
	}
	return validateTrigger(t)
}

// DecodeTrigger decodes one trigger record. It looks the writer schema up
// on every call: to read a stream of triggers, use a TriggerDecoder.
func DecodeTrigger(ctx context.Context, f Format, reg *sr.Client, value []byte, t *Trigger) error {
	d, err := NewTriggerDecoder(f, reg)
	if err != nil {
		return err
	}
	return d.DecodeContext(ctx, value, t)
}
