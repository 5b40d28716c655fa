package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// layoutVersion is the key layout of doc.go. Open refuses a store written
// with a newer layout; a new layout keeps reading (or migrates) the old one.
//
// Versions: 1, customers and timers; 2, held records ('h' keys and the
// "held" count). A version 1 store is a version 2 store with no held
// records, so Open migrates it by rewriting the version; the bump is there so
// that an older release refuses a store whose held records it would ignore
// (their input offsets are committed: they would be lost).
const layoutVersion = 2

var errClosed = errors.New("state: store closed")

// Store is the process's one Pebble store. Its methods are safe for
// concurrent use; the Partition handles it gives out are not (each belongs to
// one goroutine).
type Store struct {
	db        *pebble.DB
	log       *zap.Logger
	writeOpts *pebble.WriteOptions
	cached    int // customers cached per partition (0: none)
	// Write-back of customer records, per partition (see Config).
	writeBackCommits, writeBackBytes int

	// Write stalls, counted by the event listener for Metrics.
	stalls, stallNanos, stallStart atomic.Int64

	// mu guards the partition handles and closed, and is held only for
	// work that does not depend on the size of the state: a map lookup, a
	// Pebble snapshot, a copy of one record. Loading a partition (which
	// scans its timers) and every read happen outside it, so that
	// /metrics and the admin API never wait for an assignment. Lock order:
	// mu, then a Partition's writeBackMu (see doc.go, Locks).
	mu struct {
		sync.Mutex
		parts  map[int32]*Partition
		closed bool
		// drops counts DropPartition calls, so that a handle loaded
		// outside the lock is not kept if a partition was dropped
		// meanwhile (it could hold the dropped state; drops are rare,
		// so any drop makes the load start again).
		drops uint64
	}
	// inflight counts the loads and reads that use Pebble outside mu:
	// Close waits for them before it closes Pebble. Add is called only
	// under mu with closed false, so it never races the Wait.
	inflight sync.WaitGroup
}

