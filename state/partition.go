package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/triggerd/triggerd/schemas"
)

// Partition is the state of one partition, read and written in batches: one
// batch per poll, committed or aborted as a whole.
//
// A Partition belongs to one goroutine (the partition worker) and takes no
// locks. All reads see the batch's own writes.
//
// The batch is a Pebble indexed batch plus two in-memory tables:
//   - customers: a write-back cache of decoded records, written at Commit;
//   - timer changes: the last state of every timer touched in the batch, for
//     Changes. The timer indexes themselves are updated in the indexed batch
//     as Schedule, Cancel and PopDue run, so Timer, PopDue and NextDue read
//     them through the batch (batch overlaid on the DB), with no merge code
//     of our own.
//
// Everything the batch hands out (customer pointers, Changes buffers) stays
// valid until Commit or Abort, then is reused.
type Partition struct {
	store *Store
	db    *pebble.DB
	num   uint32
	err   error // sticky: a failed write, a load error, a drop or a close

	batch *pebble.Batch // indexed: reads see it

	// The customer cache. custs keeps the batch's customers in first-use
	// order, so Changes and Commit are deterministic.
	custIdx map[schemas.CustomerID]int
	custs   []custEntry
	free    []*schemas.Customer

	// Timers touched in the batch, in first-touch order.
	timerIdx map[timerRef]int
	timers   []timerChange

	// arena holds the batch's encoded keys and values: timer values as they
	// are scheduled, customer keys and values when the batch is sealed. It
	// is only appended to until Commit/Abort, so slices handed to Changes
	// stay valid even when it grows (they keep the old array).
	arena []byte
	// sealed is set by Changes: customers and offsets are encoded and the
	// batch takes no more writes, so that Commit writes to Pebble exactly
	// what Changes reported to the changelog.
	sealed     bool
	offsetsKey span // changelog offsets record, when offsetsDirty
	offsetsVal span

	// Offsets: committed, and the working copy the batch updates.
	committedInputs    map[string]int64
	committedChangelog int64
	inputs             map[string]int64
	offsetsDirty       bool

	// The pending-timer count, committed and working.
	committedPending int64
	pending          int64

	// floor is an encoded due time at or below every pending timer's (in the
	// batch's view). Fired timers leave tombstones at the front of the timer
	// index until a compaction drops them; starting scans at the floor seeks
	// past them instead of stepping over each one.
	committedFloor uint64
	floor          uint64

	// Restore: a restore batch is open; restoreOffset is its last record's.
	restoring     bool
	restoreOffset int64

	key, key2 []byte           // scratch keys
	topics    []string         // scratch: sorted topics
	popped    []span           // scratch: timer keys popped by PopDue
	scratch   schemas.Customer // scratch: restore validation
}

type span struct{ off, end int }

type custEntry struct {
	id     schemas.CustomerID
	c      *schemas.Customer // nil when erased before use
	erased bool
	key    span // set when sealed
	val    span // set when sealed; empty for erased
}

type timerRef struct {
	c  schemas.CustomerID
	id string
}

type timerChange struct {
	key     span // the Pebble reverse-index key (with partition prefix)
	val     span // the encoded timer; unused when deleted
	deleted bool
	existed bool // pending in the committed state before the batch
}

func newPartition(s *Store, num int32) *Partition {
	p := &Partition{
		store:           s,
		db:              s.db,
		num:             uint32(num),
		custIdx:         make(map[schemas.CustomerID]int),
		timerIdx:        make(map[timerRef]int),
		committedInputs: make(map[string]int64),
		inputs:          make(map[string]int64),
	}
	p.batch = s.db.NewIndexedBatch()
	if err := p.load(); err != nil {
		p.err = err
	}
	return p
}

