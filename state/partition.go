package state

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/triggerd/triggerd/schemas"
)

// Partition is the state of one partition, read and written in batches: one
// batch per poll, committed or aborted as a whole.
//
// A Partition belongs to one goroutine (the partition worker) and takes no
// locks. All reads see the batch's own writes.
//
// The batch lives in memory until Commit, in three tables:
//   - customers: a write-back cache of decoded records;
//   - timers: the current state of every timer the batch touched (an
//     overlay on the timer indexes in Pebble). Reads look here first, then
//     in Pebble; PopDue and NextDue merge the overlay with a Pebble scan;
//   - held records: the same kind of overlay on the held input records
//     (Hold, Release), read back only by Held, at takeover.
//
// Commit turns them into one Pebble batch. So a customer updated by 100
// events of a poll is read once and written once, and a timer moved 100
// times costs one index update in Pebble, not 100: with Zipf-skewed traffic
// most events hit a few hot customers. (A first version used a Pebble
// indexed batch for the timers, which wrote and read every intermediate
// state: 2.5x slower, see doc.go.)
//
// Everything the batch hands out (customer pointers, Changes buffers) stays
// valid until Commit or Abort, then is reused.
type Partition struct {
	db *pebble.DB
	// writeOpts: pebble.NoSync, or pebble.Sync with Config.SyncWrites.
	writeOpts *pebble.WriteOptions
	num       uint32
	err       error // sticky: a failed write, a load error, a drop or a close

	batch *pebble.Batch // filled by Commit and FlushRestore only; reused

	// The customer cache. custs keeps the batch's customers in first-use
	// order, so Changes and Commit are deterministic.
	custIdx map[schemas.CustomerID]int
	custs   []custEntry
	free    []*schemas.Customer
	// Committed state between batches (see cache): decoded customer
	// records, and timers' committed due times keyed like timerIdx.
	custCache  cache[schemas.CustomerID, *schemas.Customer]
	timerCache cache[string, storedTimer]

	// The timer overlay, in first-touch order. timerIdx is keyed by the
	// timer's reference bytes esc(customer)+ID (the reverse-index key after
	// <p>'r', and the time-ordered key after <p>'t'<due>), so a key read
	// from Pebble is looked up without building strings.
	timerIdx map[string]int
	timers   []timerEntry

	// The held-record overlay, in first-touch order.
	heldIdx map[heldRef]int
	held    []heldEntry
	// heldSet holds the committed held records (see loadHeldSet); nil
	// until first needed.
	heldSet map[heldRef]struct{}

	// arena holds the batch's encoded keys and values: timer and held keys
	// and values as they are touched, customer keys and values when the
	// batch is sealed. It is only appended to until Commit/Abort, so slices
	// handed to Changes stay valid even when it grows (they keep the old
	// array).
	arena []byte
	// sealed is set by Changes: customers and offsets are encoded and the
	// batch takes no more writes, so that Commit writes to Pebble exactly
	// what Changes reported to the changelog.
	sealed     bool
	offsetsKey span // changelog offsets record, when offsetsDirty
	offsetsVal span

	// Offsets: committed, and the working copy the batch updates.
	// committedChangelog is the last committed batch's changelog offset;
	// flushedChangelog, the one Pebble's offsets record holds, is the last
	// write-back's (see writeBack).
	committedInputs    map[string]int64
	committedChangelog int64
	flushedChangelog   int64
	inputs             map[string]int64
	offsetsDirty       bool

	// writeBack holds the committed customer records that are not in
	// Pebble yet, encoded (see Config.WriteBackCommits). Commit changes it
	// under writeBackMu, which ReadCustomer takes to read it from another
	// goroutine; the worker's own reads need no lock.
	writeBack      map[schemas.CustomerID][]byte
	writeBackBytes int      // the encoded bytes it holds
	writeBackSince int      // commits since it was last empty
	writeBackFree  [][]byte // buffers of written-back records, for reuse
	// writeBackFreeBytes is their capacity.
	writeBackFreeBytes int
	writeBackMu        sync.Mutex
	// The write-back limits: commits and bytes (see Config).
	maxWriteBackCommits, maxWriteBackBytes int

	// The pending-timer count, committed and working.
	committedPending int64
	pending          int64

	// The held-record count, committed and working.
	committedHeld int64
	heldCount     int64

	// floor is an encoded due time at or below every pending timer's (in the
	// batch's view). Fired and moved timers leave deletions in the
	// time-ordered index until a compaction drops them; starting scans at the
	// floor seeks past them instead of stepping over each one.
	committedFloor uint64
	floor          uint64

	// Restore: a restore batch is open; restoreOffset is its last record's.
	restoring     bool
	restoreOffset int64
	// tfilter holds the refs of the pending timers in Pebble (and some
	// more): a ref it does not hold needs no index read.
	tfilter timerFilter

	key, key2 []byte           // scratch keys
	rkey      []byte           // scratch key, for PopDue
	topics    []string         // scratch: sorted topics
	due       []int            // scratch: overlay timers due, for PopDue
	scratch   schemas.Customer // scratch: restore validation
	names     names            // scratch: the names table of a customer record being decoded
}