// enterLocked registers a use of Pebble outside mu, which the caller holds;
// false once the store is closed. Every true is paired with s.inflight.Done.
func (s *Store) enterLocked() bool {
	if s.mu.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Open opens (or creates) the store in cfg.Dir.
func Open(cfg Config, log *zap.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = defaultCacheBytes
	}
	if cfg.MemTableBytes == 0 {
		cfg.MemTableBytes = defaultMemTableBytes
	}
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	log = log.With(zap.String("dir", cfg.Dir))
	if cfg.WriteBackCommits == 0 {
		cfg.WriteBackCommits = defaultWriteBackCommits
	}
	if cfg.WriteBackBytes == 0 {
		cfg.WriteBackBytes = defaultWriteBackBytes
	}
	s := &Store{log: log, writeOpts: pebble.NoSync, cached: cfg.CachedCustomers,
		writeBackCommits: cfg.WriteBackCommits, writeBackBytes: cfg.WriteBackBytes}
	opts := &pebble.Options{
		FS:           fs,
		CacheSize:    cfg.CacheBytes,
		MemTableSize: uint64(cfg.MemTableBytes),
		// Pinned rather than FormatNewest, so that a Pebble upgrade does not
		// silently ratchet the on-disk format past what a rollback can open.
		FormatMajorVersion: pebble.FormatValueSeparation,
		Logger:             pebbleLogger{log.Sugar()},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				log.Error("pebble background error", zap.Error(err))
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				s.stalls.Add(1)
				s.stallStart.Store(time.Now().UnixNano())
				log.Warn("pebble write stall", zap.String("reason", info.Reason))
			},
			WriteStallEnd: func() {
				if t := s.stallStart.Swap(0); t != 0 {
					s.stallNanos.Add(time.Now().UnixNano() - t)
				}
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("pebble data corruption", zap.String("path", info.Path), zap.Error(info.Details))
			},
		},
		// The WAL stays on, so that a restart recovers a prefix of the
		// committed batches, each in full or not at all. Commits use NoSync:
		// the changelog topic is the durable copy, and a restart replays it
		// from the changelog offset Pebble holds. A NoSync commit's WAL bytes
		// stay in Pebble's 32 KiB WAL block buffer until the block fills or
		// something syncs, so even a process crash can lose the last few
		// batches: that is fine, and the crash test covers it.
	}
	// Customer loads and timer lookups are point reads of keys that are often
	// absent (new customers, unset timers): bloom filters skip most tables.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// With millions of customers in state, compactions are the largest
	// single cost of the process (a third of its CPU in the benchmark's
	// drain), so the LSM is shaped for CPU rather than disk: Pebble is a
	// cache of the changelog, and disk is the cheap side.
	//
	// L0 is compacted into Lbase at 8 sublevels rather than 4: customer
	// keys are spread over the whole key range, so every L0 table overlaps
	// most of Lbase, and each L0 compaction rewrites Lbase's overlap once
	// for twice the L0 bytes (BenchmarkDrainAtScale at 10M customers:
	// compacted bytes and compaction time fell by 45%, CPU per event by a
	// fifth or more). Point reads pay a little for the extra sublevels,
	// bloom filters keeping it small (in the workload benchmark's live
	// phase, 14.5% of the CPU against 12.7%). Writes stop at 20 sublevels
	// (Pebble's default of 12 would leave little room above 8).
	opts.L0CompactionThreshold = 8
	opts.L0StopWritesThreshold = 20
	// Row blocks (sstable format v4) rather than Pebble's columnar ones
	// (v5 and later, built for CockroachDB's MVCC keys): this store's
	// compactions cost less with them. BenchmarkDrainAtScale (10M seeded
	// customers, 3M events), two runs each: compactions took 12.3-12.6 s
	// against 13.7-15.9 s, and the CPU per event was 11.7-12.5 µs against
	// 12.6-13.5. The workload benchmark on the real broker (2M state,
	// exactly-once), two runs each: 30-31 ms of compaction per MB compacted
	// against 34-39 in the drain, 18-21 against 20-23 live, and a store
	// 3-5% smaller. Pebble reads both formats: a store written with either
	// opens with the other (TestReadsColumnarTables).
	columnar := cfg.columnarBlocks
	opts.Experimental.EnableColumnarBlocks = func() bool { return columnar }
	// Pebble's "fastest" is MinLZ on columnar tables (v6 and later) and
	// Snappy on the row tables above: MinLZ compressed the benchmark's
	// customer records to 62% where Snappy made 59%, in half the time, and
	// the row blocks' measured gain already pays for Snappy.
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", cfg.Dir, err)
	}
	s.db = db
	switch {
	case s.cached == 0:
		s.cached = defaultCachedCustomers
	case s.cached < 0:
		s.cached = 0
	}
	if cfg.SyncWrites {
		s.writeOpts = pebble.Sync
	}
	s.mu.parts = make(map[int32]*Partition)
	if err := s.checkLayout(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return s, nil
}

// checkLayout reads the store's layout version, writing it into a new store.
func (s *Store) checkLayout() error {
	key := appendMetaKey(nil, storePart, "layout")
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		if err := s.db.Set(key, binary.BigEndian.AppendUint32(nil, layoutVersion), pebble.Sync); err != nil {
			return fmt.Errorf("state: write layout version: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: read layout version: %w", err)
	}
	defer closer.Close()
	if len(v) != 4 {
		return fmt.Errorf("state: layout version is %d bytes, want 4", len(v))
	}
	switch got := binary.BigEndian.Uint32(v); got {
	case layoutVersion:
	case 1:
		if err := s.db.Set(key, binary.BigEndian.AppendUint32(nil, layoutVersion), pebble.Sync); err != nil {
			return fmt.Errorf("state: migrate layout version 1 to %d: %w", layoutVersion, err)
		}
		s.log.Info("migrated store layout", zap.Uint32("from", 1), zap.Uint32("to", layoutVersion))
	default:
		return fmt.Errorf("state: store layout version %d is unknown to this release (it knows 1 to %d)", got, layoutVersion)
	}
	return nil
}

