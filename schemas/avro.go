package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

const (
	// registryTimeout bounds one schema lookup made from Decode, which has
	// no context of its own. It happens once per schema ID and decoder.
	registryTimeout = 10 * time.Second
	// unknownIDRetry is how long a schema ID the registry does not know is
	// remembered as unknown: a flood of records with a garbage ID must not
	// become a flood of registry requests.
	unknownIDRetry = time.Minute
	// maxCachedIDs caps the schema IDs a reader remembers as unusable.
	maxCachedIDs = 1024
)

var limitGoavro sync.Once

// newCodec compiles an Avro schema with goavro, which checks it against the
// specification. goavro no longer decodes records here (read.go does), but
// it still vets each writer schema before it is used, and the tests decode
// with it as the reference. goavro's allocation limits are package
// variables; this package is the only user of goavro in the binary, so it
// sets them here, once, before the first codec exists.
func newCodec(schema string) (*goavro.Codec, error) {
	limitGoavro.Do(func() { goavro.MaxBlockCount = maxBlockCount })
	return goavro.NewCodec(schema)
}

// avroReader decodes Confluent-framed Avro records into a T by looking up
// each record's writer schema in the registry and reading the writer's
// fields into T by name. It is safe for concurrent use.
type avroReader[T any] struct {
	reg     *sr.Client
	name    string // the reader's record name, unqualified
	targets map[string]*field[T]

	// writers maps a schema ID to its compiled writer. It is copied on
	// write: a lookup on the hot path is one atomic load and one map read,
	// with no lock shared between partition workers.
	writers atomic.Pointer[map[int]*writer[T]]
	// fetchMu serializes registry lookups, so that workers that see a new
	// ID at once ask the registry once.
	fetchMu sync.Mutex
}

// writer is one writer schema, compiled for reading into a T: the plan of
// a record, resolved once per schema ID so that reading one does no lookup
// by name.
type writer[T any] struct {
	fields []fieldPlan[T] // every field of the writer's record, in writer order
	// customer is the index in fields of customer_id, -1 if the writer
	// has none (Decoder.CustomerID reads up to it).
	customer int

	err     *DecodeError // not nil: records with this ID cannot be read
	retryAt time.Time    // for an unknown ID: ask the registry again after
}

// fieldPlan says how to read one field of the writer's record.
type fieldPlan[T any] struct {
	name string
	t    *wtype    // the writer's type of the field
	f    *field[T] // T's field of that name; nil: T has none, skip the value
}

func newAvroReader[T any](reg *sr.Client, schema string, fs []field[T]) *avroReader[T] {
	wt, err := parseWriterSchema(schema)
	if err != nil {
		panic(err) // the embedded schemas parse: a test proves it
	}
	r := &avroReader[T]{reg: reg, name: unqualified(wt.name), targets: make(map[string]*field[T], len(fs))}
	for i := range fs {
		r.targets[fs[i].name] = &fs[i]
	}
	r.writers.Store(&map[int]*writer[T]{})
	return r
}

var confluent sr.ConfluentHeader

func (r *avroReader[T]) decode(ctx context.Context, value []byte, dst *T, reuse *Reuse) error {
	id, payload, err := confluent.DecodeID(value)
	if err != nil {
		return decodeErrf(ReasonBadFraming, "", "not Confluent-framed Avro (magic byte 0, 4-byte schema ID)")
	}
	w, err := r.writer(ctx, id)
	if err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	in := newAvroIn(payload)
	in.reuse = reuse
	for i := range w.fields {
		p := &w.fields[i]
		in.field = p.name
		if p.f == nil {
			in.skip(p.t)
		} else {
			readField(&in, p.f, p.t, dst)
		}
		if in.err != nil {
			return decodeErrf(malformedReason(in.err), "", "schema %d: field %s at byte %d: %w", id, in.errField, in.errPos, in.err)
		}
	}
	if n := in.left(); n > 0 {
		return decodeErrf(ReasonTrailingBytes, "", "schema %d: %d bytes after the record", id, n)
	}
	if in.wrong != nil {
		return in.wrong
	}
	return nil
}

// malformedReason is the Reason of a record the reader stopped in: it ran
// out of bytes, or it met a value no Avro writer produces.
func malformedReason(err error) string {
	if errors.Is(err, errTruncated) {
		return ReasonTruncated
	}
	return ReasonMalformedAvro
}

// writer returns the compiled writer schema for id, asking the registry on
// first use. An error that is not a *DecodeError means the registry could
// not be asked; the record should be retried.
func (r *avroReader[T]) writer(ctx context.Context, id int) (*writer[T], error) {
	if w := (*r.writers.Load())[id]; w != nil && (w.retryAt.IsZero() || time.Now().Before(w.retryAt)) {
		return w, nil
	}
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if w := (*r.writers.Load())[id]; w != nil && (w.retryAt.IsZero() || time.Now().Before(w.retryAt)) {
		return w, nil // another worker asked while this one waited
	}
	w, err := r.fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	old := *r.writers.Load()
	if w.err != nil && len(old) >= maxCachedIDs {
		// Garbage IDs must not grow the map (copied on every write)
		// without bound; past the cap, they cost a lookup each.
		return w, nil
	}
	m := make(map[int]*writer[T], len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[id] = w
	r.writers.Store(&m)
	return w, nil
}

func (r *avroReader[T]) fetch(ctx context.Context, id int) (*writer[T], error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, registryTimeout)
		defer cancel()
	}
	s, err := r.reg.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return &writer[T]{
				err:     decodeErrf(ReasonUnknownSchema, "", "schema ID %d is not in the registry", id),
				retryAt: time.Now().Add(unknownIDRetry),
			}, nil
		}
		return nil, fmt.Errorf("schemas: looking up schema %d: %w", id, err)
	}
	wrong := func(format string, args ...any) (*writer[T], error) {
		return &writer[T]{err: decodeErrf(ReasonWrongSchema, "", "schema %d: "+format, append([]any{id}, args...)...)}, nil
	}
	if s.Type != sr.TypeAvro {
		return wrong("is %s, not Avro", s.Type)
	}
	if len(s.References) > 0 {
		return wrong("has references, which are not supported")
	}
	if _, err := newCodec(s.Schema); err != nil {
		return wrong("%v", err)
	}
	wt, err := parseWriterSchema(s.Schema)
	if err != nil {
		return wrong("%v", err)
	}
	if wt.kind != wRecord {
		return wrong("is a %s, not a record", wt.kind)
	}
	// As in Avro's schema resolution, the record names must match (the
	// namespace may differ): a clickstream record on the profile topic has
	// the fields every event has, and must not pass as a profile update.
	if name := unqualified(wt.name); name != r.name {
		return wrong("is record %s, want %s", name, r.name)
	}
	w := &writer[T]{fields: make([]fieldPlan[T], len(wt.fields))}
	for i, f := range wt.fields {
		w.fields[i] = fieldPlan[T]{name: f.name, t: f.t, f: r.targets[f.name]}
	}
	w.customer = customerIndex(w.fields)
	return w, nil
}

func unqualified(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}
