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
	// maxBlockCount bounds the items goavro allocates room for up front
	// when it reads an array or map block count: its default (2^31-1) lets
	// a 10-byte record ask for tens of gigabytes. No real record carries
	// more than 65536 cart lines, properties or opt-ins.
	maxBlockCount = 1 << 16
	// maxCachedIDs caps the schema IDs a reader remembers as unusable.
	maxCachedIDs = 1024
)

var limitGoavro sync.Once

// newCodec compiles an Avro schema with goavro. goavro's allocation limits
// are package variables; this package is the only user of goavro in the
// binary, so it sets them here, once, before the first codec exists.
func newCodec(schema string) (*goavro.Codec, error) {
	limitGoavro.Do(func() { goavro.MaxBlockCount = maxBlockCount })
	return goavro.NewCodec(schema)
}

// avroReader decodes Confluent-framed Avro records into a T by looking up
// each record's writer schema in the registry and mapping the writer's
// fields onto T by name. It is safe for concurrent use.
type avroReader[T any] struct {
	reg     *sr.Client
	name    string // the reader's record name, unqualified
	targets map[string]field[T]

	// writers maps a schema ID to its compiled writer. It is copied on
	// write: a lookup on the hot path is one atomic load and one map read,
	// with no lock shared between partition workers.
	writers atomic.Pointer[map[int]*writer[T]]
	// fetchMu serializes registry lookups, so that workers that see a new
	// ID at once ask the registry once.
	fetchMu sync.Mutex
}

// writer is one writer schema, compiled for reading into a T.
type writer[T any] struct {
	codec  *goavro.Codec
	fields []writerField[T] // the writer's fields that T has, in writer order

	err     *DecodeError // not nil: records with this ID cannot be read
	retryAt time.Time    // for an unknown ID: ask the registry again after
}

type writerField[T any] struct {
	name string
	t    *wtype
	set  func(dst *T, v any, t *wtype) error
}

func newAvroReader[T any](reg *sr.Client, schema string, fs []field[T]) *avroReader[T] {
	wt, err := parseWriterSchema(schema)
	if err != nil {
		panic(err) // the embedded schemas parse: a test proves it
	}
	r := &avroReader[T]{reg: reg, name: unqualified(wt.name), targets: make(map[string]field[T], len(fs))}
	for _, f := range fs {
		r.targets[f.name] = f
	}
	r.writers.Store(&map[int]*writer[T]{})
	return r
}

var confluent sr.ConfluentHeader

func (r *avroReader[T]) decode(ctx context.Context, value []byte, dst *T) error {
	id, payload, err := confluent.DecodeID(value)
	if err != nil {
		return decodeErrf(ReasonUndecodable, "", "not Confluent-framed Avro (magic byte 0, 4-byte schema ID)")
	}
	w, err := r.writer(ctx, id)
	if err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	native, rest, err := nativeFromBinary(w.codec, payload)
	if err != nil {
		return decodeErrf(ReasonUndecodable, "", "schema %d: %w", id, err)
	}
	if len(rest) > 0 {
		return decodeErrf(ReasonUndecodable, "", "schema %d: %d bytes after the record", id, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return decodeErrf(ReasonWrongSchema, "", "schema %d is not a record", id)
	}
	for _, f := range w.fields {
		if err := f.set(dst, m[f.name], f.t); err != nil {
			return decodeErr(ReasonWrongSchema, f.name, err)
		}
	}
	return nil
}

// nativeFromBinary guards against a panic in goavro on crafted input: a
// record that crashes the processor would crash it again on every restart.
func nativeFromBinary(c *goavro.Codec, b []byte) (native any, rest []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			native, rest, err = nil, nil, fmt.Errorf("goavro panicked: %v", p)
		}
	}()
	return c.NativeFromBinary(b)
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
				err:     decodeErrf(ReasonUndecodable, "", "schema ID %d is not in the registry", id),
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
	codec, err := newCodec(s.Schema)
	if err != nil {
		return wrong("%v", err)
	}
	wt, err := parseWriterSchema(s.Schema)
	if err != nil {
		return wrong("%v", err)
	}
	if wt.kind != "record" {
		return wrong("is a %s, not a record", wt.kind)
	}
	// As in Avro's schema resolution, the record names must match (the
	// namespace may differ): a clickstream record on the profile topic has
	// the fields every event has, and must not pass as a profile update.
	if name := unqualified(wt.name); name != r.name {
		return wrong("is record %s, want %s", name, r.name)
	}
	w := &writer[T]{codec: codec}
	for _, f := range wt.fields {
		if tf, ok := r.targets[f.name]; ok {
			w.fields = append(w.fields, writerField[T]{name: f.name, t: f.t, set: tf.set})
		}
	}
	return w, nil
}

func unqualified(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}

// avroWriter encodes a T with the current schema, registered in the
// registry under one subject. It is safe for concurrent use.
type avroWriter[T any] struct {
	id     int
	codec  *goavro.Codec
	fields []encField[T]
}

type encField[T any] struct {
	name   string
	union  *wtype // the non-null branch if the field is a union, else nil
	native func(src *T) any
}

func newAvroWriter[T any](ctx context.Context, reg *sr.Client, subject, schema string, fs []field[T]) (*avroWriter[T], error) {
	if reg == nil {
		return nil, errors.New("schemas: the avro format needs a schema registry client")
	}
	if subject == "" {
		return nil, errors.New("schemas: the avro format needs a registry subject")
	}
	codec, err := newCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("schemas: compiling the embedded schema: %w", err)
	}
	wt, err := parseWriterSchema(schema)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]field[T], len(fs))
	for _, f := range fs {
		byName[f.name] = f
	}
	w := &avroWriter[T]{codec: codec}
	for _, sf := range wt.fields {
		f, ok := byName[sf.name]
		if !ok {
			return nil, fmt.Errorf("schemas: field %q of the embedded schema has no Go field", sf.name)
		}
		ef := encField[T]{name: sf.name, native: f.native}
		if sf.t.kind == "union" {
			for _, b := range sf.t.branches {
				if b.kind != "null" {
					ef.union = b
					break
				}
			}
		}
		w.fields = append(w.fields, ef)
	}
	id, err := reg.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("schemas: registering the schema under subject %q: %w", subject, err)
	}
	w.id = id
	return w, nil
}

func (w *avroWriter[T]) encode(dst []byte, src *T) ([]byte, error) {
	m := make(map[string]any, len(w.fields))
	for _, f := range w.fields {
		v := f.native(src)
		if v != nil && f.union != nil {
			v = goavro.Union(f.union.unionKey(), v)
		}
		m[f.name] = v
	}
	n := len(dst)
	dst, _ = confluent.AppendEncode(dst, w.id, nil)
	out, err := w.codec.BinaryFromNative(dst, m)
	if err != nil {
		return dst[:n], fmt.Errorf("schemas: encoding: %w", err)
	}
	return out, nil
}