// Close closes the store. Every partition worker must have stopped; their
// handles fail from now on. Uncommitted batches are dropped; committed
// customer records in write-back are written. It waits for the loads and
// reads in progress (Partition, ReadCustomer, ScanPartition) to end.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.mu.closed = true
	parts := s.mu.parts
	s.mu.parts = nil
	s.mu.Unlock()
	s.inflight.Wait()
	var errs []error
	for _, p := range parts {
		// A clean stop leaves no customer record in write-back only:
		// the next start then has nothing to restore.
		errs = append(errs, p.writeBackAll(), p.close(errClosed))
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("state: close: %w", err))
	}
	return errors.Join(errs...)
}

// Partition returns the handle for partition p, creating it on first use.
// Later calls return the same handle until DropPartition(p) or Close, so a
// partition revoked and assigned again (without a drop) gets its handle back,
// with its committed state. Ownership moves with the assignment: the old
// worker must have stopped, after Commit or Abort, before a new one uses it.
//
// Partition has no error result: if p is negative, the store is closed, or
// the partition's metadata cannot be read, the handle carries that error and
// every method of it that returns an error reports it.
//
// A new handle reads the partition's metadata and scans its pending timers
// (to build the timer filter) without holding the store's lock: other
// partitions' handles, Metrics and the reads go on meanwhile.
func (s *Store) Partition(p int32) *Partition {
	for {
		s.mu.Lock()
		if h, ok := s.mu.parts[p]; ok {
			s.mu.Unlock()
			return h
		}
		if s.mu.closed {
			s.mu.Unlock()
			return &Partition{err: errClosed}
		}
		if p < 0 {
			s.mu.Unlock()
			return &Partition{err: fmt.Errorf("state: negative partition %d", p)}
		}
		drops := s.mu.drops
		s.enterLocked()
		s.mu.Unlock()

		h := newPartition(s, p)

		s.mu.Lock()
		kept, retry := h, false
		switch other, ok := s.mu.parts[p]; {
		case s.mu.closed:
			kept = &Partition{err: errClosed}
		case ok:
			kept = other // another caller loaded it first
		case s.mu.drops != drops:
			retry = true // dropped meanwhile: h may hold the old state
		case h.err == nil:
			s.mu.parts[p] = h
		}
		s.mu.Unlock()
		if kept != h || retry {
			_ = h.close(errClosed)
		}
		s.inflight.Done()
		if !retry {
			return kept
		}
	}
}

// DropPartition deletes every key of partition p with one range deletion:
// the partition was revoked and is not kept. Its handle, if any, fails from
// now on (its worker must have stopped); a later Partition(p) starts empty.
// The deletion is not synced: if it is lost in a crash, the partition's old
// state comes back, which is still a consistent state at its stored
// changelog offset.
func (s *Store) DropPartition(p int32) error {
	if p < 0 {
		return fmt.Errorf("state: negative partition %d", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return errClosed
	}
	s.mu.drops++
	if h, ok := s.mu.parts[p]; ok {
		_ = h.close(fmt.Errorf("state: partition %d was dropped", p))
		delete(s.mu.parts, p)
	}
	start, end := partitionBounds(uint32(p))
	if err := s.db.DeleteRange(start, end, pebble.NoSync); err != nil {
		return fmt.Errorf("state: drop partition %d: %w", p, err)
	}
	return nil
}

// Metrics are the store's cumulative figures: Pebble's own (flushes,
// compactions, levels, block cache, WAL) and the write stalls.
type Metrics struct {
	*pebble.Metrics
	WriteStalls    int64
	WriteStallTime time.Duration // stalls that ended
}

// Metrics returns the store's figures, or false once it is closed.
func (s *Store) Metrics() (Metrics, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return Metrics{}, false
	}
	return Metrics{Metrics: s.db.Metrics(), WriteStalls: s.stalls.Load(), WriteStallTime: time.Duration(s.stallNanos.Load())}, true
}

// pebbleLogger routes Pebble's log lines to zap.
type pebbleLogger struct{ l *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.l.Debugf(format, args...) } // routine: flushes, WAL recycling
func (l pebbleLogger) Errorf(format string, args ...any) { l.l.Errorf(format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) { l.l.Fatalf(format, args...) }