// load reads the committed offsets and timer count.
func (p *Partition) load() error {
	p.committedChangelog = -1
	v, closer, err := p.db.Get(appendMetaKey(p.key[:0], p.num, metaOffsets))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("state: partition %d: read offsets: %w", p.num, err)
	default:
		p.committedChangelog, err = decodeOffsets(v, p.committedInputs)
		closer.Close()
		if err != nil {
			return fmt.Errorf("state: partition %d: %w", p.num, err)
		}
	}
	v, closer, err = p.db.Get(appendMetaKey(p.key[:0], p.num, metaTimers))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("state: partition %d: read timer count: %w", p.num, err)
	default:
		if len(v) != 8 {
			closer.Close()
			return fmt.Errorf("state: partition %d: timer count is %d bytes, want 8", p.num, len(v))
		}
		p.committedPending = int64(binary.BigEndian.Uint64(v))
		closer.Close()
	}
	p.reset()
	return nil
}

// close fails the handle from now on.
func (p *Partition) close(reason error) error {
	if p.err == nil {
		p.err = reason
	}
	if p.batch == nil {
		return nil
	}
	err := p.batch.Close()
	p.batch = nil
	if err != nil {
		return fmt.Errorf("state: partition %d: close batch: %w", p.num, err)
	}
	return nil
}

// fail records a write error: the batch's outcome in Pebble is unknown, so
// the handle is unusable and the processor must stop (the changelog replay
// at restart repairs the state).
func (p *Partition) fail(err error) error {
	p.err = err
	return err
}

// Err returns the error that made the handle unusable, or nil.
func (p *Partition) Err() error { return p.err }

// reset starts a new batch from the committed state, keeping every buffer.
func (p *Partition) reset() {
	if p.batch != nil {
		p.batch.Reset()
	}
	for i := range p.custs {
		if c := p.custs[i].c; c != nil {
			p.free = append(p.free, c)
		}
		p.custs[i] = custEntry{}
	}
	p.custs = p.custs[:0]
	clear(p.custIdx)
	p.timers = p.timers[:0]
	clear(p.timerIdx)
	p.arena = p.arena[:0]
	p.sealed = false
	clear(p.inputs)
	maps.Copy(p.inputs, p.committedInputs)
	p.offsetsDirty = false
	p.pending = p.committedPending
	p.floor = p.committedFloor
	p.restoring = false
	p.restoreOffset = -1
}

// check returns the sticky error, or an error if a restore or a sealed batch
// makes the call wrong.
func (p *Partition) check(op string) error {
	switch {
	case p.err != nil:
		return p.err
	case p.sealed:
		return fmt.Errorf("state: partition %d: %s after Changes: the batch is sealed until Commit or Abort", p.num, op)
	case p.restoring:
		return fmt.Errorf("state: partition %d: %s during a restore: call FlushRestore first", p.num, op)
	}
	return nil
}

func (p *Partition) bytes(s span) []byte { return p.arena[s.off:s.end:s.end] }

// Customer returns the record of id, loading it from Pebble on its first use
// in the batch; an unknown customer gets a new record with only ID set. The
// record is the cache's: the caller updates it in place, and every record
// returned in a batch is written at Commit. The pointer is valid until
// Commit or Abort; after that the record is reused for another customer.
func (p *Partition) Customer(id schemas.CustomerID) (*schemas.Customer, error) {
	if i, ok := p.custIdx[id]; ok {
		e := &p.custs[i]
		if e.erased {
			if err := p.check("Customer"); err != nil {
				return nil, err
			}
			if e.c == nil {
				e.c = p.newCustomer()
			}
			resetCustomer(e.c)
			e.c.ID = id
			e.erased = false
		}
		return e.c, nil
	}
	if err := p.check("Customer"); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("state: empty customer ID")
	}
	c := p.newCustomer()
	p.key = appendCustomerKey(p.key[:0], p.num, id)
	v, closer, err := p.db.Get(p.key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		resetCustomer(c)
	case err != nil:
		p.free = append(p.free, c)
		return nil, fmt.Errorf("state: partition %d: read customer %q: %w", p.num, id, err)
	default:
		err = decodeCustomer(v, c)
		closer.Close()
		if err != nil {
			p.free = append(p.free, c)
			return nil, fmt.Errorf("state: partition %d: customer %q: %w", p.num, id, err)
		}
	}
	c.ID = id
	p.custIdx[id] = len(p.custs)
	p.custs = append(p.custs, custEntry{id: id, c: c})
	return c, nil
}

func (p *Partition) newCustomer() *schemas.Customer {
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		return c
	}
	return new(schemas.Customer)
}