type span struct{ off, end int }

type custEntry struct {
	id     schemas.CustomerID
	c      *schemas.Customer // nil when erased before use
	erased bool
	key    span // set when sealed
	val    span // set when sealed; empty for erased
}

// timerEntry is one timer touched in the batch: its committed state (as
// found in Pebble on first touch) and its state now.
type timerEntry struct {
	key span // the reverse-index key <p>'r'<ref>; ref is key[partLen+1:]

	existed bool   // pending in Pebble before the batch
	oldDue  uint64 // its due time there (encoded), if existed

	pending bool   // pending now
	due     uint64 // encoded due time, if pending
	val     span   // encoded timer, if pending
	erase   bool   // delete the reverse entry instead of unsetting it
	stored  bool   // erase found the reverse entry in Pebble (maybe empty)
}

// batchRetainedBytes is the largest batch buffer a partition keeps for the
// next batch. Pebble's default, 1 MiB, is less than a restore flush (20,000
// records) or a drain cycle's batch with its write-back: such a buffer was
// dropped at every reset and grown again by doubling, a third of the bytes
// the processor allocated in the workload benchmark (BenchmarkRestore:
// 686-725k records/s with the default, 815-891k with this). At most 4 MiB
// a partition stays allocated for it.
const batchRetainedBytes = 4 << 20