// Erase deletes the customer's record and all of its timers (a profile
// erasure). A later Customer(id) in the same batch starts a new record.
func (p *Partition) Erase(id schemas.CustomerID) error {
	if err := p.check("Erase"); err != nil {
		return err
	}
	if i, ok := p.custIdx[id]; ok {
		p.custs[i].erased = true
	} else {
		p.custIdx[id] = len(p.custs)
		p.custs = append(p.custs, custEntry{id: id, erased: true})
	}
	// All timers of the customer share the reverse-index prefix
	// <p>'r'<esc(id)>.
	lower := appendReverseKey(nil, p.num, id, "")
	upper := slices.Clone(lower)
	upper[len(upper)-1]++ // the terminator 0x00 0x01 becomes 0x00 0x02
	it, err := p.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: partition %d: erase %q: %w", p.num, id, err)
	}
	var ids []string
	for valid := it.First(); valid; valid = it.Next() {
		ids = append(ids, string(it.Key()[len(lower):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: partition %d: erase %q: %w", p.num, id, err)
	}
	for _, tid := range ids {
		if err := p.Cancel(id, tid); err != nil {
			return err
		}
	}
	return nil
}

// getDue reads the reverse-index entry at p.key2 (batch overlaid on the DB).
func (p *Partition) getDue(rkey []byte) (uint64, bool, error) {
	v, closer, err := p.batch.Get(rkey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state: partition %d: read timer index: %w", p.num, err)
	}
	defer closer.Close()
	if len(v) != dueLen {
		return 0, false, fmt.Errorf("state: partition %d: reverse timer entry is %d bytes, want %d", p.num, len(v), dueLen)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func (p *Partition) writeErr(err error) error {
	return p.fail(fmt.Errorf("state: partition %d: write batch: %w", p.num, err))
}

// Schedule adds the timer (t.Customer, t.ID), or moves it (and replaces its
// fields) if it is pending. Due is kept to the millisecond, like Kafka
// timestamps; a timer comes back with Due truncated and in UTC. Cost: two
// index writes and one point read, O(log n).
func (p *Partition) Schedule(t schemas.Timer) error {
	if err := p.check("Schedule"); err != nil {
		return err
	}
	if t.Customer == "" || t.ID == "" {
		return fmt.Errorf("state: timer needs a customer and an ID (customer %q, ID %q)", t.Customer, t.ID)
	}
	ms := t.Due.UnixMilli()
	due := encodeDue(ms)
	p.key2 = appendReverseKey(p.key2[:0], p.num, t.Customer, t.ID)
	old, found, err := p.getDue(p.key2)
	if err != nil {
		return err
	}
	start := len(p.arena)
	p.arena = appendTimer(p.arena, &t, ms)
	val := span{start, len(p.arena)}
	if found && old != due {
		p.key = appendTimerKey(p.key[:0], p.num, old, t.Customer, t.ID)
		if err := p.batch.Delete(p.key, nil); err != nil {
			return p.writeErr(err)
		}
	}
	p.key = appendTimerKey(p.key[:0], p.num, due, t.Customer, t.ID)
	if err := p.batch.Set(p.key, p.bytes(val), nil); err != nil {
		return p.writeErr(err)
	}
	if !found || old != due {
		var b [dueLen]byte
		binary.BigEndian.PutUint64(b[:], due)
		if err := p.batch.Set(p.key2, b[:], nil); err != nil {
			return p.writeErr(err)
		}
	}
	if !found {
		p.pending++
	}
	if due < p.floor {
		p.floor = due
	}
	p.noteTimer(t.Customer, t.ID, p.key2, val, false, found)
	return nil
}

// noteTimer records the timer's last state in the batch for Changes.
func (p *Partition) noteTimer(c schemas.CustomerID, id string, rkey []byte, val span, deleted, existed bool) {
	ref := timerRef{c, id}
	if i, ok := p.timerIdx[ref]; ok {
		p.timers[i].val = val
		p.timers[i].deleted = deleted
		return
	}
	start := len(p.arena)
	p.arena = append(p.arena, rkey...)
	p.timerIdx[ref] = len(p.timers)
	p.timers = append(p.timers, timerChange{
		key: span{start, len(p.arena)}, val: val, deleted: deleted, existed: existed,
	})
}

// Cancel removes the timer (c, id); it is a no-op if the timer is not
// pending.
func (p *Partition) Cancel(c schemas.CustomerID, id string) error {
	if err := p.check("Cancel"); err != nil {
		return err
	}
	p.key2 = appendReverseKey(p.key2[:0], p.num, c, id)
	due, found, err := p.getDue(p.key2)
	if err != nil || !found {
		return err
	}
	p.key = appendTimerKey(p.key[:0], p.num, due, c, id)
	if err := p.batch.Delete(p.key, nil); err != nil {
		return p.writeErr(err)
	}
	if err := p.batch.Delete(p.key2, nil); err != nil {
		return p.writeErr(err)
	}
	p.pending--
	p.noteTimer(c, id, p.key2, span{}, true, true)
	return nil
}

// Timer returns the pending timer (c, id), if any.
func (p *Partition) Timer(c schemas.CustomerID, id string) (schemas.Timer, bool, error) {
	if p.err != nil {
		return schemas.Timer{}, false, p.err
	}
	p.key2 = appendReverseKey(p.key2[:0], p.num, c, id)
	due, found, err := p.getDue(p.key2)
	if err != nil || !found {
		return schemas.Timer{}, false, err
	}
	p.key = appendTimerKey(p.key[:0], p.num, due, c, id)
	v, closer, err := p.batch.Get(p.key)
	if err != nil {
		// A reverse entry without its timer is corruption, not "absent".
		return schemas.Timer{}, false, fmt.Errorf("state: partition %d: timer %q/%q: read index: %w", p.num, c, id, err)
	}
	defer closer.Close()
	var t schemas.Timer
	if _, err := decodeTimer(v, &t); err != nil {
		return schemas.Timer{}, false, fmt.Errorf("state: partition %d: timer %q/%q: %w", p.num, c, id, err)
	}
	return t, true, nil
}

// timerBounds returns the bounds of the timer index from the floor up to and
// including dueMS (or to its end if dueMS is the largest time).
func (p *Partition) timerBounds(upToMS int64, all bool) (lower, upper []byte) {
	lower = appendPartition(p.key[:0], p.num)
	lower = append(lower, kindTimer)
	lower = binary.BigEndian.AppendUint64(lower, p.floor)
	upper = appendPartition(p.key2[:0], p.num)
	if all || upToMS == math.MaxInt64 {
		upper = append(upper, kindTimer+1)
	} else {
		upper = append(upper, kindTimer)
		upper = binary.BigEndian.AppendUint64(upper, encodeDue(upToMS)+1)
	}
	p.key, p.key2 = lower, upper
	return lower, upper
}

// PopDue removes and returns up to limit (<= 0: no limit) pending timers due
// at or before upTo, in due order, ties by customer then ID. It sees the
// batch's own schedules and cancels, and its removals are part of the batch
// (an aborted batch puts the timers back). The timers are appended to dst.
func (p *Partition) PopDue(upTo time.Time, limit int, dst []schemas.Timer) ([]schemas.Timer, error) {
	if err := p.check("PopDue"); err != nil {
		return dst, err
	}
	upToMS := upTo.UnixMilli()
	lower, upper := p.timerBounds(upToMS, false)
	if p.floor > encodeDue(upToMS) {
		return dst, nil
	}
	it, err := p.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return dst, fmt.Errorf("state: partition %d: pop timers: %w", p.num, err)
	}
	// Collect first, delete after: the iterator is not touched while the
	// batch grows.
	p.popped = p.popped[:0]
	first := len(dst)
	full := false
	var lastDue uint64
	for valid := it.First(); valid; valid = it.Next() {
		if limit > 0 && len(dst)-first == limit {
			full = true
			break
		}
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return dst[:first], fmt.Errorf("state: partition %d: pop timers: %w", p.num, err)
		}
		dst = append(dst, schemas.Timer{})
		if _, err := decodeTimer(v, &dst[len(dst)-1]); err != nil {
			it.Close()
			return dst[:first], fmt.Errorf("state: partition %d: pop timers: key %x: %w", p.num, k, err)
		}
		lastDue = binary.BigEndian.Uint64(k[partLen+1:])
		start := len(p.arena)
		p.arena = append(p.arena, k...)
		p.popped = append(p.popped, span{start, len(p.arena)})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return dst[:first], fmt.Errorf("state: partition %d: pop timers: %w", p.num, err)
	}
	for i, s := range p.popped {
		t := &dst[first+i]
		if err := p.batch.Delete(p.bytes(s), nil); err != nil {
			return dst, p.writeErr(err)
		}
		p.key2 = appendReverseKey(p.key2[:0], p.num, t.Customer, t.ID)
		if err := p.batch.Delete(p.key2, nil); err != nil {
			return dst, p.writeErr(err)
		}
		p.pending--
		p.noteTimer(t.Customer, t.ID, p.key2, span{}, true, true)
	}
	switch {
	case full:
		p.floor = lastDue // more may be due at lastDue
	case upToMS < math.MaxInt64:
		p.floor = max(p.floor, encodeDue(upToMS)+1)
	}
	return dst, nil
}

// NextDue returns the earliest pending due time (batch included), or false
// if no timer is pending.
func (p *Partition) NextDue() (time.Time, bool, error) {
	if p.err != nil {
		return time.Time{}, false, p.err
	}
	lower, upper := p.timerBounds(0, true)
	it, err := p.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("state: partition %d: next due: %w", p.num, err)
	}
	var due uint64
	found := it.First()
	if found {
		due = binary.BigEndian.Uint64(it.Key()[partLen+1:])
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return time.Time{}, false, fmt.Errorf("state: partition %d: next due: %w", p.num, err)
	}
	if !found {
		return time.Time{}, false, nil
	}
	if !p.restoring {
		p.floor = due // nothing pending sorts before it
	}
	return time.UnixMilli(decodeDue(due)).UTC(), true, nil
}

// PendingTimers returns the number of pending timers, batch included. It is
// kept up to date by every change and costs nothing.
func (p *Partition) PendingTimers() int64 { return p.pending }

// SetOffset records the input offset to resume from (the next record) for
// topic; it is committed with the batch and travels in the changelog.
// It panics after Changes: the changelog has already been produced.
func (p *Partition) SetOffset(topic string, next int64) {
	if p.sealed {
		panic(fmt.Sprintf("state: partition %d: SetOffset after Changes: the batch is sealed until Commit or Abort", p.num))
	}
	p.inputs[topic] = next
	p.offsetsDirty = true
}

// Offsets returns the committed offsets (a copy, owned by the caller).
func (p *Partition) Offsets() (Offsets, error) {
	if p.err != nil {
		return Offsets{}, p.err
	}
	return Offsets{Inputs: maps.Clone(p.committedInputs), Changelog: p.committedChangelog}, nil
}

// sortedTopics returns the topics of p.inputs in order, in a reused slice.
func (p *Partition) sortedTopics() []string {
	p.topics = p.topics[:0]
	for t := range p.inputs {
		p.topics = append(p.topics, t)
	}
	slices.Sort(p.topics)
	return p.topics
}

// seal encodes the customers and the offsets into the arena. From here on
// the batch takes no more writes.
func (p *Partition) seal() {
	if p.sealed {
		return
	}
	for i := range p.custs {
		e := &p.custs[i]
		start := len(p.arena)
		p.arena = appendCustomerKey(p.arena, p.num, e.id)
		e.key = span{start, len(p.arena)}
		if e.erased {
			e.val = span{}
			continue
		}
		start = len(p.arena)
		p.arena = appendCustomer(p.arena, e.c)
		e.val = span{start, len(p.arena)}
	}
	if p.offsetsDirty {
		start := len(p.arena)
		p.arena = appendMetaKey(p.arena, p.num, metaOffsets)
		p.offsetsKey = span{start, len(p.arena)}
		start = len(p.arena)
		// The changelog copy carries no changelog offset (it cannot know its
		// own): a restore takes it from the record's position.
		p.arena = appendOffsets(p.arena, p.sortedTopics(), p.inputs, -1)
		p.offsetsVal = span{start, len(p.arena)}
	}
	p.sealed = true
}

// Changes calls fn for every key the batch changed, last value per key; a
// nil value is a tombstone (an erased customer, a cancelled or fired timer).
// Keys and values are the changelog wire format (see doc.go): the Pebble key
// without its partition prefix, and the stored value. The buffers are valid
// until Commit or Abort.
//
// Changes seals the batch: Commit then writes exactly what Changes reported,
// and a write (Customer of a new ID, Schedule, Cancel, PopDue, Erase,
// SetOffset) fails until Commit or Abort. Records the caller changes through
// a Customer pointer after Changes are not written.
func (p *Partition) Changes(fn func(key, value []byte) error) error {
	if p.err != nil {
		return p.err
	}
	if p.restoring {
		return fmt.Errorf("state: partition %d: Changes during a restore", p.num)
	}
	p.seal()
	for i := range p.custs {
		e := &p.custs[i]
		var v []byte
		if !e.erased {
			v = p.bytes(e.val)
		}
		if err := fn(p.bytes(e.key)[partLen:], v); err != nil {
			return err
		}
	}
	for i := range p.timers {
		t := &p.timers[i]
		if t.deleted && !t.existed {
			continue // born and gone in this batch: the changelog never saw it
		}
		var v []byte
		if !t.deleted {
			v = p.bytes(t.val)
		}
		if err := fn(p.bytes(t.key)[partLen:], v); err != nil {
			return err
		}
	}
	if p.offsetsDirty {
		if err := fn(p.bytes(p.offsetsKey)[partLen:], p.bytes(p.offsetsVal)); err != nil {
			return err
		}
	}
	return nil
}

// Commit writes the batch to Pebble atomically, in one Pebble batch with
// NoSync, together with the offsets: changelogOffset is the Kafka offset of
// the batch's last changelog record, or -1 to keep the stored one. Then it
// starts the next batch. A write error is returned, and the handle is
// unusable after it (the processor stops; the changelog repairs the state).
func (p *Partition) Commit(changelogOffset int64) error {
	if p.err != nil {
		return p.err
	}
	if p.restoring {
		return fmt.Errorf("state: partition %d: Commit during a restore: call FlushRestore", p.num)
	}
	p.seal()
	for i := range p.custs {
		e := &p.custs[i]
		var err error
		if e.erased {
			err = p.batch.Delete(p.bytes(e.key), nil)
		} else {
			err = p.batch.Set(p.bytes(e.key), p.bytes(e.val), nil)
		}
		if err != nil {
			return p.writeErr(err)
		}
	}
	changelog := p.committedChangelog
	if changelogOffset >= 0 {
		changelog = changelogOffset
	}
	if err := p.writeMeta(p.offsetsDirty || changelog != p.committedChangelog, changelog); err != nil {
		return err
	}
	if !p.batch.Empty() {
		if err := p.batch.Commit(pebble.NoSync); err != nil {
			return p.writeErr(err)
		}
	}
	p.committed(changelog)
	return nil
}

// writeMeta adds the offsets (if changed) and the timer count (if changed)
// to the batch.
func (p *Partition) writeMeta(offsets bool, changelog int64) error {
	if offsets {
		start := len(p.arena)
		p.arena = appendOffsets(p.arena, p.sortedTopics(), p.inputs, changelog)
		p.key = appendMetaKey(p.key[:0], p.num, metaOffsets)
		if err := p.batch.Set(p.key, p.arena[start:], nil); err != nil {
			return p.writeErr(err)
		}
	}
	if p.pending != p.committedPending {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(p.pending))
		p.key = appendMetaKey(p.key[:0], p.num, metaTimers)
		if err := p.batch.Set(p.key, b[:], nil); err != nil {
			return p.writeErr(err)
		}
	}
	return nil
}

// committed makes the working state the committed one and starts a new batch.
func (p *Partition) committed(changelog int64) {
	clear(p.committedInputs)
	maps.Copy(p.committedInputs, p.inputs)
	p.committedChangelog = changelog
	p.committedPending = p.pending
	p.committedFloor = p.floor
	p.reset()
}

// Abort drops everything since the last Commit (or FlushRestore): the next
// batch reads the committed state again.
func (p *Partition) Abort() {
	if p.err != nil {
		return
	}
	p.reset()
}