func newPartition(s *Store, num int32) *Partition {
	p := &Partition{
		db:              s.db,
		writeOpts:       s.writeOpts,
		num:             uint32(num),
		custIdx:         make(map[schemas.CustomerID]int),
		timerIdx:        make(map[string]int),
		heldIdx:         make(map[heldRef]int),
		committedInputs: make(map[string]int64),
		inputs:          make(map[string]int64),
		custCache:       newCache[schemas.CustomerID, *schemas.Customer](s.cached),
		timerCache:      newCache[string, storedTimer](timersPerCustomer * s.cached),
		writeBack:       make(map[schemas.CustomerID][]byte),

		maxWriteBackCommits: s.writeBackCommits,
		maxWriteBackBytes:   s.writeBackBytes,
	}
	p.batch = s.db.NewBatch(pebble.WithMaxRetainedSizeBytes(batchRetainedBytes))
	if err := p.load(); err != nil {
		p.err = err
	}
	return p
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

// Err returns the error that made the handle unusable, or nil.
func (p *Partition) Err() error { return p.err }

// writeErr records a write error: the batch's outcome in Pebble is unknown,
// so the handle is unusable and the processor must stop (the changelog
// replay at restart repairs the state).
func (p *Partition) writeErr(err error) error {
	p.err = fmt.Errorf("state: partition %d: write: %w", p.num, err)
	return p.err
}

// reset starts a new batch from the committed state, keeping every buffer.
func (p *Partition) reset() {
	if p.batch != nil {
		p.batch.Reset()
	}
	for i := range p.custs {
		if c := p.custs[i].c; c != nil {
			p.freeCustomer(c)
		}
		p.custs[i] = custEntry{}
	}
	p.custs = p.custs[:0]
	clear(p.custIdx)
	p.timers = p.timers[:0]
	clear(p.timerIdx)
	p.held = p.held[:0]
	clear(p.heldIdx)
	p.arena = p.arena[:0]
	p.sealed = false
	clear(p.inputs)
	maps.Copy(p.inputs, p.committedInputs)
	p.offsetsDirty = false
	p.pending = p.committedPending
	p.heldCount = p.committedHeld
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
	if c, ok := p.custCache.take(id); ok {
		p.custIdx[id] = len(p.custs)
		p.custs = append(p.custs, custEntry{id: id, c: c})
		return c, nil
	}
	c := p.newCustomer()
	if err := p.loadCustomer(id, c); err != nil {
		p.freeCustomer(c)
		return nil, err
	}
	c.ID = id
	p.custIdx[id] = len(p.custs)
	p.custs = append(p.custs, custEntry{id: id, c: c})
	return c, nil
}

// loadCustomer decodes the committed record of id into c: from the
// write-back (committed, not yet in Pebble, and not in the cache), else
// from Pebble. An unknown customer gets an empty record.
func (p *Partition) loadCustomer(id schemas.CustomerID, c *schemas.Customer) error {
	v, ok := p.writeBack[id]
	if !ok {
		p.key = appendCustomerKey(p.key[:0], p.num, id)
		var closer io.Closer
		var err error
		v, closer, err = p.db.Get(p.key)
		if errors.Is(err, pebble.ErrNotFound) {
			resetCustomer(c)
			return nil
		}
		if err != nil {
			return fmt.Errorf("state: partition %d: read customer %q: %w", p.num, id, err)
		}
		defer closer.Close()
	}
	if err := decodeCustomerWith(v, c, &p.names); err != nil {
		return fmt.Errorf("state: partition %d: customer %q: %w", p.num, id, err)
	}
	return nil
}

// maxFree bounds the records a partition keeps for reuse. A decoded
// record keeps the capacity of the largest customer it ever held (tens of
// KB for a hot one), and without a bound the free list kept one for every
// customer of the largest cycle ever seen, for good: in the 10M-customer
// benchmark, decoded records were over half the heap, and the GC, held to
// GOMEMLIMIT, took a fifth of the CPU.
const maxFree = 256

// freeCustomer keeps c for reuse, or leaves it to the GC when enough are kept.
func (p *Partition) freeCustomer(c *schemas.Customer) {
	if len(p.free) < maxFree {
		p.free = append(p.free, c)
	}
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
// erasure), leaving no key with the customer's ID. A later Customer(id) in
// the same batch starts a new record.
//
// What the customer record held goes with it: profile, cart, counters,
// marks (once-only and dedupe), contact history, runs and the audit trail.
// Timers go too, deferred triggers included (a deferred trigger lives in its
// timer). Changes reports a tombstone for the record and for every reverse
// timer key stored, a not-pending one too (empty value), so that a restore
// into a store that still has the key (a stale local copy of the
// partition) deletes it as well. Held input records are not the customer's
// state: they are later input, still to be processed, keyed by offset.
func (p *Partition) Erase(id schemas.CustomerID) error {
	if err := p.check("Erase"); err != nil {
		return err
	}
	if id == "" {
		return errors.New("state: empty customer ID")
	}
	if c, ok := p.custCache.take(id); ok {
		p.freeCustomer(c)
	}
	if i, ok := p.custIdx[id]; ok {
		p.custs[i].erased = true
	} else {
		p.custIdx[id] = len(p.custs)
		p.custs = append(p.custs, custEntry{id: id, erased: true})
	}
	// All timers of the customer share the reverse-index prefix
	// <p>'r'<esc(id)>. Bring every one stored into the overlay, then
	// remove every one in the overlay.
	lower := appendReverseKey(nil, p.num, id, "")
	upper := slices.Clone(lower)
	upper[len(upper)-1]++ // the terminator 0x00 0x01 becomes 0x00 0x02
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: partition %d: erase %q: %w", p.num, id, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		if i, ok := p.timerIdx[string(it.Key()[partLen+1:])]; ok {
			p.timers[i].stored = true
			continue
		}
		due, found, err := parseReverse(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("state: partition %d: erase %q: %w", p.num, id, err)
		}
		p.addTimer(it.Key(), found, due).stored = true
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: partition %d: erase %q: %w", p.num, id, err)
	}
	prefix := lower[partLen+1:]
	for i := range p.timers {
		e := &p.timers[i]
		if ref := p.bytes(e.key)[partLen+1:]; len(ref) >= len(prefix) && string(ref[:len(prefix)]) == string(prefix) {
			p.unset(e)
			e.erase = true
		}
	}
	return nil
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
// nil value is a tombstone (an erased customer, a cancelled or fired timer, a
// released held record).
// Keys and values are the changelog wire format (see doc.go): the Pebble key
// without its partition prefix, and the stored value. The buffers are valid
// until Commit or Abort.
//
// Changes seals the batch: Commit then writes exactly what Changes reported,
// and a write (Customer of a new ID, Schedule, Cancel, PopDue, Erase, Hold,
// Release, SetOffset) fails until Commit or Abort. Records the caller changes
// through a Customer pointer after Changes are not written.
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
		e := &p.timers[i]
		var v []byte
		switch {
		case e.pending:
			v = p.bytes(e.val)
		case !e.existed && !(e.erase && e.stored):
			continue // born and gone in this batch, or never there
		}
		if err := fn(p.bytes(e.key)[partLen:], v); err != nil {
			return err
		}
	}
	for i := range p.held {
		e := &p.held[i]
		var v []byte
		switch {
		case e.held:
			v = p.bytes(e.val)
		case !e.existed:
			continue // held and released in this batch, or never held
		}
		if err := fn(p.bytes(e.key)[partLen:], v); err != nil {
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
// the batch's last changelog record, or -1 to keep the stored one. Its
// customer records go to the write-back (see Config.WriteBackCommits), and
// when that is due the write-back goes into the same Pebble batch. Then it
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
	// ReadCustomer reads the write-back and a Pebble snapshot under this
	// lock: it sees both before this commit or both after it.
	p.writeBackMu.Lock()
	defer p.writeBackMu.Unlock()
	wasEmpty := len(p.writeBack) == 0
	for i := range p.custs {
		e := &p.custs[i]
		var err error
		switch {
		case e.erased:
			// Written through: an erasure leaves no key behind.
			p.dropWriteBackLocked(e.id)
			err = p.batch.Delete(p.bytes(e.key), nil)
		case p.maxWriteBackCommits > 1:
			p.keepWriteBackLocked(e.id, p.bytes(e.val))
		default:
			err = p.batch.Set(p.bytes(e.key), p.bytes(e.val), nil)
		}
		if err != nil {
			return p.writeErr(err)
		}
	}
	if err := p.writeTimers(); err != nil {
		return err
	}
	if err := p.writeHeld(); err != nil {
		return err
	}
	changelog := p.committedChangelog
	if changelogOffset >= 0 {
		changelog = changelogOffset
	}
	// flushed is what Pebble will hold every record up to: this commit's
	// offset once the write-back is empty; while it is not, the offset
	// of the last commit before it filled (this batch's records all come
	// after that one).
	flushed := p.flushedChangelog
	if len(p.writeBack) > 0 {
		p.writeBackSince++
		if p.writeBackSince >= p.maxWriteBackCommits || p.writeBackBytes >= p.maxWriteBackBytes {
			if err := p.flushWriteBackLocked(); err != nil {
				return err
			}
		}
	}
	switch {
	case len(p.writeBack) == 0:
		flushed = changelog
		p.writeBackSince = 0
	case wasEmpty:
		flushed = p.committedChangelog
	}
	if err := p.writeMeta(p.offsetsDirty || flushed != p.flushedChangelog, flushed); err != nil {
		return err
	}
	if !p.batch.Empty() {
		if err := p.batch.Commit(p.writeOpts); err != nil {
			return p.writeErr(err)
		}
	}
	p.flushedChangelog = flushed
	p.committed(changelog)
	return nil
}

// committed makes the working state the committed one and starts a new batch.
func (p *Partition) committed(changelog int64) {
	p.commitHeldSet()
	for i := range p.custs {
		e := &p.custs[i]
		if e.c == nil || e.erased {
			continue // reset frees it
		}
		if old, ok := p.custCache.put(e.id, e.c); ok {
			p.freeCustomer(old)
		}
		e.c = nil
	}
	// timerIdx's keys are the timers' refs, already strings. An erased
	// customer's IDs leave the cache as they leave Pebble.
	for ref, i := range p.timerIdx {
		if e := &p.timers[i]; e.erase {
			p.timerCache.take(ref)
		} else {
			p.timerCache.put(ref, storedTimer{due: e.due, pending: e.pending})
		}
	}
	clear(p.committedInputs)
	maps.Copy(p.committedInputs, p.inputs)
	p.committedChangelog = changelog
	p.committedPending = p.pending
	p.committedHeld = p.heldCount
	p.committedFloor = p.floor
	if p.tfilter.full() { // after committedPending: the rebuild sizes by it
		if err := p.buildTimerFilter(); err != nil {
			// The full filter still holds every pending ref; it only
			// answers yes more often. Try again after as many adds.
			p.tfilter.limit *= 2
		}
	}
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
